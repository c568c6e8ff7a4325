package sasl

import "context"

// The LOGIN challenges (draft-murchison-sasl-login-00 §2).
var (
	loginUsername = []byte("Username:")
	loginPassword = []byte("Password:")
)

// NewLOGIN returns a LOGIN server (draft-murchison-sasl-login) that checks
// the password with pc. It challenges "Username:" then "Password:"; an
// initial response is taken as the user name. Names and passwords follow
// the PLAIN rules (1–255 octets of UTF-8 without NUL). LOGIN sends the
// password as is: offer it only over TLS.
func NewLOGIN(pc PasswordChecker) Server {
	return &loginServer{pc: pc}
}

type loginServer struct {
	pc   PasswordChecker
	step int // 0 start, 1 "Username:" sent, 2 "Password:" sent, 3 done
	name string
	user string
}

var (
	_ Server    = (*loginServer)(nil)
	_ Attempter = (*loginServer)(nil)
)

func (s *loginServer) User() string      { return s.user }
func (s *loginServer) Attempted() string { return s.name }

func (s *loginServer) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch s.step {
	case 0:
		if resp == nil {
			s.step = 1
			return loginUsername, false, nil
		}
		fallthrough
	case 1:
		if len(resp) == 0 || !validField(resp) {
			s.step = 3
			return nil, true, ErrMalformed
		}
		s.name = string(resp)
		s.step = 2
		return loginPassword, false, nil
	case 2:
		s.step = 3
		if len(resp) == 0 || !validField(resp) {
			return nil, true, ErrMalformed
		}
		canonical, ok, err := s.pc.Authenticate(ctx, s.name, string(resp))
		if err != nil {
			return nil, true, err
		}
		if !ok {
			return nil, true, ErrAuthFailed
		}
		s.user = canonical
		return nil, true, nil
	}
	return nil, true, errFinished
}
