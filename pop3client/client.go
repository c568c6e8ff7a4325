package pop3client

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
)

const (
	readBufSize = 32 << 10
	// maxStatusLine bounds the first line of every reply, CRLF included
	// (RFC 2449 §4).
	maxStatusLine = pop3.MaxResponseLine
	// maxDataLine bounds a line of a listing or capability list; RFC 1939
	// sets no limit, but a UIDL line is at most 70 octets plus a number.
	maxDataLine = 8 << 10
	// maxChallenge bounds a SASL "+ " line (RFC 5034 sets no limit; OAuth
	// error challenges are small JSON documents).
	maxChallenge = 64 << 10
)

// Client is a connection to a POP3 server.
//
// A Client is not safe for concurrent use: one goroutine issues commands
// and reads message bodies, in order. Only Close may be called from
// another goroutine, to abort whatever is in progress.
//
// A call that fails with *Error (an -ERR reply) leaves the connection
// usable. Any other failure — a network error, a canceled context, a
// protocol violation — closes the connection, and every later call
// returns an error wrapping ErrClosed.
type Client struct {
	opts Options
	log  *slog.Logger
	host string // TLS server name unless TLSConfig sets one

	raw  net.Conn // the TCP connection
	conn net.Conn // raw, or a *tls.Conn over it
	br   *bufio.Reader
	bw   *bufio.Writer
	lr   *bufio.Reader // the lines of a listing, over a wire.DotReader

	greeting  string
	timestamp string // APOP timestamp from the greeting, "<…>"
	caps      Caps   // nil until CAPA was asked in the current state
	isTLS     bool

	body     *body     // the message being read, if any
	deadline time.Time // the current operation's context deadline
	budget   int       // octets a line read may still take from conn; -1: unlimited

	err    error       // why the connection became unusable
	closed atomic.Bool // set by Close, from any goroutine
}

// Dial connects to the POP3 server at addr ("host:port"), sets up TLS as
// opts say, and reads the greeting. ctx bounds the dial, the handshakes
// and the greeting; it does not outlive Dial.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pop3client: %w", err)
	}
	dctx := ctx
	if o.Timeout > 0 {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, o.Timeout)
		defer cancel()
	}
	conn, err := o.Dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pop3client: %w", err)
	}
	return newClient(ctx, conn, host, o)
}

// NewClient starts a session over an existing connection (not yet TLS:
// Options.TLS decides) and reads the greeting, within Options.Timeout. The
// TLS server name, unless TLSConfig sets one, is the remote address' host.
// On error conn is closed.
func NewClient(conn net.Conn, opts *Options) (*Client, error) {
	o, err := opts.withDefaults()
	if err != nil {
		conn.Close()
		return nil, err
	}
	host := conn.RemoteAddr().String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return newClient(context.Background(), conn, host, o)
}

func newClient(ctx context.Context, conn net.Conn, host string, o Options) (*Client, error) {
	c := &Client{
		opts:   o,
		log:    o.Logger,
		host:   host,
		raw:    conn,
		conn:   conn,
		budget: -1,
	}
	c.br = bufio.NewReaderSize(connReader{c}, readBufSize)
	c.bw = bufio.NewWriterSize(connWriter{c}, 4096)
	c.lr = bufio.NewReaderSize(nil, 4096)
	err := c.op(ctx, "greeting", func() error {
		if o.TLS == TLSImplicit {
			if err := c.handshake(ctx); err != nil {
				return err
			}
		}
		if err := c.readGreeting(); err != nil {
			return err
		}
		if o.TLS == TLSStartTLS {
			return c.stls(ctx)
		}
		return nil
	})
	if err != nil {
		c.Close()
		return nil, err
	}
	c.log.Debug("pop3 connected", "remote", conn.RemoteAddr().String(), "tls", c.isTLS)
	return c, nil
}

// Greeting returns the text of the server's greeting, after "+OK ".
func (c *Client) Greeting() string { return c.greeting }

