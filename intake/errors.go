package intake

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/emersion/go-smtp"

	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/store"
)

// Kind classifies why a delivery failed; it decides the reply (SMTP/LMTP
// code and enhanced status code, RFC 3463) and the exit code of deliver.
type Kind int

const (
	// KindTemporary: anything that may work later (I/O errors, a
	// shutdown, a lost connection). 451 4.3.0, exit 75.
	KindTemporary Kind = iota
	// KindDiskFull: no space left on the store's file system.
	// 452 4.3.1, exit 75.
	KindDiskFull
	// KindNoUser: the address names no user. 550 5.1.1, exit 67.
	KindNoUser
	// KindNotLocal: the address is in a domain that is not local.
	// LMTP 550 5.1.2, SMTP 550 5.7.1 (no relaying), exit 67.
	KindNotLocal
	// KindBadAddress: the address cannot be parsed or holds control
	// characters. 501 5.1.3, exit 67.
	KindBadAddress
	// KindOverQuota: the delivery would exceed the user's quota.
	// 552 5.2.2 and exit 73, or 452 4.2.2 and exit 75 with
	// Options.QuotaTempfail.
	KindOverQuota
	// KindTooBig: the message exceeds Options.MaxMessageSize.
	// 552 5.3.4, exit 69.
	KindTooBig
)

// String names k in logs ("result" of a delivery line).
func (k Kind) String() string {
	switch k {
	case KindDiskFull:
		return "disk_full"
	case KindNoUser:
		return "no_such_user"
	case KindNotLocal:
		return "not_local"
	case KindBadAddress:
		return "bad_address"
	case KindOverQuota:
		return "over_quota"
	case KindTooBig:
		return "too_big"
	}
	return "temporary_failure"
}

// Error is a failed delivery: its class, whether it is temporary, and the
// cause (for the log only; replies stay generic).
type Error struct {
	Kind Kind
	// Temporary is true for KindTemporary and KindDiskFull, and for
	// KindOverQuota with Options.QuotaTempfail.
	Temporary bool
	Err       error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return "intake: " + e.Kind.String()
	}
	return "intake: " + e.Kind.String() + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func newError(k Kind, err error) *Error {
	return &Error{Kind: k, Temporary: k == KindTemporary || k == KindDiskFull, Err: err}
}

// classify turns any error of a delivery into an *Error: ours pass
// through, store.ErrNoSuchUser and ErrBadUser are KindNoUser, ENOSPC and
// EDQUOT are KindDiskFull, the rest is temporary.
func classify(err error) *Error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e
	case errors.Is(err, store.ErrNoSuchUser), errors.Is(err, store.ErrBadUser):
		return newError(KindNoUser, err)
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return newError(KindDiskFull, err)
	case errors.Is(err, smtp.ErrDataTooLarge):
		return newError(KindTooBig, err)
	}
	return newError(KindTemporary, err)
}

// Exit codes of deliver (the table is internal/exitcode's), as Postfix's
// local(8) and pipe(8) read them: 67 and 69 and 73 bounce, 75 retries.
const (
	ExitOK          = exitcode.OK
	ExitNoUser      = exitcode.NoUser
	ExitUnavailable = exitcode.Unavailable
	ExitCantCreat   = exitcode.CantCreat
	ExitTempFail    = exitcode.TempFail
)

// ExitCode returns the sysexits(3) code of a failed delivery.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	e := classify(err)
	switch {
	case e.Temporary:
		return ExitTempFail
	case e.Kind == KindNoUser, e.Kind == KindNotLocal, e.Kind == KindBadAddress:
		return ExitNoUser
	case e.Kind == KindOverQuota:
		return ExitCantCreat
	case e.Kind == KindTooBig:
		return ExitUnavailable
	}
	return ExitTempFail
}

// DSN returns the enhanced status code (RFC 3463) of a failed delivery,
// such as "5.2.2": deliver starts its error message with it, and Postfix
// takes the detail from there.
func DSN(err error) string {
	c := reply(err, true).EnhancedCode
	return fmt.Sprintf("%d.%d.%d", c[0], c[1], c[2])
}

// reply returns the SMTP/LMTP reply for a failed delivery. The text is
// generic: causes go to the log.
func reply(err error, lmtp bool) *smtp.SMTPError {
	e := classify(err)
	r := func(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	switch e.Kind {
	case KindNoUser:
		return r(550, smtp.EnhancedCode{5, 1, 1}, "No such user here")
	case KindNotLocal:
		if lmtp {
			return r(550, smtp.EnhancedCode{5, 1, 2}, "Not a local domain")
		}
		return r(550, smtp.EnhancedCode{5, 7, 1}, "Relaying denied: not a local domain")
	case KindBadAddress:
		return r(501, smtp.EnhancedCode{5, 1, 3}, "Bad address syntax")
	case KindOverQuota:
		if e.Temporary {
			return r(452, smtp.EnhancedCode{4, 2, 2}, "Mailbox full, try again later")
		}
		return r(552, smtp.EnhancedCode{5, 2, 2}, "Mailbox full")
	case KindTooBig:
		return r(552, smtp.EnhancedCode{5, 3, 4}, "Message too big")
	case KindDiskFull:
		return r(452, smtp.EnhancedCode{4, 3, 1}, "Insufficient system storage, try again later")
	}
	if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) {
		return r(451, smtp.EnhancedCode{4, 3, 2}, "Delivery interrupted, try again later")
	}
	return r(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem, try again later")
}
