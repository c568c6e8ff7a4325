package sasl

import "context"

// NewEXTERNAL returns an EXTERNAL server (RFC 4422 Appendix A) for a
// connection whose identity was established outside SASL: identity is the
// user named by the verified TLS client certificate, as the engine (or
// the auth package) mapped it, or "" when there is none, in which case
// the exchange fails with ErrAuthFailed. The client's message is an
// authorization identity: empty, or the same user (ASCII
// case-insensitively). The authenticated user is identity.
func NewEXTERNAL(identity string) Server {
	return &externalServer{identity: identity}
}

type externalServer struct {
	identity string
	step     int // 0 start, 1 empty challenge sent, 2 done
	user     string
}

var _ Server = (*externalServer)(nil)

func (s *externalServer) User() string { return s.user }

func (s *externalServer) Next(_ context.Context, resp []byte) ([]byte, bool, error) {
	switch {
	case s.step == 0 && resp == nil:
		s.step = 1
		return []byte{}, false, nil
	case s.step >= 2:
		return nil, true, errFinished
	}
	s.step = 2
	if !validField(resp) {
		return nil, true, ErrMalformed
	}
	if s.identity == "" || !authzOK(string(resp), s.identity, s.identity) {
		return nil, true, ErrAuthFailed
	}
	s.user = s.identity
	return nil, true, nil
}
