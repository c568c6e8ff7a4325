// Package sasl holds postie's server-side SASL mechanisms (RFC 4422): PLAIN,
// LOGIN, SCRAM-SHA-1/-256 and their -PLUS forms, OAUTHBEARER, XOAUTH2 and
// EXTERNAL. A mechanism knows nothing of framing: the protocol engine owns
// base64, the "+ " continuation lines and "*" cancellation (RFC 5034), and
// feeds each decoded client response to Next.
//
// Credentials come from small interfaces (PasswordChecker, SCRAMStore,
// TokenValidator) that the auth package implements; the package itself
// imports only the standard library. JWT and introspection token
// validators live in the subpackage sasl/oauth.
//
// Config ties the mechanisms together for an engine: Config.Names is the
// list for the CAPA "SASL" line of one connection, Config.New starts an
// exchange by name.
package sasl

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Errors a mechanism returns from Next.
var (
	// ErrAuthFailed: the credentials were checked and are wrong (or the
	// user does not exist — the two are never told apart).
	ErrAuthFailed = errors.New("sasl: authentication failed")
	// ErrMalformed: the client's response does not follow the mechanism.
	ErrMalformed = errors.New("sasl: malformed response")
	// ErrUnsupportedMechanism: Config.New was asked for a mechanism that
	// is unknown or not offered on this connection.
	ErrUnsupportedMechanism = errors.New("sasl: unsupported mechanism")
	// ErrCleartextRefused: Config.New was asked for a Cleartext mechanism
	// on a connection that may not carry cleartext secrets (no TLS and
	// Conn.AllowCleartext unset), whether or not the mechanism is
	// configured: the client learns why, not what is enabled. It wraps
	// ErrUnsupportedMechanism.
	ErrCleartextRefused = fmt.Errorf("%w: cleartext mechanism refused without TLS", ErrUnsupportedMechanism)
)

// Server is one server-side authentication exchange.
//
// Every error is returned with done == true. An error that is neither
// ErrAuthFailed nor ErrMalformed (errors.Is) comes from a credential
// backend (system trouble: [SYS/TEMP]).
type Server interface {
	// Next takes the client's next response — nil when the client sent
	// no initial response, empty when it sent "=" — and returns the next
	// challenge. done is true when the exchange is over: successfully if
	// err is nil. A challenge returned with done and no error is
	// additional data with success (RFC 4422 §5), sent before +OK.
	Next(ctx context.Context, response []byte) (challenge []byte, done bool, err error)
	// User is the authenticated (canonical) user after success.
	User() string
}

// Attempter is implemented by the mechanisms in which the client names
// the user it authenticates as: PLAIN, LOGIN, the SCRAM family,
// OAUTHBEARER (when it gives an authorization identity) and XOAUTH2.
type Attempter interface {
	// Attempted returns the authentication identity the client gave, as
	// it gave it and unverified (at most 255 octets of UTF-8 without
	// NUL), or "" when it gave none that could be read. It is for
	// throttling and logging failures per user, never for opening a
	// maildrop: that is User, after success.
	Attempted() string
}

// AttemptedUser returns s's Attempted, or "" when s does not implement
// Attempter.
func AttemptedUser(s Server) string {
	if a, ok := s.(Attempter); ok {
		return a.Attempted()
	}
	return ""
}

// PasswordChecker checks a user name and password, like
// pop3server.Authenticator: ok false for wrong credentials, err for
// system trouble only.
type PasswordChecker interface {
	Authenticate(ctx context.Context, user, password string) (canonical string, ok bool, err error)
}

// maxField is the longest authorization identity, authentication identity
// or password accepted, in octets (RFC 4616 §2 lets a server limit each to
// 255).
const maxField = 255

// errFinished answers a Next call after the exchange ended.
var errFinished = fmt.Errorf("%w: exchange already finished", ErrMalformed)

// validField reports whether b is usable as a user name or password: at
// most maxField octets of valid UTF-8 without NUL. Emptiness is the
// caller's business.
func validField(b []byte) bool {
	if len(b) > maxField || !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c == 0 {
			return false
		}
	}
	return true
}

// sameUser compares user names ASCII case-insensitively. Unicode case
// folding is deliberately avoided (as in package auth): the Kelvin sign
// would fold to 'k' and reach another user.
func sameUser(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if asciiLower(a[i]) != asciiLower(b[i]) {
			return false
		}
	}
	return true
}

func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// authzOK reports whether the requested authorization identity may be
// used by the authenticated one: empty, or the same user (by the name
// given or the canonical name). Proxy authorization is not supported.
func authzOK(authzid, authcid, canonical string) bool {
	return authzid == "" || sameUser(authzid, authcid) || sameUser(authzid, canonical)
}
