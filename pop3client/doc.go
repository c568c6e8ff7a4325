// Package pop3client is a POP3 client (RFC 1939) with the extensions
// mail servers actually offer: CAPA and response codes (RFC 2449, RFC
// 3206), STLS (RFC 2595) and implicit TLS (RFC 8314), pipelining, APOP,
// and SASL (RFC 5034) with PLAIN, LOGIN, SCRAM-SHA-256 and SCRAM-SHA-1
// (also -PLUS, bound to the TLS channel), OAUTHBEARER and XOAUTH2.
//
// It owns the client side of the protocol: commands, replies, pipelining
// and TLS. Framing is internal/wire's, the vocabulary (codes, capability
// names, pop3.Error) is package pop3's.
//
// # Sessions
//
// Dial connects and reads the greeting; Login, APOP or Auth authenticate;
// Stat, List, UIDL, ListAndUIDL, Retr, Top, Dele and DeleMany work on the
// maildrop; Quit commits the deletions. Close without Quit deletes
// nothing (RFC 1939 §6).
//
// Retr and Top stream: the returned reader yields the message with the
// stuffing dots removed and CRLF line ends, exactly as many octets as LIST
// reported from a conforming server, and never holds it whole in memory.
// Close drains what was not read, so the connection stays usable.
//
// # Safety
//
// TLS certificates are verified by default (system roots, or
// Options.TLSConfig.RootCAs), or replaced by a pin of the certificate's
// SHA-256 fingerprint (Options.PinSHA256). Passwords and tokens are not
// sent in the clear except to loopback addresses, unless
// Options.AllowInsecureAuth. STLS fails rather than falling back to plain
// text. Command lines never exceed 255 octets (RFC 2449 §4), reply lines
// are bounded, and arguments with CR or LF are refused.
//
// # Errors
//
// An -ERR reply is an *Error, which unwraps to a *pop3.Error carrying the
// server's response code (IN-USE, AUTH, SYS/TEMP, …) and names the
// command that failed; the session goes on. A protocol violation is a
// *ProtocolError (test with errors.Is for ErrLineTooLong,
// ErrNotTerminated, ErrMalformed or ErrUnexpectedData); a network error or
// a canceled context is returned wrapped. After either of these the
// connection is closed.
//
// # Contexts and timeouts
//
// Every call takes a context: its deadline applies to each read and write,
// and canceling it aborts the connection at once. For Retr and Top, the
// context governs the whole transfer, until the reader reaches the end or
// is closed. Options.Timeout bounds each network read or write, so a
// server that stops responding fails the call even without a deadline.
package pop3client
