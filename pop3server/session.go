package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/sasl"
	"github.com/postie-mail/postie/store"
)

// session is one client connection, from greeting to close. Its state
// is kept by concern: the connection, the login, and the maildrop once
// logged in.
type session struct {
	srv       *Server
	id        string
	start     time.Time
	state     pop3.State
	args      []string  // reused by the tokenizer
	bad       int       // bad commands in a row
	endReason string    // why the session ended; "" while it goes on
	tracing   bool      // the conversation is logged (Options.Trace)
	lang      *language // chosen by LANG; nil: i-default (lang.go)
	utf8      bool      // UTF-8 mode enabled (RFC 6856 §2.1)

	conn connection
	auth authState
	drop maildropState
	// loggedIn is the user once logged in, for SessionList (read from
	// other goroutines).
	loggedIn atomic.Pointer[string]
}

// connection is the transport of a session.
type connection struct {
	nc     net.Conn // the current transport (a *tls.Conn after STLS)
	raw    net.Conn // the accepted connection
	remote netip.Addr
	tls    bool
	// trusted: the client is in Options.TrustedNets. cleartext: a
	// password may travel on this connection (RFC 2595 §2.2, RFC 8314
	// §4): over TLS, from a trusted network, or anywhere when
	// Options.AllowCleartext says so. Both are decided once, when the
	// connection is accepted; STLS sets cleartext. USER, PASS, CAPA and
	// the SASL mechanisms (through sasl.Conn) all follow it.
	trusted   bool
	cleartext bool
	br        *bufio.Reader   // nil while the session waits idle (idle.go)
	w         connWriter      // its buffer pooled while idle
	rc        syscall.RawConn // the accepted TCP connection's, if any
	closeOnce sync.Once
}

// authState is what the AUTHORIZATION state knows, and who logged in.
type authState struct {
	userArg   string // from USER, waiting for PASS
	named     string // the name last given to USER or APOP (for Trace)
	timestamp string // the APOP timestamp of the greeting, when enabled
	saslConn  *sasl.Conn
	fails     int    // failed logins on this connection
	user      string // the authenticated (canonical) user
	// method is how the login under way proves itself, for the login
	// log line: "USER", "APOP" or the SASL mechanism.
	method string
}

// maildropState is the maildrop of a logged-in session: its snapshot,
// the marks of DELE, and what was done for the session-end log line.
type maildropState struct {
	md      store.Maildrop
	msgs    []store.MessageInfo
	deleted []bool
	ndel    int   // messages marked deleted
	delSize int64 // their total size
	total   int64 // size of the whole snapshot
	last    int   // highest message number accessed (RFC 1460 LAST)

	retr, top, dele int
	retrBytes       int64

	// EXPIRE (expire.go).
	expire    int           // the user's policy: days, or expireNever
	expirer   store.Expirer // the maildrop, when the policy is enforced
	index     []int         // message i is the store's index[i]; nil: the same
	retrieved []bool        // sent whole in this session (for EXPIRE 0)
	sent      int64         // octets of the last message sent (RETR, TOP)
}

const (
	readBufSize  = 1024
	writeBufSize = 4096
	// Pre-login sessions get at most this many bad commands in a row.
	maxBadBeforeLogin = 10
	maxAuthFailures   = 3
)

// A msgWriter converts a message being sent and buffers its wire form.
// They are pooled, so that idle sessions stay small, in two sizes: big
// messages get the large one, whose fewer and larger reads and writes
// (in 64 KiB, out 192 KiB to 256 KiB each) send them about a tenth
// faster; the others (most mail) the small one, whose 128 KiB output
// buffer holds a whole message of up to about 95 KiB (with its status line
// and the replies before it), so that it goes out in one write. The output
// buffer is four times the input buffer: a read converts into it whole (at
// most doubling) until it is three quarters full.
type msgWriter struct {
	dw *wire.DotWriter
	in []byte
}

// bigMessage is the size from which messages get the large msgWriter.
const bigMessage = 1 << 20

var (
	smallMsgWriters = sync.Pool{New: func() any { return newMsgWriter(32 << 10) }}
	bigMsgWriters   = sync.Pool{New: func() any { return newMsgWriter(64 << 10) }}
)

func newMsgWriter(in int) *msgWriter {
	return &msgWriter{dw: wire.NewDotWriter(nil, 4*in), in: make([]byte, in)}
}

