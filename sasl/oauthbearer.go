package sasl

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
)

// TokenValidator checks an OAuth 2.0 bearer token (RFC 6750). user is the
// user named in the SASL message ("" when the client named none, which
// OAUTHBEARER allows): a validator must then refuse the token or take the
// user from it, and otherwise must check that the token belongs to user.
// ok is false for a token that is invalid, expired, or not user's; err is
// for system trouble only (the identity provider cannot be reached).
type TokenValidator interface {
	ValidateToken(ctx context.Context, user, token string) (canonical string, ok bool, err error)
}

// OAuthOptions fill the error challenge sent when a token is refused.
type OAuthOptions struct {
	// Scope is the OAuth scope a token needs, sent in the error challenge
	// (RFC 7628 §3.2.2 "scope"). Optional.
	Scope string
	// OpenIDConfiguration is the URL of the issuer's discovery document
	// (RFC 7628 §3.2.2 "openid-configuration"). OAUTHBEARER only;
	// optional.
	OpenIDConfiguration string
}

// maxOAuthMessage bounds an OAUTHBEARER or XOAUTH2 message. Access tokens
// from some providers run to several KiB; 64 KiB leaves room.
const maxOAuthMessage = 64 << 10

// NewOAUTHBEARER returns an OAUTHBEARER server (RFC 7628). The client
// message is a GS2 header ("n,a=user,"; channel binding "p" is refused),
// then key=value pairs separated by 0x01 of which "auth" must hold
// "Bearer <token>". A token v refuses gets the JSON error challenge of
// RFC 7628 §3.2.2 ({"status":"invalid_token",...}); whatever the client
// answers (it should send a single 0x01) the exchange then ends with
// ErrAuthFailed. Bearer tokens are sent as is: offer it only over TLS.
func NewOAUTHBEARER(v TokenValidator, opts OAuthOptions) Server {
	return &oauthServer{v: v, opts: opts, xoauth2: false}
}

// NewXOAUTH2 returns an XOAUTH2 server (Google's and Microsoft's older
// form): the client message is "user=" name 0x01 "auth=Bearer " token
// 0x01 0x01. A refused token gets a JSON error challenge
// ({"status":"401","schemes":"bearer",...}); the client answers with an
// empty response and the exchange ends with ErrAuthFailed.
func NewXOAUTH2(v TokenValidator, opts OAuthOptions) Server {
	return &oauthServer{v: v, opts: opts, xoauth2: true}
}

type oauthServer struct {
	v       TokenValidator
	opts    OAuthOptions
	xoauth2 bool
	step    int // 0 start, 1 empty challenge sent, 2 error challenge sent, 3 done
	user    string
	// attempted is the user the client named (XOAUTH2's user, the
	// OAUTHBEARER authorization identity); the token may say otherwise.
	attempted string
}

var (
	_ Server    = (*oauthServer)(nil)
	_ Attempter = (*oauthServer)(nil)
)

func (s *oauthServer) User() string      { return s.user }
func (s *oauthServer) Attempted() string { return s.attempted }

func (s *oauthServer) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch {
	case s.step == 0 && resp == nil:
		s.step = 1
		return []byte{}, false, nil
	case s.step == 2:
		// RFC 7628 §3.2.3: after the error challenge the client sends
		// a lone 0x01 (XOAUTH2: an empty response). The outcome is a
		// failure whatever it sent.
		s.step = 3
		return nil, true, ErrAuthFailed
	case s.step >= 3:
		return nil, true, errFinished
	}
	s.step = 3
	var user, token string
	var err error
	if s.xoauth2 {
		user, token, err = parseXOAUTH2(resp)
	} else {
		user, token, err = parseOAUTHBEARER(resp)
	}
	if err != nil {
		return nil, true, err
	}
	s.attempted = user
	canonical, ok, err := s.v.ValidateToken(ctx, user, token)
	if err != nil {
		return nil, true, err
	}
	if !ok {
		s.step = 2
		return s.errorChallenge(), false, nil
	}
	s.user = canonical
	return nil, true, nil
}

