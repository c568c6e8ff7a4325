package proxyproto

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postie-mail/postie/internal/lograte"
)

// Options configure a Listener.
type Options struct {
	// Trusted are the addresses of the proxies (load balancers). A
	// connection from them must start with a PROXY header, and its
	// client address is the header's; a connection from anywhere else
	// is the client itself and must not send one. Empty: no proxy is
	// trusted and every header is refused.
	Trusted []netip.Prefix
	// Timeout bounds the wait for a trusted proxy's header, from the
	// connection's acceptance (default 10s). A proxy sends it at once;
	// the server's usual pre-login timeout is a fitting bound.
	Timeout time.Duration
	// MaxPending bounds the headers being read at once (default 256);
	// further connections wait in the kernel's backlog.
	MaxPending int
	// Proto names the listener in the log ("pop3", "lmtp", ...).
	Proto string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Stats receives the counts (it may be shared by listeners); nil:
	// the listener's own.
	Stats *Stats
}

// Stats count what Listeners saw. The fields are safe for concurrent use.
type Stats struct {
	// HeadersV1 and HeadersV2 count the connections accepted with a
	// header of each version; Local those of them without a client
	// address (v2 LOCAL, v1 UNKNOWN: health checks), served with the
	// proxy's own address.
	HeadersV1, HeadersV2, Local atomic.Uint64
	// Untrusted counts headers refused from addresses not in
	// Options.Trusted; Missing trusted proxies' connections that did not
	// start with one; Malformed headers that did not parse (too long
	// included); Timeout headers not complete within Options.Timeout;
	// Closed trusted proxies' connections closed before a byte came
	// (a plain TCP health check).
	Untrusted, Missing, Malformed, Timeout, Closed atomic.Uint64
}

// Listener accepts connections from a net.Listener and applies the PROXY
// protocol policy of its Options: see the package documentation. Accept
// never waits for a header: headers are read in goroutines of their own,
// and Accept returns the connections whose header is complete (and those
// of direct clients) as they come.
type Listener struct {
	ln    net.Listener
	opts  Options
	stats *Stats
	logs  map[string]*lograte.Limit // by reason, so that one flood hides no other

	// With trusted proxies only:
	ready   chan accepted // handed to Accept
	done    chan struct{} // closed by Close
	failed  chan struct{} // closed when ln.Accept failed for good
	err     error         // that failure; set before failed is closed
	sem     chan struct{} // one per header being read
	wg      sync.WaitGroup
	mu      sync.Mutex
	pending map[net.Conn]struct{} // reading a header
	once    sync.Once
}

type accepted struct {
	c   net.Conn
	err error
}

// NewListener returns a Listener accepting from ln under opts.
func NewListener(ln net.Listener, opts Options) *Listener {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 256
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	l := &Listener{ln: ln, opts: opts, stats: opts.Stats, logs: map[string]*lograte.Limit{}}
	for _, r := range []string{ReasonUntrusted, ReasonMissing, ReasonMalformed, ReasonTimeout} {
		l.logs[r] = &lograte.Limit{}
	}
	if l.stats == nil {
		l.stats = &Stats{}
	}
	if len(opts.Trusted) == 0 {
		return l // Accept wraps each connection as it comes
	}
	l.ready = make(chan accepted)
	l.done = make(chan struct{})
	l.failed = make(chan struct{})
	l.sem = make(chan struct{}, opts.MaxPending)
	l.pending = map[net.Conn]struct{}{}
	l.wg.Add(1)
	go l.loop()
	return l
}

// Stats returns the counts of l.
func (l *Listener) Stats() *Stats { return l.stats }

// Addr is the address of the listener underneath.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept returns the next connection: a *Conn whose RemoteAddr is the
// client's.
func (l *Listener) Accept() (net.Conn, error) {
	if l.ready == nil {
		c, err := l.ln.Accept()
		if err != nil {
			return nil, err
		}
		return l.direct(c, peerAddr(c)), nil
	}
	select {
	case a := <-l.ready:
		return a.c, a.err
	case <-l.failed:
		return nil, l.err
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: net.ErrClosed}
	}
}

// Close closes the listener and the connections whose header is still
// being read; it returns once their goroutines have ended.
func (l *Listener) Close() error {
	err := l.ln.Close()
	if l.ready == nil {
		return err
	}
	l.once.Do(func() {
		close(l.done)
		l.mu.Lock()
		for c := range l.pending {
			c.Close()
		}
		l.mu.Unlock()
	})
	l.wg.Wait()
	return err
}