func newSession(srv *Server, c net.Conn, remote netip.Addr) *session {
	ss := &session{
		srv:   srv,
		start: time.Now(),
		id:    strconv.FormatUint(srv.nextID.Add(1), 36),
	}
	if at := acceptedAt(c); !at.IsZero() && at.Before(ss.start) {
		// The listener read a PROXY header first: that time counts
		// against LoginTimeout too.
		ss.start = at
	}
	_, isTLS := c.(*tls.Conn)
	trusted := srv.trusted(remote)
	ss.conn = connection{
		nc:        c,
		raw:       c,
		remote:    remote,
		tls:       isTLS,
		trusted:   trusted,
		cleartext: isTLS || srv.opts.AllowCleartext || trusted,
		br:        newReader(c),
		w:         newConnWriter(c, srv.opts.Limits.WriteTimeout, 0),
	}
	ss.conn.w.acquire()
	if sc, ok := c.(syscall.Conn); ok {
		ss.conn.rc, _ = sc.SyscallConn()
	}
	return ss
}

// acceptedAt is when c was accepted, for a connection that says so (one
// whose listener read a PROXY protocol header first), looking through
// wrappers such as *tls.Conn; zero when unknown.
func acceptedAt(c net.Conn) time.Time {
	for range 4 {
		if a, ok := c.(interface{ AcceptedAt() time.Time }); ok {
			return a.AcceptedAt()
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	return time.Time{}
}

// abort closes the connection from another goroutine (server Close).
func (ss *session) abort() {
	ss.conn.closeOnce.Do(func() { ss.conn.raw.Close() })
}

// serve runs the session. Its own frame is kept small, and the wait for
// the next command happens right in it (waitIdle), so that the stack of
// an idle session is shallow: the runtime halves a goroutine's stack at
// a garbage collection when less than a quarter of it is in use, and an
// idle session then holds 4 KiB of stack instead of the 8 KiB that a
// login grows it to. The work is in greet and command.
func (ss *session) serve() {
	defer ss.finish()
	defer ss.recoverPanic()
	if !ss.greet() {
		return
	}
	for ss.readyToRead() {
		if !ss.command(ss.waitIdle()) {
			return
		}
	}
}

// recoverPanic, deferred by serve, ends the session on a panic in it: a
// bug in one session must not take the server down with it.
func (ss *session) recoverPanic() {
	if r := recover(); r != nil {
		ss.srv.log.Error("session panic", "session", ss.id, "remote", ss.conn.remote.String(), "panic", r, "stack", string(debug.Stack()))
		ss.endReason = "internal error"
		ss.conn.w.acquire()
		ss.writeErr(errInternal)
		ss.flush()
	}
}

// handshake runs a TLS handshake bounded by the deadline already set on
// tc. It is tc.Handshake, not HandshakeContext with the server's context:
// that one starts a goroutine per handshake to watch the context, and the
// server needs none, since Close closes every session's connection
// (abort), which ends a handshake as well (TestCloseEndsTLSHandshakes).
func handshake(tc *tls.Conn) error { return tc.Handshake() }

// greet completes an implicit-TLS handshake and sends the greeting; it
// reports whether the session goes on.
func (ss *session) greet() bool {
	if tc, ok := ss.conn.nc.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(ss.srv.opts.Limits.AuthTimeout))
		if err := handshake(tc); err != nil {
			ss.endReason = "tls handshake failed"
			ss.srv.stats.tlsFailures.Add(1)
			ss.srv.log.Info("tls handshake failed", "session", ss.id, "remote", ss.conn.remote.String(), "err", err)
			return false
		}
		tc.SetDeadline(time.Time{})
	}
	ss.traceCheck(nil)
	if ss.srv.opts.APOP {
		// RFC 1939 §7: unique per greeting, msg-id syntax.
		ss.auth.timestamp = "<" + strconv.Itoa(os.Getpid()) + "." + ss.id + "." + strconv.FormatInt(time.Now().UnixNano(), 36) + "@" + ss.srv.opts.Hostname + ">"
		ss.reply("+OK " + ss.srv.opts.Hostname + " POP3 server ready " + ss.auth.timestamp + "\r\n")
	} else {
		ss.reply(ss.srv.greeting)
	}
	return ss.flush()
}

// readyToRead sets the read deadline for the next command; it reports
// false when the session is over because a write failed.
func (ss *session) readyToRead() bool {
	if ss.conn.w.err != nil {
		// A write failed: the client stopped reading (the write
		// timed out) or went away. However much it keeps
		// sending, the session is over; waiting for its input
		// to run dry would let it hold the maildrop for as long
		// as it likes.
		if ss.endReason == "" {
			ss.endReason = "write failed"
		}
		return false
	}
	timeout := ss.srv.opts.Limits.AuthTimeout
	if ss.state == pop3.StateTransaction {
		timeout = ss.srv.opts.Limits.IdleTimeout
	}
	deadline := time.Now().Add(timeout)
	if ss.state == pop3.StateAuthorization {
		// The whole AUTHORIZATION state is bounded too: commands
		// now and then do not keep a connection that never logs in.
		if end := ss.loginDeadline(); end.Before(deadline) {
			deadline = end
		}
	}
	ss.conn.nc.SetReadDeadline(deadline)
	return true
}