func (s *oauthServer) errorChallenge() []byte {
	var b []byte
	if s.xoauth2 {
		b, _ = json.Marshal(struct {
			Status  string `json:"status"`
			Schemes string `json:"schemes"`
			Scope   string `json:"scope,omitempty"`
		}{"401", "bearer", s.opts.Scope})
	} else {
		// RFC 7628 §3.2.2.
		b, _ = json.Marshal(struct {
			Status string `json:"status"`
			Scope  string `json:"scope,omitempty"`
			Config string `json:"openid-configuration,omitempty"`
		}{"invalid_token", s.opts.Scope, s.opts.OpenIDConfiguration})
	}
	return b
}

// parseOAUTHBEARER parses RFC 7628 §3.1:
//
//	kvsep       = %x01
//	client-resp = (gs2-header kvsep *kvpair kvsep) / kvsep
func parseOAUTHBEARER(msg []byte) (user, token string, err error) {
	if len(msg) > maxOAuthMessage {
		return "", "", ErrMalformed
	}
	header, rest, ok := bytes.Cut(msg, []byte{1})
	if !ok {
		return "", "", ErrMalformed
	}
	g, after, err := parseGS2Header(string(header))
	if err != nil || after != "" || g.flag == 'p' {
		// OAUTHBEARER has no channel binding (RFC 7628 §3.1).
		return "", "", ErrMalformed
	}
	kv, err := parseKVPairs(rest)
	if err != nil {
		return "", "", err
	}
	token, err = bearerToken(kv["auth"])
	return g.authzid, token, err
}

// parseXOAUTH2 parses "user=" name 0x01 "auth=Bearer " token 0x01 0x01.
func parseXOAUTH2(msg []byte) (user, token string, err error) {
	if len(msg) > maxOAuthMessage {
		return "", "", ErrMalformed
	}
	kv, err := parseKVPairs(msg)
	if err != nil {
		return "", "", err
	}
	user = kv["user"]
	if user == "" || !validField([]byte(user)) {
		return "", "", ErrMalformed
	}
	token, err = bearerToken(kv["auth"])
	return user, token, err
}

// parseKVPairs parses *kvpair kvsep, each kvpair key "=" value kvsep,
// with key = 1*ALPHA and value = *(VCHAR / SP / HTAB / CR / LF) (RFC 7628
// §3.1). A repeated key is an error.
func parseKVPairs(b []byte) (map[string]string, error) {
	if len(b) == 0 || b[len(b)-1] != 1 {
		return nil, ErrMalformed
	}
	b = b[:len(b)-1]
	kv := map[string]string{}
	for len(b) > 0 {
		pair, rest, ok := bytes.Cut(b, []byte{1})
		if !ok {
			return nil, ErrMalformed
		}
		b = rest
		k, v, ok := bytes.Cut(pair, []byte{'='})
		if !ok || len(k) == 0 {
			return nil, ErrMalformed
		}
		for _, c := range k {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return nil, ErrMalformed
			}
		}
		for _, c := range v {
			if !(0x21 <= c && c <= 0x7e || c == ' ' || c == '\t' || c == '\r' || c == '\n') {
				return nil, ErrMalformed
			}
		}
		if _, dup := kv[string(k)]; dup {
			return nil, ErrMalformed
		}
		kv[string(k)] = string(v)
	}
	return kv, nil
}

// bearerToken takes the token out of an "auth" value: "Bearer" 1*SP
// b64token (RFC 6750 §2.1; the scheme is case-insensitive, RFC 7235 §2.1).
//
//	b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
func bearerToken(auth string) (string, error) {
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !sameUser(scheme, "Bearer") {
		return "", ErrMalformed
	}
	token = strings.TrimLeft(token, " ")
	end := len(strings.TrimRight(token, "="))
	if end == 0 {
		return "", ErrMalformed
	}
	for i := 0; i < end; i++ {
		c := token[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return "", ErrMalformed
		}
	}
	return token, nil
}
