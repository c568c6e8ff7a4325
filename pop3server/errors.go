package pop3server

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/sasl"
	"github.com/postie-mail/postie/store"
)

// How a command fails. A handler replies itself when it succeeds and
// returns nil; otherwise it returns an error and answer, the one place
// that decides, turns it into the -ERR line, the log line and the
// counters:
//
//   - *pop3.Error: a well-formed command that cannot be carried out (no
//     such message, …). The error is the reply; nothing is logged.
//   - a bad command (badCommand, usage, noArgs): unknown, out of state,
//     malformed. The reply is its pop3.Error, and it counts toward
//     Limits.MaxBadCommands.
//   - *authFailure: credentials checked and wrong. Penalty delay, the
//     "authentication failed" line for fail2ban, then the reply.
//   - store.ErrInUse, store.ErrMessageGone, errLoginTooSoon,
//     sasl.ErrCleartextRefused and sasl.ErrUnsupportedMechanism (wrapped
//     or not): their own reply, log level and counter.
//   - *opError: a backend failed while carrying out the command. Logged
//     at Error with the cause; the client gets [SYS/TEMP] and a generic
//     text naming the operation.
//   - endSession: the session is over and nothing more is said (the
//     client went away, a TLS handshake failed, the server is closing).
//   - anything else is a bug: logged with the cause, masked as
//     "-ERR [SYS/TEMP] internal server error".
//
// Reply texts stay generic (STYLE: no user names, paths or causes on the
// wire); details go to the log.

// Replies shared by several commands.
var (
	errUnknownCommand   = &pop3.Error{Text: "unknown command"}
	errLineTooLong      = &pop3.Error{Text: "line too long"}
	errNotBeforeLogin   = &pop3.Error{Text: "command not valid before login"}
	errAlreadyLoggedIn  = &pop3.Error{Text: "already logged in"}
	errTooManyBad       = &pop3.Error{Text: "too many bad commands, closing connection"}
	errTooManyArgs      = &pop3.Error{Text: "too many arguments"}
	errBadMessageNumber = &pop3.Error{Text: "invalid message number"}
	errNoSuchMessage    = &pop3.Error{Text: "no such message"}
	errMessageDeleted   = &pop3.Error{Text: "message already deleted"}
	errBadLineCount     = &pop3.Error{Text: "invalid number of lines"}
	errAutologoutLogin  = &pop3.Error{Text: "autologout: no login in time"}
	errAutologoutIdle   = &pop3.Error{Text: "autologout: idle for too long"}
	errInternal         = &pop3.Error{Code: pop3.CodeSysTemp, Text: "internal server error"}

	// Cleartext credentials on a connection that must not carry them
	// (RFC 2595 §2.2, RFC 8314 §4).
	errCleartext     = &pop3.Error{Code: pop3.CodeAuth, Text: "cleartext login refused on an unencrypted connection; use STLS or the TLS port"}
	errSendUserFirst = &pop3.Error{Text: "send USER first"}
	errNoUserName    = &pop3.Error{Text: "missing user name"}
	errAPOPDisabled  = &pop3.Error{Text: "APOP not enabled"}
	errBadPassword   = &pop3.Error{Code: pop3.CodeAuth, Text: "invalid user name or password"}
	errNoSTLS        = &pop3.Error{Text: "STLS not available"}
	errAlreadyTLS    = &pop3.Error{Text: "already using TLS"}
	// RFC 2449 §8.1.2.
	errLoginTooSoon = &pop3.Error{Code: pop3.CodeLoginDelay, Text: "minimum time between logins not yet passed"}

	errUnknownMechanism = &pop3.Error{Text: "unrecognized authentication type"}
	errSASLFailed       = &pop3.Error{Code: pop3.CodeAuth, Text: "authentication failed"}
	errSASLTooLong      = &pop3.Error{Code: pop3.CodeAuth, Text: "authentication exchange too long"}
	errSASLLineTooLong  = &pop3.Error{Text: "authentication response too long"}
	errSASLCanceled     = &pop3.Error{Text: "authentication canceled"}
	errSASLBase64       = &pop3.Error{Text: "invalid base64 in authentication response"}
	errSASLBase64IR     = &pop3.Error{Text: "invalid base64 in initial response"}
)

// Replies to a connection refused before its session starts.
var (
	errShuttingDown   = &pop3.Error{Code: pop3.CodeSysTemp, Text: "server shutting down"}
	errTooManyConns   = &pop3.Error{Code: pop3.CodeSysTemp, Text: "too many connections, try again later"}
	errTooManyPerAddr = &pop3.Error{Code: pop3.CodeSysTemp, Text: "too many connections from your address"}
	errBanned         = &pop3.Error{Code: pop3.CodeSysTemp, Text: "too many failed logins from your address, try again later"}
)