// command reads one command line and runs it, once waitIdle returned
// err; it reports whether the session goes on.
func (ss *session) command(err error) bool {
	limit := pop3.MaxCommandLine
	if ss.state == pop3.StateAuthorization && ss.srv.opts.SASL != nil {
		// Clients such as mpop put an OAuth token of several KB
		// on the AUTH line itself, which RFC 5034 §4 tells them
		// not to do; accept it as a continuation line would be.
		limit = maxAuthLine
	}
	var line []byte
	if err == nil {
		line, err = wire.ReadLine(ss.conn.br, limit)
		ss.conn.w.acquire()
	}
	if err != nil {
		if errors.Is(err, wire.ErrLineTooLong) {
			if ss.traceCheck(nil); ss.tracing {
				ss.trace("c", "<line too long>")
			}
			return ss.badLine(badCommand(errLineTooLong))
		}
		ss.endOnReadError(err)
		return false
	}
	cmd, ok := wire.ParseCommand(line, ss.args)
	tooLong := ok && len(line)+1 > pop3.MaxCommandLine && cmd.Verb != "AUTH"
	if ss.traceCheck(&cmd); ss.tracing {
		ss.traceCommand(&cmd, ok, tooLong)
	}
	if tooLong {
		return ss.badLine(badCommand(errLineTooLong))
	}
	if !ok {
		return ss.badLine(badCommand(errUnknownCommand))
	}
	ss.args = cmd.Args
	if !ss.dispatch(&cmd) {
		ss.flush()
		return false
	}
	return ss.flushIfIdle()
}

// endOnReadError records why the session ended and, on an idle timeout,
// tells the client (RFC 1939 §3 autologout; no UPDATE state).
func (ss *session) endOnReadError(err error) {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() && errors.Is(err, os.ErrDeadlineExceeded):
		if ss.state == pop3.StateAuthorization && !time.Now().Before(ss.loginDeadline()) {
			ss.endReason = "login timeout"
			ss.writeErr(errAutologoutLogin)
		} else {
			ss.endReason = "idle timeout"
			ss.writeErr(errAutologoutIdle)
		}
		ss.flush()
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		ss.endReason = "client disconnected"
	default:
		ss.endReason = "connection error"
	}
}

// loginDeadline is when a session that has not logged in is closed.
func (ss *session) loginDeadline() time.Time {
	return ss.start.Add(ss.srv.opts.Limits.LoginTimeout)
}

// dispatch runs one command and answers its error, if any. It returns
// false when the session must end.
func (ss *session) dispatch(c *wire.Command) bool {
	if err := ss.run(c); err != nil {
		ss.answer(err)
	}
	return ss.endReason == ""
}

// run runs the handler of one command: nil when it has replied, else
// the error that decides the reply (see answer).
func (ss *session) run(c *wire.Command) error {
	if ss.state == pop3.StateAuthorization {
		switch c.Verb {
		case "USER":
			return ss.cmdUser(c)
		case "PASS":
			ss.auth.method = "USER"
			return ss.cmdPass(c)
		case "APOP":
			ss.auth.method = "APOP"
			return ss.cmdAPOP(c)
		case "AUTH":
			if len(c.Args) > 0 {
				// Logged only once the mechanism logged in: one of ours.
				ss.auth.method = strings.ToUpper(c.Args[0])
			}
			return ss.cmdAuth(c)
		case "STLS":
			return ss.cmdSTLS(c)
		case "CAPA":
			return ss.cmdCapa(c)
		case "UTF8":
			return ss.cmdUTF8(c)
		case "LANG":
			return ss.cmdLang(c)
		case "QUIT":
			return ss.cmdQuitAuth(c)
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST":
			return badCommand(errNotBeforeLogin)
		}
		return badCommand(errUnknownCommand)
	}
	switch c.Verb {
	case "STAT":
		return ss.cmdStat(c)
	case "LIST":
		return ss.cmdList(c)
	case "UIDL":
		return ss.cmdUidl(c)
	case "RETR":
		return ss.cmdRetr(c)
	case "TOP":
		return ss.cmdTop(c)
	case "DELE":
		return ss.cmdDele(c)
	case "RSET":
		return ss.cmdRset(c)
	case "NOOP":
		return ss.cmdNoop(c)
	case "LAST":
		return ss.cmdLast(c)
	case "CAPA":
		return ss.cmdCapa(c)
	case "UTF8":
		return ss.cmdUTF8(c)
	case "LANG":
		return ss.cmdLang(c)
	case "QUIT":
		return ss.cmdQuit(c)
	case "USER", "PASS", "APOP", "AUTH", "STLS":
		return badCommand(errAlreadyLoggedIn)
	}
	return badCommand(errUnknownCommand)
}

