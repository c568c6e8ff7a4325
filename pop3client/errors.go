package pop3client

import (
	"errors"
	"strconv"

	"github.com/postie-mail/postie/pop3"
)

// Error is an -ERR reply: the server understood the command and refused it.
// The connection stays usable (except after a refused greeting or QUIT).
//
// It unwraps to a *pop3.Error, so callers that only care about the response
// code can write
//
//	var perr *pop3.Error
//	if errors.As(err, &perr) && perr.Code == pop3.CodeInUse { … }
type Error struct {
	// Command is the command that failed, without credentials: "RETR 3",
	// "PASS", "AUTH PLAIN", or "greeting" when the server refused the
	// connection.
	Command string
	// Code is the extended response code in brackets after -ERR
	// (RFC 2449 §8, RFC 3206), upper-cased, or pop3.CodeNone.
	Code pop3.Code
	// Text is the rest of the reply line as the server sent it.
	Text string
	// Details is what the server said before refusing a SASL exchange
	// (an *OAuthError for OAUTHBEARER and XOAUTH2), or nil.
	Details error
}

func (e *Error) Error() string {
	s := "pop3client: " + e.Command + ": " + e.Reply().Error()
	if e.Details != nil {
		s += " (" + e.Details.Error() + ")"
	}
	return s
}

// Reply returns the reply as a *pop3.Error.
func (e *Error) Reply() *pop3.Error { return &pop3.Error{Code: e.Code, Text: e.Text} }

// Unwrap returns the reply as a *pop3.Error, and Details if set.
func (e *Error) Unwrap() []error {
	if e.Details != nil {
		return []error{e.Reply(), e.Details}
	}
	return []error{e.Reply()}
}

// Temporary reports whether the server said the failure is temporary
// (SYS/TEMP, IN-USE, LOGIN-DELAY), so the same command may succeed
// later.
func (e *Error) Temporary() bool {
	switch e.Code {
	case pop3.CodeSysTemp, pop3.CodeInUse, pop3.CodeLoginDelay:
		return true
	}
	return false
}

// Protocol violations by the server. They are returned inside a
// *ProtocolError; test them with errors.Is. After one, the connection is
// closed: the client can no longer tell where one reply ends.
var (
	// ErrLineTooLong: a status line over 512 octets (RFC 2449 §4), or a
	// line of a listing over the client's limit.
	ErrLineTooLong = errors.New("response line too long")
	// ErrNotTerminated: the connection ended inside a multi-line response,
	// before its terminating ".".
	ErrNotTerminated = errors.New("multi-line response not terminated")
	// ErrMalformed: a reply that is neither +OK nor -ERR where one is due,
	// or a listing, size or SASL challenge that does not parse.
	ErrMalformed = errors.New("malformed response")
	// ErrUnexpectedData: the server sent bytes nobody asked for (after
	// the STLS reply, where they would be read as coming from inside TLS).
	ErrUnexpectedData = errors.New("unexpected data from server")
)

// ProtocolError is a reply that breaks the protocol.
type ProtocolError struct {
	Command string // the command whose reply was bad
	Err     error  // ErrLineTooLong, ErrNotTerminated, ErrMalformed or ErrUnexpectedData
	Line    string // the offending line, shortened; empty when there is none
}

func (e *ProtocolError) Error() string {
	s := "pop3client: " + e.Command + ": protocol error: " + e.Err.Error()
	if e.Line != "" {
		s += ": " + strconv.Quote(e.Line)
	}
	return s
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// protoErr builds a *ProtocolError quoting at most 80 octets of line.
func protoErr(cmd string, kind error, line []byte) *ProtocolError {
	if len(line) > 80 {
		line = append(line[:77:77], "..."...)
	}
	return &ProtocolError{Command: cmd, Err: kind, Line: string(line)}
}

// Errors of the client itself.
var (
	// ErrClosed is returned by every call on a Client after Close, Quit,
	// or an error that left the connection in an unknown state.
	ErrClosed = errors.New("pop3client: connection closed")
	// ErrInsecure: the call would send a password or token in the clear
	// to a non-loopback server (see Options.AllowInsecureAuth).
	ErrInsecure = errors.New("pop3client: refusing to send credentials over an unencrypted connection")
	// ErrNoAPOP: APOP was asked for but the greeting had no timestamp.
	ErrNoAPOP = errors.New("pop3client: server does not offer APOP (no timestamp in greeting)")
	// ErrPinMismatch: the server's certificate is not the pinned one.
	ErrPinMismatch = errors.New("pop3client: server certificate does not match the pinned SHA-256 fingerprint")
)