// A badCommandError is a command the client should not have sent. It
// counts toward the bad-command limit.
type badCommandError struct{ reply *pop3.Error }

func (e *badCommandError) Error() string { return e.reply.Error() }
func (e *badCommandError) Unwrap() error { return e.reply }

// badCommand marks reply as the answer to a bad command.
func badCommand(reply *pop3.Error) error { return &badCommandError{reply} }

// usage answers a command with the wrong arguments: "-ERR usage: " syntax.
func usage(syntax string) error {
	return badCommand(&pop3.Error{Text: "usage: " + syntax}) // textUsage
}

// noArgs answers arguments given to a command that takes none.
func noArgs(verb string) error {
	return badCommand(&pop3.Error{Text: verb + " takes no arguments"}) // textNoArgs
}

// An authFailure is a login whose credentials were checked and are wrong.
type authFailure struct {
	// user is the identity the client gave, for the per-user penalty
	// and the log; "" when it gave none that could be read.
	user  string
	mech  string // the SASL mechanism as the client named it; "" for PASS and APOP
	reply *pop3.Error
	// release frees the address's check slot once the reply is due
	// (see check); nil when none is held.
	release func()
}

func (e *authFailure) Error() string { return "authentication failed for " + strconv.Quote(e.user) }
func (e *authFailure) Unwrap() error { return e.reply }

// endSession ends the session with no reply: the reason is the one the
// session-end log line gives ("" keeps the one already set).
type endSession string

func (e endSession) Error() string { return "session ended: " + string(e) }

// errWriteFailed ends a session whose client stopped taking replies.
const errWriteFailed = endSession("write failed")

// op is a backend operation a command depends on; an opError names it.
type op uint8

const (
	opAuthenticate op = iota // checking credentials
	opOpenMaildrop
	opOpenMessage
	opReadMessage // a message found changed while being sent
	opCommit      // removing the messages marked deleted (UPDATE)
)

// ops gives each operation its log message and masked reply.
var ops = [...]struct {
	log   string
	reply *pop3.Error
}{
	opAuthenticate: {"authentication backend failed", &pop3.Error{Code: pop3.CodeSysTemp, Text: "authentication temporarily unavailable"}},
	opOpenMaildrop: {"opening maildrop", &pop3.Error{Code: pop3.CodeSysTemp, Text: "unable to open maildrop"}},
	opOpenMessage:  {"opening message", &pop3.Error{Code: pop3.CodeSysTemp, Text: "unable to read message"}},
	opReadMessage:  {"reading message", &pop3.Error{Code: pop3.CodeSysTemp, Text: "unable to read message"}},
	opCommit:       {"deleting messages", &pop3.Error{Code: pop3.CodeSysTemp, Text: "some deleted messages not removed"}},
}

// An opError is a backend failure while carrying out a command.
type opError struct {
	op    op
	err   error
	attrs []slog.Attr // what the log needs beyond the session's fields
}