// reply queues a response line (or lines) for the client.
func (ss *session) reply(s string) {
	ss.conn.w.WriteString(s)
	if ss.tracing {
		// A copy: s must not escape, so that short replies built
		// for the wire stay off the heap when nothing is traced.
		ss.traceReply(strings.Clone(s))
	}
}

// ok answers a good command and resets the bad-command count.
func (ss *session) ok(s string) error {
	ss.bad = 0
	ss.reply(s)
	return nil
}

// badLine answers a line that is no command at all (over-long, or not a
// keyword) and reports whether the session goes on. When it does not, the
// replies queued so far, with the reason for closing, are sent first.
func (ss *session) badLine(err error) bool {
	ss.answer(err)
	if ss.endReason != "" {
		ss.flush()
		return false
	}
	return ss.flushIfIdle()
}

// badCommand counts a bad command (unknown, wrong state, bad syntax);
// too many in a row end the session.
func (ss *session) badCommand() bool {
	ss.bad++
	ss.srv.stats.bad.Add(1)
	limit := ss.srv.opts.Limits.MaxBadCommands
	if ss.state == pop3.StateAuthorization {
		limit = min(limit, maxBadBeforeLogin)
	}
	if ss.bad >= limit {
		ss.writeErr(errTooManyBad)
		ss.endReason = "too many bad commands"
		return false
	}
	return true
}

// flushIfIdle flushes once the client's pipelined commands are all
// answered (RFC 2449 §6.6 PIPELINING): one write per batch, not per line.
func (ss *session) flushIfIdle() bool {
	if ss.conn.br.Buffered() > 0 {
		return true
	}
	return ss.flush()
}

func (ss *session) flush() bool {
	if err := ss.conn.w.Flush(); err != nil {
		if ss.endReason == "" {
			ss.endReason = "write failed"
		}
		return false
	}
	return true
}

// finish releases the maildrop (deleting nothing unless QUIT committed),
// closes the connection and logs the one line per session.
func (ss *session) finish() {
	ss.closeMaildrop()
	if tc, ok := ss.conn.nc.(*tls.Conn); ok && ss.conn.nc != ss.conn.raw {
		// After STLS the TCP connection is raw, so closing it would skip
		// TLS's close_notify (RFC 8446 §6.1), which clients then report
		// as a truncation. Send it first; abort may cut it short.
		tc.SetWriteDeadline(time.Now().Add(time.Second))
		tc.CloseWrite()
	}
	ss.abort()
	ss.conn.w.release()
	if ss.conn.br != nil {
		putReader(ss.conn.br)
		ss.conn.br = nil
	}
	if ss.endReason == "" {
		ss.endReason = "closed"
	}
	st := &ss.srv.stats
	st.retr.Add(uint64(ss.drop.retr))
	st.retrBytes.Add(uint64(ss.drop.retrBytes))
	st.top.Add(uint64(ss.drop.top))
	st.deleted.Add(uint64(ss.drop.dele))
	// Typed attributes: no boxing of each value into an interface.
	ss.srv.log.LogAttrs(context.Background(), slog.LevelInfo, "session end",
		slog.String("session", ss.id),
		slog.String("remote", ss.conn.remote.String()),
		slog.String("user", ss.auth.user),
		slog.Bool("tls", ss.conn.tls),
		slog.Int("retr", ss.drop.retr),
		slog.Int64("retr_bytes", ss.drop.retrBytes),
		slog.Int("top", ss.drop.top),
		slog.Int("dele", ss.drop.dele),
		slog.String("duration", time.Since(ss.start).Round(time.Millisecond).String()),
		slog.String("reason", ss.endReason),
	)
}

// closeMaildrop releases the maildrop lock, deleting nothing.
func (ss *session) closeMaildrop() {
	if ss.drop.md == nil {
		return
	}
	if err := ss.drop.md.Close(); err != nil {
		ss.log(slog.LevelError, "closing maildrop", slog.Any("err", err))
	}
	ss.drop.md = nil
}

// sleep waits d unless the server is closing; it reports whether the full
// time passed.
func (ss *session) sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