// TLSConnectionState returns the TLS state, and false on a plain
// connection.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Close closes the connection without QUIT: the server does not enter the
// UPDATE state, so messages marked deleted stay (RFC 1939 §6). It may be
// called from any goroutine, and aborts a call in progress.
func (c *Client) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	if err := c.raw.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// connReader reads from the current transport with a deadline set before
// each read: the earlier of the operation's context deadline and
// Options.Timeout from now. While a line is being read it also enforces
// the line's budget, so that a server cannot make one status line cost
// unbounded time.
type connReader struct{ c *Client }

var errBudget = errors.New("line budget exhausted")

func (r connReader) Read(p []byte) (int, error) {
	c := r.c
	if c.budget == 0 {
		return 0, errBudget
	}
	if c.budget > 0 && len(p) > c.budget {
		p = p[:c.budget]
	}
	c.conn.SetReadDeadline(c.ioDeadline())
	n, err := c.conn.Read(p)
	if c.budget > 0 {
		c.budget -= n
	}
	return n, err
}

type connWriter struct{ c *Client }

func (w connWriter) Write(p []byte) (int, error) {
	w.c.conn.SetWriteDeadline(w.c.ioDeadline())
	return w.c.conn.Write(p)
}

func (c *Client) ioDeadline() time.Time {
	var d time.Time
	if c.opts.Timeout > 0 {
		d = time.Now().Add(c.opts.Timeout)
	}
	if !c.deadline.IsZero() && (d.IsZero() || c.deadline.Before(d)) {
		d = c.deadline
	}
	return d
}

// opError is a failure of a command other than an -ERR reply.
type opError struct {
	cmd    string
	err    error
	usable bool // the connection is still in step (e.g. a canceled AUTH)
}

func (e *opError) Error() string { return "pop3client: " + e.cmd + ": " + e.err.Error() }
func (e *opError) Unwrap() error { return e.err }

// errServerClosed wraps io.ErrUnexpectedEOF so callers can test for it.
var errServerClosed = fmt.Errorf("connection closed by server: %w", io.ErrUnexpectedEOF)

// usable returns nil if commands may be sent.
func (c *Client) usable() error {
	if c.err != nil {
		return fmt.Errorf("%w (after: %v)", ErrClosed, c.err)
	}
	if c.closed.Load() {
		return ErrClosed
	}
	return nil
}

// begin starts an operation under ctx: a message still being read is
// drained first, ctx's deadline applies to every read and write, and
// canceling ctx closes the connection (aborting blocked I/O). The
// returned stop must be passed to end.
func (c *Client) begin(ctx context.Context, cmd string) (stop func() bool, err error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if c.body != nil {
		if err := c.body.Close(); err != nil {
			return nil, err
		}
		if err := c.usable(); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, &opError{cmd: cmd, err: err, usable: true}
	}
	c.deadline, _ = ctx.Deadline()
	return context.AfterFunc(ctx, func() { c.raw.Close() }), nil
}

// end finishes an operation begun with begin and decides what err means
// for the connection.
func (c *Client) end(ctx context.Context, cmd string, stop func() bool, err error) error {
	c.deadline = time.Time{}
	stopped := stop()
	if err == nil {
		if !stopped {
			// Canceled just as the operation finished: the call
			// succeeded, but the connection is gone.
			c.broken(&opError{cmd: cmd, err: ctx.Err()})
		}
		return nil
	}
	var perr *Error
	var oerr *opError
	switch {
	case errors.As(err, &perr) && perr == err:
		if !stopped {
			c.broken(&opError{cmd: cmd, err: ctx.Err()})
		}
		return err
	case errors.As(err, &oerr) && oerr == err && oerr.usable && stopped:
		return err
	}
	// The connection is out of step or gone.
	if cerr := ctxErr(ctx); cerr != nil {
		err = &opError{cmd: commandOf(err, cmd), err: cerr}
	} else if c.closed.Load() && c.err == nil && !isProtocol(err) {
		err = &opError{cmd: commandOf(err, cmd), err: ErrClosed}
	}
	c.broken(err)
	return err
}

// ctxErr is ctx.Err(), or DeadlineExceeded from the moment the deadline
// passes: a read can time out on it a moment before the context's own
// timer fires.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

