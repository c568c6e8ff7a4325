package sasl

import (
	"bytes"
	"context"
)

// NewPLAIN returns a PLAIN server (RFC 4616) that checks the password with
// pc. The message is authzid NUL authcid NUL passwd; each part is at most
// 255 octets of UTF-8 without NUL, authcid and passwd are not empty. The
// authzid must be empty or name the authenticated user (ASCII
// case-insensitively): proxy authorization is refused with ErrAuthFailed.
// PLAIN sends the password as is: offer it only over TLS.
func NewPLAIN(pc PasswordChecker) Server {
	return &plainServer{pc: pc}
}

type plainServer struct {
	pc        PasswordChecker
	step      int // 0 start, 1 empty challenge sent, 2 done
	attempted string
	user      string
}

var (
	_ Server    = (*plainServer)(nil)
	_ Attempter = (*plainServer)(nil)
)

func (s *plainServer) User() string      { return s.user }
func (s *plainServer) Attempted() string { return s.attempted }

func (s *plainServer) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch {
	case s.step == 0 && resp == nil:
		// RFC 4422 §5: no initial response, so an empty challenge.
		s.step = 1
		return []byte{}, false, nil
	case s.step >= 2:
		return nil, true, errFinished
	}
	s.step = 2
	// RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 {
		return nil, true, ErrMalformed
	}
	authzid, authcid, passwd := parts[0], parts[1], parts[2]
	if len(authcid) == 0 || len(passwd) == 0 ||
		!validField(authzid) || !validField(authcid) || !validField(passwd) {
		return nil, true, ErrMalformed
	}
	s.attempted = string(authcid)
	canonical, ok, err := s.pc.Authenticate(ctx, s.attempted, string(passwd))
	if err != nil {
		return nil, true, err
	}
	if !ok || !authzOK(string(authzid), string(authcid), canonical) {
		return nil, true, ErrAuthFailed
	}
	s.user = canonical
	return nil, true, nil
}