func (l *Listener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// loop accepts connections: a direct client's goes to Accept at once, a
// trusted proxy's to a goroutine that reads its header first.
func (l *Listener) loop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if isTemporary(err) {
				// Out of descriptors and the like: the server's
				// Accept loop backs off, which paces this one.
				if !l.send(accepted{err: err}) {
					return
				}
				continue
			}
			l.err = err
			close(l.failed)
			return
		}
		peer := peerAddr(c)
		if !l.trusted(peer.Addr()) {
			if !l.send(accepted{c: l.direct(c, peer)}) {
				return
			}
			continue
		}
		select {
		case l.sem <- struct{}{}:
		case <-l.done:
			c.Close()
			return
		}
		l.mu.Lock()
		if l.closed() {
			l.mu.Unlock()
			c.Close()
			<-l.sem
			return
		}
		l.pending[c] = struct{}{}
		l.mu.Unlock()
		l.wg.Add(1)
		go l.handshake(c, peer)
	}
}

// send hands a to Accept; false when the listener was closed first (the
// connection is then closed).
func (l *Listener) send(a accepted) bool {
	select {
	case l.ready <- a:
		return true
	case <-l.done:
		if a.c != nil {
			a.c.Close()
		}
		return false
	}
}

func isTemporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

func (l *Listener) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, p := range l.opts.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the connection's remote IP address and port; invalid for a
// unix socket.
func peerAddr(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// direct wraps the connection of a client that is not a trusted proxy:
// its first bytes are checked for a PROXY header (refused).
func (l *Listener) direct(c net.Conn, peer netip.AddrPort) *Conn {
	return &Conn{Conn: c, remote: c.RemoteAddr(), local: c.LocalAddr(), accepted: time.Now(), sniff: l, peer: peer}
}

// Refusal reasons, the label of the refusal counts and log lines.
const (
	ReasonUntrusted = "untrusted"
	ReasonMissing   = "missing"
	ReasonMalformed = "malformed"
	ReasonTimeout   = "timeout"
	ReasonClosed    = "closed"
)

// errClosedEarly: the proxy closed the connection before sending a byte.
var errClosedEarly = errors.New("proxyproto: connection closed before the header")

// handshake reads the header of a trusted proxy's connection and hands
// the connection to Accept, or refuses it.
func (l *Listener) handshake(c net.Conn, peer netip.AddrPort) {
	defer l.wg.Done()
	defer func() { <-l.sem }()
	start := time.Now()
	c.SetReadDeadline(start.Add(l.opts.Timeout))
	h, rest, err := readHeader(c)
	c.SetReadDeadline(time.Time{})
	l.mu.Lock()
	delete(l.pending, c)
	l.mu.Unlock()
	if l.closed() {
		c.Close()
		return
	}
	if err != nil {
		l.refuse(c, peer, err)
		return
	}
	pc := &Conn{Conn: c, remote: c.RemoteAddr(), local: c.LocalAddr(), accepted: start,
		buf: rest, peer: peer, header: &h}
	if h.HasAddrs() {
		pc.remote = tcpAddr(h.Source)
		pc.local = tcpAddr(h.Dest)
	} else {
		l.stats.Local.Add(1)
	}
	if h.Version == 1 {
		l.stats.HeadersV1.Add(1)
	} else {
		l.stats.HeadersV2.Add(1)
	}
	l.send(accepted{c: pc})
}

func tcpAddr(ap netip.AddrPort) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
}

// refuse closes the connection of a trusted proxy whose header failed,
// and logs and counts why.
func (l *Listener) refuse(c net.Conn, peer netip.AddrPort, err error) {
	c.Close()
	var reason, msg string
	level := slog.LevelWarn
	var perr *Error
	switch {
	case errors.Is(err, ErrNoHeader):
		reason, msg = ReasonMissing, "no PROXY header from a trusted proxy (does the balancer send one: send-proxy or send-proxy-v2?); connection closed"
		l.stats.Missing.Add(1)
	case errors.As(err, &perr):
		reason, msg = ReasonMalformed, "malformed PROXY header; connection closed"
		l.stats.Malformed.Add(1)
	case errors.Is(err, os.ErrDeadlineExceeded):
		reason, msg = ReasonTimeout, "no complete PROXY header in time from a trusted proxy (does the balancer send one: send-proxy or send-proxy-v2?); connection closed"
		l.stats.Timeout.Add(1)
	default:
		// Closed or reset before a byte: HAProxy's plain TCP check
		// does that every few seconds.
		reason, msg = ReasonClosed, "a trusted proxy closed its connection before the PROXY header"
		level = slog.LevelDebug
		l.stats.Closed.Add(1)
	}
	if level == slog.LevelWarn {
		ok, suppressed := l.logs[reason].Allow(time.Now())
		if !ok {
			return
		}
		l.opts.Logger.Warn(msg, "proto", l.opts.Proto, "proxy", peer.String(), "reason", reason, "err", err.Error(), "timeout", l.opts.Timeout.String(), "suppressed", suppressed)
		return
	}
	l.opts.Logger.Debug(msg, "proto", l.opts.Proto, "proxy", peer.String(), "reason", reason, "err", err.Error())
}