func isProtocol(err error) bool {
	var p *ProtocolError
	return errors.As(err, &p)
}

func commandOf(err error, def string) string {
	var p *ProtocolError
	var o *opError
	switch {
	case errors.As(err, &p):
		return p.Command
	case errors.As(err, &o):
		return o.cmd
	}
	return def
}

// broken records why the connection can no longer be used and closes it.
func (c *Client) broken(err error) {
	if c.err == nil {
		c.err = err
		c.log.Debug("pop3 connection closed", "err", err)
	}
	c.Close()
}

// op runs f as one operation.
func (c *Client) op(ctx context.Context, cmd string, f func() error) error {
	stop, err := c.begin(ctx, cmd)
	if err != nil {
		return err
	}
	return c.end(ctx, cmd, stop, f())
}

// handshake runs the TLS client handshake over the raw connection.
func (c *Client) handshake(ctx context.Context) error {
	tc := tls.Client(c.raw, c.tlsConfig())
	c.raw.SetDeadline(c.ioDeadline())
	err := tc.HandshakeContext(ctx)
	c.raw.SetDeadline(time.Time{})
	if err != nil {
		return &opError{cmd: "TLS handshake", err: err}
	}
	c.conn = tc
	c.isTLS = true
	st := tc.ConnectionState()
	c.log.Debug("pop3 tls established", "version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	return nil
}

func (c *Client) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if c.opts.TLSConfig != nil {
		cfg = c.opts.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = c.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if pin := c.opts.PinSHA256; pin != nil {
		// The pin replaces chain and name verification; VerifyConnection
		// runs whatever InsecureSkipVerify says.
		cfg.InsecureSkipVerify = true
		next := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrPinMismatch
			}
			sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
			if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
				return fmt.Errorf("%w (the server's is %s)", ErrPinMismatch, Fingerprint(sum[:]))
			}
			if next != nil {
				return next(cs)
			}
			return nil
		}
	}
	return cfg
}

