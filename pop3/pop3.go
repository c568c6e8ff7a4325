// Package pop3 holds the vocabulary shared by postie's POP3 server and client:
// session states, capability names, RFC 2449/3206 response codes and the one
// error type that decides an -ERR reply.
package pop3

import "fmt"

// State is a POP3 session state (RFC 1939 §3).
type State int

// The three session states of RFC 1939 §3.
const (
	StateAuthorization State = iota
	StateTransaction
	StateUpdate
)

func (s State) String() string {
	switch s {
	case StateAuthorization:
		return "AUTHORIZATION"
	case StateTransaction:
		return "TRANSACTION"
	case StateUpdate:
		return "UPDATE"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Code is an extended response code carried in brackets after -ERR
// (RFC 2449 §8, RFC 3206).
type Code string

// Response codes postie emits or understands.
const (
	CodeNone       Code = ""
	CodeInUse      Code = "IN-USE"      // RFC 2449 §8.1.1: maildrop locked by another session
	CodeLoginDelay Code = "LOGIN-DELAY" // RFC 2449 §8.1.2: logged in too recently
	CodeSysTemp    Code = "SYS/TEMP"    // RFC 3206 §4: temporary system problem
	CodeSysPerm    Code = "SYS/PERM"    // RFC 3206 §4: permanent system problem
	CodeAuth       Code = "AUTH"        // RFC 3206 §5: credentials rejected
	CodeUTF8       Code = "UTF8"        // RFC 6856 §2
)

// Error is a POP3 error reply. Text travels on the wire, so it must stay
// generic: details belong in the log, never in Text.
type Error struct {
	Code Code
	Text string
}

func (e *Error) Error() string {
	if e.Code == CodeNone {
		return "-ERR " + e.Text
	}
	return "-ERR [" + string(e.Code) + "] " + e.Text
}

// Reply renders the error as the bytes of an -ERR line, CRLF included.
func (e *Error) Reply() string { return e.Error() + "\r\n" }

// Capability names of RFC 2449 §6 and later RFCs.
const (
	CapTop            = "TOP"
	CapUser           = "USER"
	CapSASL           = "SASL"
	CapRespCodes      = "RESP-CODES"
	CapLoginDelay     = "LOGIN-DELAY"
	CapPipelining     = "PIPELINING"
	CapExpire         = "EXPIRE"
	CapUIDL           = "UIDL"
	CapImplementation = "IMPLEMENTATION"
	CapAuthRespCode   = "AUTH-RESP-CODE"
	CapSTLS           = "STLS"
	CapUTF8           = "UTF8"
)

// MaxCommandLine is the longest command line, CRLF included, that every
// server must accept (RFC 2449 §4).
const MaxCommandLine = 255

// MaxResponseLine is the longest initial response line, CRLF included
// (RFC 2449 §4).
const MaxResponseLine = 512