// readHeader reads a header from r: what it read past the header is
// returned (the client's first bytes). It reads at most MaxLen bytes
// before deciding.
func readHeader(r io.Reader) (Header, []byte, error) {
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			if cap(buf) >= MaxLen {
				// Parse decides within MaxLen bytes: not reached.
				return Header{}, nil, &Error{Version: 0, Reason: "header too long"}
			}
			nb := make([]byte, len(buf), min(2*cap(buf), MaxLen))
			copy(nb, buf)
			buf = nb
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, used, err := Parse(buf)
		switch {
		case err == nil:
			var rest []byte
			if used < len(buf) {
				rest = append([]byte(nil), buf[used:]...)
			}
			return h, rest, nil
		case !errors.Is(err, ErrIncomplete):
			return Header{}, nil, err
		}
		if rerr != nil {
			switch {
			case errors.Is(rerr, os.ErrDeadlineExceeded):
				return Header{}, nil, rerr
			case len(buf) == 0:
				return Header{}, nil, errors.Join(errClosedEarly, rerr)
			default:
				return Header{}, nil, &Error{Version: version(buf), Reason: "connection ended inside the header: " + rerr.Error()}
			}
		}
	}
}

func version(b []byte) int {
	if len(b) > 0 && b[0] == sigV1[0] {
		return 1
	}
	return 2
}

// Conn is a connection accepted by a Listener. RemoteAddr and LocalAddr
// are the client's and the address it connected to, from the header when
// it carried them, else the connection's own.
type Conn struct {
	net.Conn
	remote, local net.Addr
	peer          netip.AddrPort // the TCP peer: the proxy, or the client itself
	header        *Header        // nil: a direct client
	accepted      time.Time

	// Read's state (Read is not called concurrently).
	buf   []byte    // read past the header, served first
	sniff *Listener // non-nil until the first bytes of a direct client are checked
}

// RemoteAddr is the client's address.
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the address the client connected to.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// Proxy returns the address of the proxy the connection came through and
// its header; ok is false for a client that connected directly.
func (c *Conn) Proxy() (proxy netip.AddrPort, h Header, ok bool) {
	if c.header == nil {
		return netip.AddrPort{}, Header{}, false
	}
	return c.peer, *c.header, true
}

// NetConn is the accepted TCP connection itself. Writes may go to it
// directly (so that a sender can use sendfile(2) on a *net.TCPConn);
// reads must go through c, which serves the bytes read past the header.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// AcceptedAt is when the connection was accepted (before its header was
// read), for timeouts that count from the connection.
func (c *Conn) AcceptedAt() time.Time { return c.accepted }

// From finds the *Conn under c, looking through wrappers that have a
// NetConn method (such as *tls.Conn); nil when there is none.
func From(c net.Conn) *Conn {
	for range 8 {
		switch x := c.(type) {
		case *Conn:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// ErrUntrusted is the read error of a connection whose peer sent a PROXY
// header without being a trusted proxy; the connection is closed.
var ErrUntrusted = errors.New("proxyproto: PROXY header from an address that is not a trusted proxy")

func (c *Conn) Read(p []byte) (int, error) {
	if c.sniff != nil {
		if err := c.check(); err != nil {
			return 0, err
		}
	}
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// check looks at a direct client's first read for the signature of a
// PROXY header, which is refused (the connection closed, logged and
// counted); other bytes are kept for Read. It decides on that one read: a
// proxy writes its header at once, and a client that starts like one but
// sends the rest later (or an empty line, the start of the v2 signature)
// must not be kept waiting. Such a header is then read as the protocol's
// data, where it means nothing: the address of a client that is not a
// trusted proxy is never taken from its bytes.
func (c *Conn) check() error {
	var b [len("\r\n\r\n\x00\r\nQUIT\n")]byte
	n, err := c.Conn.Read(b[:])
	if n == 0 {
		return err // checked on the next Read
	}
	l := c.sniff
	c.sniff = nil
	if yes, _ := HasSignature(b[:n]); yes {
		c.Conn.Close()
		l.stats.Untrusted.Add(1)
		if ok, suppressed := l.logs[ReasonUntrusted].Allow(time.Now()); ok {
			l.opts.Logger.Warn("PROXY header from an address that is not in trusted_proxies; connection closed",
				"proto", l.opts.Proto, "remote", c.peer.String(), "reason", ReasonUntrusted, "suppressed", suppressed)
		}
		return ErrUntrusted
	}
	// An error with the bytes comes again on the next Read.
	c.buf = append(c.buf, b[:n]...)
	return nil
}
