package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"

	"github.com/postie-mail/postie/pop3client"
)

// Kind says what went wrong with an account, for the exit code and for the
// daemon's retry policy.
type Kind int

const (
	// KindFailed: a failure that is none of the below (a message could not
	// be delivered, a local file could not be written).
	KindFailed Kind = iota + 1
	// KindTemporary: worth retrying soon — the server is unreachable or
	// busy ([IN-USE], [LOGIN-DELAY], [SYS/TEMP]), the connection was lost,
	// an MDA or LMTP server said to try later, another postie fetch holds
	// the account.
	KindTemporary
	// KindTLS: the server's certificate could not be verified, or TLS
	// could not be set up.
	KindTLS
	// KindAuth: the server refused the credentials.
	KindAuth
	// KindConfig: the account's configuration or credentials source is
	// wrong (unreadable password file, failing password command, …).
	KindConfig
)

func (k Kind) String() string {
	switch k {
	case KindFailed:
		return "failed"
	case KindTemporary:
		return "temporary"
	case KindTLS:
		return "tls"
	case KindAuth:
		return "auth"
	case KindConfig:
		return "config"
	}
	return "ok"
}

// Error is why a run of an account failed.
type Error struct {
	Kind Kind
	Err  error
	// Hint tells the user what to do, or is empty.
	Hint string
}

func (e *Error) Error() string {
	s := e.Err.Error()
	if e.Hint != "" {
		s += "\n  " + strings.ReplaceAll(e.Hint, "\n", "\n  ")
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

func fail(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Err: fmt.Errorf(format, args...)}
}

// classifyConn turns an error of dialing, TLS or a POP3 command into an
// *Error for the account a.
func classifyConn(a *Account, err error) *Error {
	var fe *Error
	if errors.As(err, &fe) {
		return fe
	}
	var perr *pop3client.Error
	var cve *tls.CertificateVerificationError
	var rhe tls.RecordHeaderError
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return &Error{Kind: KindTemporary, Err: err}
	case errors.Is(err, pop3client.ErrPinMismatch):
		return &Error{Kind: KindTLS, Err: fmt.Errorf("TLS verification of %s failed: %w", a.Addr(), err),
			Hint: "If the server's certificate changed for a good reason, check the new fingerprint out of band and update pin_sha256."}
	case errors.As(err, &cve):
		e := &Error{Kind: KindTLS, Err: fmt.Errorf("TLS verification of %s failed: %v", a.Addr(), cve.Err)}
		if len(cve.UnverifiedCertificates) > 0 {
			sum := sha256.Sum256(cve.UnverifiedCertificates[0].Raw)
			fp := pop3client.Fingerprint(sum[:])
			e.Hint = fmt.Sprintf("The server's certificate has the SHA-256 fingerprint\n  %s\n"+
				"If you trust it (check it out of band: `postie fetch probe %s` shows it), pin it in account %q:\n  pin_sha256 = %q\n"+
				"or give the CA that signed it with ca_file.", fp, a.Addr(), a.Name, fp)
		}
		return e
	case errors.As(err, &rhe), strings.Contains(err.Error(), "TLS handshake: "):
		return &Error{Kind: KindTLS, Err: fmt.Errorf("TLS with %s failed: %w", a.Addr(), err),
			Hint: tlsHint(a)}
	case errors.As(err, &perr):
		if perr.Temporary() {
			return &Error{Kind: KindTemporary, Err: fmt.Errorf("%s is busy: %w", a.Server, err)}
		}
		if perr.Command == "STLS" {
			return &Error{Kind: KindTLS, Err: fmt.Errorf("%s refused STLS: %w", a.Addr(), err), Hint: tlsHint(a)}
		}
		if perr.Command == "greeting" {
			return &Error{Kind: KindTemporary, Err: fmt.Errorf("%s refused the connection: %w", a.Addr(), err)}
		}
		return &Error{Kind: KindFailed, Err: err}
	case errors.Is(err, pop3client.ErrInsecure):
		return &Error{Kind: KindConfig, Err: err, Hint: `Use tls = "implicit" or "starttls", or set insecure = true if the network is trusted.`}
	case errors.As(err, &dnsErr), errors.As(err, &opErr) && opErr.Op == "dial":
		return &Error{Kind: KindTemporary, Err: fmt.Errorf("%s is unreachable: %w", a.Addr(), err)}
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, pop3client.ErrClosed),
		errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindTemporary, Err: fmt.Errorf("connection to %s lost: %w", a.Addr(), err)}
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return &Error{Kind: KindTemporary, Err: fmt.Errorf("connection to %s: %w", a.Addr(), err)}
	}
	return &Error{Kind: KindFailed, Err: err}
}

func tlsHint(a *Account) string {
	switch a.TLS {
	case "implicit":
		return fmt.Sprintf("Port %d may not speak TLS from the start: try tls = \"starttls\" (port 110).", a.Port)
	case "starttls":
		return fmt.Sprintf("Try tls = \"implicit\" (port 995), or check with `postie fetch probe %s`.", a.Addr())
	}
	return ""
}

// authError describes a refused login, with the server's reply.
func authError(a *Account, how string, err error) *Error {
	var perr *pop3client.Error
	if !errors.As(err, &perr) {
		return classifyConn(a, err)
	}
	if perr.Temporary() {
		return &Error{Kind: KindTemporary, Err: fmt.Errorf("%s is busy: %w", a.Server, err)}
	}
	reply := perr.Reply().Error()
	e := &Error{Kind: KindAuth, Err: fmt.Errorf("authentication as %q refused by %s (%s): %s", a.User, a.Addr(), how, reply)}
	if perr.Details != nil {
		e.Err = fmt.Errorf("%w (%v)", e.Err, perr.Details)
	}
	return e
}

// Classify sorts an error met talking to a's server (dialing, TLS, a
// command) into an *Error with its Kind, for other retrievers (postie
// migrate pop3) to report and exit as fetch does. An *Error is returned as
// it is.
func Classify(a *Account, err error) *Error { return classifyConn(a, err) }

// ClassifyAuth is Classify for an error of a login made with method how.
func ClassifyAuth(a *Account, how string, err error) *Error { return authError(a, how, err) }