// Fingerprint formats a SHA-256 digest as openssl prints fingerprints:
// upper-case hex octets separated by colons.
func Fingerprint(sum []byte) string {
	h := strings.ToUpper(hex.EncodeToString(sum))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

// readGreeting reads the server's first line (RFC 1939 §4) and keeps the
// APOP timestamp if there is one.
func (c *Client) readGreeting() error {
	text, err := c.readStatus("greeting")
	if err != nil {
		return err
	}
	c.greeting = text
	c.timestamp = apopTimestamp(text)
	return nil
}

// apopTimestamp finds the "<…>" timestamp of an APOP-capable greeting
// (RFC 1939 §7: the syntax of a msg-id).
func apopTimestamp(text string) string {
	i := strings.IndexByte(text, '<')
	if i < 0 {
		return ""
	}
	j := strings.IndexByte(text[i:], '>')
	if j < 2 {
		return ""
	}
	ts := text[i : i+j+1]
	for k := 1; k < len(ts)-1; k++ {
		if ts[k] <= ' ' || ts[k] >= 0x7f || ts[k] == '<' {
			return ""
		}
	}
	return ts
}

// checkArg refuses what cannot travel in a command line.
func checkArg(cmd, s string) error {
	if strings.ContainsAny(s, "\r\n\x00") {
		return &opError{cmd: cmd, err: errors.New("argument contains CR, LF or NUL"), usable: true}
	}
	return nil
}

// writeLine queues a line; shown is what the trace log gets instead.
func (c *Client) writeLine(line, shown string) {
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
	c.trace("C", shown)
}

func (c *Client) flush(cmd string) error {
	if err := c.bw.Flush(); err != nil {
		return &opError{cmd: cmd, err: err}
	}
	return nil
}

// command sends one command line of at most 255 octets (RFC 2449 §4)
// and reads its status line. name labels errors; shown is logged.
func (c *Client) command(name, line, shown string) (string, error) {
	if len(line)+2 > pop3.MaxCommandLine {
		return "", &opError{cmd: name, err: fmt.Errorf("command line of %d octets exceeds the 255-octet limit", len(line)+2), usable: true}
	}
	c.writeLine(line, shown)
	if err := c.flush(name); err != nil {
		return "", err
	}
	return c.readStatus(name)
}

// readLine reads one line of at most max octets, CRLF included.
func (c *Client) readLine(br *bufio.Reader, cmd string, max int) ([]byte, error) {
	line, err := c.readRaw(br, max)
	if err != nil {
		return nil, c.readErr(cmd, err)
	}
	return line, nil
}

// readRaw is wire.ReadLine with the line's budget of network reads.
func (c *Client) readRaw(br *bufio.Reader, max int) ([]byte, error) {
	c.budget = max + 2*readBufSize
	line, err := wire.ReadLine(br, max)
	c.budget = -1
	return line, err
}

func (c *Client) readErr(cmd string, err error) error {
	switch {
	case errors.Is(err, wire.ErrLineTooLong), errors.Is(err, errBudget):
		return protoErr(cmd, ErrLineTooLong, nil)
	case errors.Is(err, wire.ErrBadTerminator):
		return protoErr(cmd, ErrNotTerminated, nil)
	case err == io.EOF, err == io.ErrUnexpectedEOF:
		return &opError{cmd: cmd, err: errServerClosed}
	}
	return &opError{cmd: cmd, err: err}
}

// readStatus reads a status line: the text after "+OK", or an *Error.
func (c *Client) readStatus(cmd string) (string, error) {
	line, err := c.readLine(c.br, cmd, maxStatusLine)
	if err != nil {
		return "", err
	}
	c.trace("S", string(line))
	return parseStatus(cmd, line)
}

func parseStatus(cmd string, line []byte) (string, error) {
	switch {
	case hasIndicator(line, "+OK"):
		return strings.TrimLeft(string(line[3:]), " "), nil
	case hasIndicator(line, "-ERR"):
		return "", parseErr(cmd, string(line[4:]))
	}
	return "", protoErr(cmd, ErrMalformed, line)
}

func hasIndicator(line []byte, ind string) bool {
	return len(line) >= len(ind) && string(line[:len(ind)]) == ind &&
		(len(line) == len(ind) || line[len(ind)] == ' ')
}

// parseErr reads the text after "-ERR": an optional [CODE] (RFC 2449 §8:
// levels of printable octets other than '/' and ']', separated by '/'),
// then free text.
func parseErr(cmd, rest string) *Error {
	text := strings.TrimLeft(rest, " ")
	e := &Error{Command: cmd, Text: text}
	if len(text) < 3 || text[0] != '[' {
		return e
	}
	end := strings.IndexByte(text, ']')
	if end < 2 {
		return e
	}
	code := text[1:end]
	prevSlash := true
	for i := 0; i < len(code); i++ {
		b := code[i]
		switch {
		case b == '/':
			if prevSlash {
				return e
			}
			prevSlash = true
		case b > ' ' && b < 0x7f && b != '[':
			prevSlash = false
		default:
			return e
		}
	}
	if prevSlash {
		return e
	}
	e.Code = pop3.Code(strings.ToUpper(code))
	e.Text = strings.TrimLeft(text[end+1:], " ")
	return e
}

// readListing reads the lines of a multi-line reply through a
// wire.DotReader and passes each, unstuffed and without its line end, to
// f. The reply is read to its end even when f fails, so that the
// connection stays in step.
func (c *Client) readListing(cmd string, f func(line []byte) error) error {
	c.lr.Reset(wire.NewDotReader(c.br))
	defer c.lr.Reset(nil)
	var ferr error
	for {
		line, err := c.readRaw(c.lr, maxDataLine)
		if err == io.EOF {
			// The DotReader's io.EOF: the terminating line.
			return ferr
		}
		if err != nil {
			return c.readErr(cmd, err)
		}
		if ferr == nil {
			ferr = f(line)
		}
	}
}

// trace logs a protocol line at LevelTrace.
func (c *Client) trace(dir, line string) {
	if c.log.Enabled(context.Background(), LevelTrace) {
		c.log.Log(context.Background(), LevelTrace, "pop3 "+dir+": "+line)
	}
}