func (e *opError) Error() string { return ops[e.op].log + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

func failed(o op, err error, attrs ...slog.Attr) error {
	return &opError{op: o, err: err, attrs: attrs}
}

// errMessageGone answers a message that vanished since the snapshot.
var errMessageGone = &pop3.Error{Text: "message no longer available"}

// errMaildropInUse answers a login to a locked maildrop (RFC 2449 §8.1.1).
var errMaildropInUse = &pop3.Error{Code: pop3.CodeInUse, Text: "maildrop already locked by another session"}

// An outcome is what answer makes of an error.
type outcome struct {
	reply *pop3.Error // nil: nothing is said
	bad   bool        // counts toward the bad-command limit
	level slog.Level
	msg   string // the log line; "" logs nothing
	attrs []slog.Attr
	count func(*counters) // the counter it adds to, if any
	end   string          // ends the session for this reason, unless one is set
}

// decide maps an error of a command (any error but an authFailure) to
// its reply and log line.
func decide(err error) outcome {
	var (
		bc *badCommandError
		oe *opError
		pe *pop3.Error
		es endSession
	)
	var attrs []slog.Attr
	cause := err
	if errors.As(err, &oe) {
		attrs, cause = oe.attrs, oe.err
	}
	switch {
	case errors.As(err, &es):
		return outcome{end: string(es)}
	case errors.As(err, &bc):
		return outcome{reply: bc.reply, bad: true}
	case errors.Is(err, sasl.ErrCleartextRefused):
		return outcome{reply: errCleartext, bad: true}
	case errors.Is(err, sasl.ErrUnsupportedMechanism):
		return outcome{reply: errUnknownMechanism, bad: true}
	case errors.Is(err, errLoginTooSoon):
		return outcome{reply: errLoginTooSoon, level: slog.LevelInfo, msg: "login too soon", attrs: attrs}
	case errors.Is(err, store.ErrInUse):
		return outcome{reply: errMaildropInUse, level: slog.LevelInfo, msg: "maildrop in use", attrs: attrs,
			count: func(c *counters) { c.inUse.Add(1) }}
	case errors.Is(err, store.ErrMessageGone):
		msg := "message vanished"
		if oe != nil && oe.op == opReadMessage {
			msg = "message vanished while being read"
		}
		return outcome{reply: errMessageGone, level: slog.LevelWarn, msg: msg, attrs: withErr(attrs, cause)}
	case oe != nil:
		o := outcome{reply: ops[oe.op].reply, level: slog.LevelError, msg: ops[oe.op].log, attrs: withErr(attrs, cause)}
		if oe.op == opAuthenticate {
			o.count = func(c *counters) { c.authErrors.Add(1) }
		} else {
			o.count = func(c *counters) { c.storeErrors.Add(1) }
		}
		return o
	case errors.As(err, &pe):
		return outcome{reply: pe}
	}
	return outcome{reply: errInternal, level: slog.LevelError, msg: "unexpected error", attrs: withErr(nil, err)}
}

func withErr(attrs []slog.Attr, err error) []slog.Attr {
	return append(attrs[:len(attrs):len(attrs)], slog.Any("err", err))
}

// answer carries out the decision for the error of a command: the reply,
// the log line, the counters and the bad-command count. Whether the
// session goes on is ss.endReason == "" afterwards.
func (ss *session) answer(err error) {
	var af *authFailure
	if errors.As(err, &af) {
		ss.authFailed(af)
		return
	}
	o := decide(err)
	if o.end != "" && ss.endReason == "" {
		ss.endReason = o.end
	}
	if o.count != nil {
		o.count(&ss.srv.stats)
	}
	if o.msg != "" {
		ss.log(o.level, o.msg, o.attrs...)
	}
	if o.reply == nil {
		return
	}
	ss.writeErr(o.reply)
	if o.bad {
		ss.badCommand()
	} else {
		ss.bad = 0
	}
}

// writeErr queues the reply e.
func (ss *session) writeErr(e *pop3.Error) {
	if ss.translated() {
		// RFC 6856 §3: the text in the language LANG chose.
		e = &pop3.Error{Code: e.Code, Text: ss.translateErr(e.Text)}
	}
	ss.reply(e.Reply())
}

// log writes a line about this session: its id, the client's address and
// the user once known, then attrs.
func (ss *session) log(level slog.Level, msg string, attrs ...slog.Attr) {
	l := ss.srv.log
	ctx := context.Background()
	if !l.Enabled(ctx, level) {
		return
	}
	base := []slog.Attr{slog.String("session", ss.id), slog.String("remote", ss.conn.remote.String())}
	if ss.auth.user != "" {
		base = append(base, slog.String("user", ss.auth.user))
	}
	l.LogAttrs(ctx, level, msg, append(base, attrs...)...)
}

// authFailed answers a failed login after the penalty delay. The user
// name the client gave is logged for fail2ban-style matching
// (`authentication failed .* remote=<HOST>`); the password never is.
func (ss *session) authFailed(af *authFailure) {
	ss.auth.fails++
	ss.srv.stats.authFailures.Add(1)
	lim := &ss.srv.opts.Limits
	delay, banned := ss.srv.abuse.failure(ss.srv, ss.conn.remote, af.user, ss.conn.trusted, lim, time.Now())
	attrs := []slog.Attr{
		slog.String("session", ss.id),
		slog.String("remote", ss.conn.remote.String()),
		slog.String("user", af.user),
		slog.String("delay", max(delay, 0).String()),
	}
	if af.mech != "" {
		attrs = append(attrs, slog.String("mech", af.mech))
	}
	ss.srv.log.LogAttrs(context.Background(), slog.LevelWarn, "authentication failed", attrs...)
	if banned {
		ss.srv.log.Warn("address banned after repeated authentication failures", "remote", ss.conn.remote.String(), "for", lim.BanDuration.String())
	}
	if delay > 0 {
		ss.srv.stats.authDelayed.Add(1)
	}
	ok, why := ss.waitPenalty(delay)
	if af.release != nil {
		af.release()
	}
	if !ok {
		ss.endReason = why
		return
	}
	ss.writeErr(af.reply)
	if ss.auth.fails >= maxAuthFailures || banned {
		ss.endReason = "too many authentication failures"
		return
	}
	ss.badCommand()
}
