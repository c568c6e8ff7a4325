package intake

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("intake: server closed")

// ServerOptions configure an LMTP or SMTP Server.
type ServerOptions struct {
	// Deliverer does the deliveries. Required.
	Deliverer *Deliverer
	// LMTP selects LMTP (RFC 2033: LHLO, one reply per recipient after
	// DATA); otherwise the server speaks SMTP and accepts mail for the
	// Deliverer's local domains only, which it needs at least one of.
	LMTP bool
	// TLSConfig enables STARTTLS (SMTP); nil: none.
	TLSConfig *tls.Config
	// MaxConnections bounds concurrent connections; more are answered
	// 421 4.3.2 and closed. Default 100.
	MaxConnections int
	// MaxRecipients bounds the recipients of one transaction (452 4.5.3
	// for more). Default 100 for SMTP, 1000 for LMTP.
	MaxRecipients int
	// RatePerMinute bounds the messages (MAIL commands) one client IP
	// address may send per minute, with bursts of RateBurst (450 4.7.1
	// over it); 0: no limit. Unix-socket clients are not limited.
	RatePerMinute int
	RateBurst     int
	// UnknownPerMinute bounds the unknown recipients (550 5.1.1) one
	// client address may name per minute, in bursts of as many (SMTP
	// only; default 10, negative: no limit), so that RCPT cannot be used
	// to list the users quickly. Over it, every RCPT from the address,
	// known user or not, is answered 450 4.7.1 until the budget refills.
	UnknownPerMinute int
	// MaxConnectionsPerIP bounds the concurrent connections from one
	// client address, an IPv6 /64 counting as one (SMTP only; default
	// 10); more are answered 421 4.7.0 and closed. LMTP clients are the
	// MTA: not bounded.
	MaxConnectionsPerIP int
	// IdleTimeout bounds the wait for a command outside a transaction
	// (before MAIL and after it ends; default 2m): a connection that is
	// idle there costs the server a connection and gives it nothing.
	// RFC 5321 §4.5.3.2 asks clients to wait 5 minutes for replies, not
	// servers for commands.
	IdleTimeout time.Duration
	// ReadTimeout bounds the wait for a command in a transaction and for
	// a whole DATA (default 10m); WriteTimeout a reply (default 1m).
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	// SpoolDir holds messages over 1 MiB while they are delivered
	// (unlinked files); default os.TempDir().
	SpoolDir string
	// Logger defaults to the Deliverer's.
	Logger *slog.Logger
}

// Server is an LMTP or SMTP server delivering through a Deliverer. Its
// lifecycle is net/http.Server's: Serve(ln) for each listener, then
// Shutdown(ctx) or Close.
type Server struct {
	opts  ServerOptions
	d     *Deliverer
	log   *slog.Logger
	srv   *smtp.Server
	proto string // for logs: "lmtp" or "smtp"
	rate  *rateLimiter
	// unknown: the budget of unknown recipients per address (SMTP).
	unknown *rateLimiter

	ctx    context.Context // canceled by Close: deliveries stop
	cancel context.CancelFunc

	mu      sync.Mutex
	closing bool
	lns     map[net.Listener]struct{}
	conns   map[*trackedConn]struct{}
	perIP   map[netip.Addr]int // SMTP connections per address (/64)
	wg      sync.WaitGroup     // one per tracked connection
}

// NewServer checks opts and returns a Server.
func NewServer(opts ServerOptions) (*Server, error) {
	if opts.Deliverer == nil {
		return nil, errors.New("intake: ServerOptions.Deliverer is required")
	}
	if !opts.LMTP && len(opts.Deliverer.domains) == 0 {
		return nil, errors.New("intake: the SMTP server needs local domains (it must not relay)")
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = 100
	}
	if opts.MaxRecipients <= 0 {
		opts.MaxRecipients = 100
		if opts.LMTP {
			opts.MaxRecipients = 1000
		}
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = 10 * time.Minute
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 2 * time.Minute
	}
	if opts.MaxConnectionsPerIP <= 0 {
		opts.MaxConnectionsPerIP = 10
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = time.Minute
	}
	if opts.SpoolDir == "" {
		opts.SpoolDir = os.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = opts.Deliverer.log
	}
	s := &Server{
		opts:  opts,
		d:     opts.Deliverer,
		log:   opts.Logger,
		proto: "smtp",
		lns:   map[net.Listener]struct{}{},
		conns: map[*trackedConn]struct{}{},
		perIP: map[netip.Addr]int{},
	}
	if opts.LMTP {
		s.proto = "lmtp"
	} else {
		s.rate = newRateLimiter(opts.RatePerMinute, opts.RateBurst)
		if opts.UnknownPerMinute == 0 {
			opts.UnknownPerMinute = 10
		}
		s.unknown = newRateLimiter(opts.UnknownPerMinute, opts.UnknownPerMinute)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.LMTP = opts.LMTP
	srv.Domain = s.d.hostname
	srv.MaxMessageBytes = s.d.opts.MaxMessageSize
	srv.MaxRecipients = opts.MaxRecipients
	srv.ReadTimeout = opts.ReadTimeout
	srv.WriteTimeout = opts.WriteTimeout
	srv.TLSConfig = opts.TLSConfig
	srv.ErrorLog = errorLog{s.log, s.proto}
	// Command lines are short; DATA lines are bounded by the same limit.
	// An MTA hands over over LMTP what it accepted, so the LMTP bound is
	// generous: a line over it fails the transaction for good.
	srv.MaxLineLength = 16 << 10
	if opts.LMTP {
		srv.MaxLineLength = 1 << 20
	}
	s.srv = srv
	return s, nil
}

// Serve accepts connections on ln until Shutdown or Close, when it returns
// ErrServerClosed. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	tl := &trackingListener{Listener: ln, s: s}
	s.lns[tl] = struct{}{}
	s.mu.Unlock()
	err := s.srv.Serve(tl)
	s.mu.Lock()
	closing := s.closing
	delete(s.lns, tl)
	s.mu.Unlock()
	ln.Close()
	if closing || err == nil {
		return ErrServerClosed
	}
	return err
}

// Sessions returns the number of open connections.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Shutdown stops accepting connections, closes the idle ones and waits for
// the transactions under way to finish (each connection is closed after
// its reply). When ctx ends first, the rest are closed as by Close: their
// deliveries are canceled and get no 250, so the sender keeps the mail.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.startClosing() {
		return ErrServerClosed
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes the listeners and every connection at once; deliveries
// under way are canceled (nothing is acknowledged that is not on disk).
func (s *Server) Close() error {
	s.startClosing()
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.Conn.Close()
	}
	s.mu.Unlock()
	return nil
}

// startClosing marks the server closing, closes its listeners and its
// idle connections. It reports false when it was closing already.
func (s *Server) startClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.closing = true
	for ln := range s.lns {
		ln.Close()
	}
	for c := range s.conns {
		if !c.busy {
			c.Conn.Close()
		}
	}
	// go-smtp's own Serve loops end when their listener is closed; its
	// Shutdown then returns at once (no connection is its to wait for).
	go s.srv.Shutdown(context.Background())
	return true
}

// trackingListener counts connections, refuses those over the limit and
// remembers each, so that Shutdown can tell idle from busy.
type trackingListener struct {
	net.Listener
	s *Server
}

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		s := l.s
		s.mu.Lock()
		switch {
		case s.closing:
			s.mu.Unlock()
			c.Close()
			continue
		case len(s.conns) >= s.opts.MaxConnections:
			s.mu.Unlock()
			s.log.Warn("too many connections; refusing one", "proto", s.proto, "remote", c.RemoteAddr().String(), "max", s.opts.MaxConnections)
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "421 4.3.2 Too many connections, try again later\r\n")
			c.Close()
			continue
		}
		tc := &trackedConn{Conn: c, s: s}
		if !s.opts.LMTP {
			if ip := remoteIP(c); ip.IsValid() {
				key := addrKey(ip)
				if s.perIP[key] >= s.opts.MaxConnectionsPerIP {
					s.mu.Unlock()
					s.log.Debug("too many connections from one address; refusing one", "proto", s.proto, "remote", c.RemoteAddr().String(), "max", s.opts.MaxConnectionsPerIP)
					c.SetWriteDeadline(time.Now().Add(5 * time.Second))
					io.WriteString(c, "421 4.7.0 Too many connections from your address, try again later\r\n")
					c.Close()
					continue
				}
				s.perIP[key]++
				tc.key = key
			}
		}
		s.conns[tc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		return tc, nil
	}
}

// trackedConn is a connection of the server.
type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
	busy bool       // in a mail transaction (guarded by s.mu)
	key  netip.Addr // counted in s.perIP under this key, if valid
}

// SetReadDeadline is how go-smtp sets its ReadTimeout before each command;
// outside a transaction the wait is cut to IdleTimeout.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.s.mu.Lock()
	busy := c.busy
	c.s.mu.Unlock()
	if end := time.Now().Add(c.s.opts.IdleTimeout); !busy && (t.IsZero() || t.After(end)) {
		t = end
	}
	return c.Conn.SetReadDeadline(t)
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.conns, c)
		if c.key.IsValid() {
			if c.s.perIP[c.key]--; c.s.perIP[c.key] <= 0 {
				delete(c.s.perIP, c.key)
			}
		}
		c.s.mu.Unlock()
		c.s.wg.Done()
	})
	return err
}

// tracked finds our connection under a go-smtp one (TLS included).
func tracked(nc net.Conn) *trackedConn {
	if t, ok := nc.(*tls.Conn); ok {
		nc = t.NetConn()
	}
	tc, _ := nc.(*trackedConn)
	return tc
}

// isClosing reports whether Shutdown or Close was called.
func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

// setBusy marks the connection in or out of a transaction. Out of one,
// on a closing server, the connection is closed: its reply is written.
// It reports false when the server is closing and a transaction may not
// start.
func (s *Server) setBusy(tc *trackedConn, busy bool) bool {
	if tc == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		if !busy {
			tc.busy = false
			tc.Conn.Close()
		}
		return false
	}
	tc.busy = busy
	return true
}

// errorLog passes go-smtp's internal messages to the log.
type errorLog struct {
	log   *slog.Logger
	proto string
}

func (l errorLog) Printf(format string, v ...any) { l.print(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.print(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }
func (l errorLog) print(msg string) {
	if strings.HasPrefix(msg, "panic") && isBDATHangupRace(msg) {
		// A client that hangs up right after a BDAT command: go-smtp's
		// chunk goroutine finds the session already closed (nil) and
		// panics, then recovers. Nothing was delivered and the
		// connection is gone; any client can cause it at will, so it
		// is no Error with a stack trace.
		l.log.Info("intake: client hung up during BDAT", "proto", l.proto)
		return
	}
	if strings.HasPrefix(msg, "panic") {
		l.log.Error("intake: "+msg, "proto", l.proto)
		return
	}
	l.log.Debug("intake: "+msg, "proto", l.proto)
}

// isBDATHangupRace recognizes the panic go-smtp (v0.25.1; v0.26.0 has the
// same code) recovers when Conn.Close has set the session to nil before
// its BDAT goroutine calls Session().Data or LMTPData.
func isBDATHangupRace(msg string) bool {
	return strings.Contains(msg, "nil pointer dereference") &&
		strings.Contains(msg, "go-smtp.(*Conn).handleBdat.func1()")
}

// SocketOptions say who may connect to a unix socket that Listen makes.
// Connecting to an LMTP socket is delivering mail with any sender, so
// only the MTA should be able to: by default the socket is mode 0660
// (owner and group), the directory made for it 0750, and the MTA's user
// is made a member of the socket's group (or Group names the MTA's).
type SocketOptions struct {
	// Mode is the socket's permission bits (default 0660).
	Mode os.FileMode
	// Group, a group name or numeric id, owns the socket and the
	// directory Listen makes for it; "" keeps the process's group.
	Group string
}

// Listen opens a listener for an LMTP/SMTP address: "host:port", or
// "unix:/path" for a unix socket with the default SocketOptions.
func Listen(addr string) (net.Listener, error) {
	return ListenSocket(addr, SocketOptions{})
}

// ListenSocket is Listen with the unix socket's mode and group. A stale
// socket file is replaced; the socket's directory is created if missing
// (mode 0750, in so.Group). An existing directory is left as it is: its
// mode is the operator's. Until its mode and group are set the socket is
// reachable by its owner only.
func ListenSocket(addr string, so SocketOptions) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return net.Listen("tcp", addr)
	}
	if path == "" {
		return nil, errors.New("intake: empty unix socket path")
	}
	mode := so.Mode.Perm()
	if so.Mode == 0 {
		mode = 0o660
	}
	gid := -1
	if so.Group != "" {
		var err error
		if gid, err = lookupGroup(so.Group); err != nil {
			return nil, err
		}
	}
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, err
		}
		// MkdirAll's mode is filtered by the umask: set it exactly.
		if err := os.Chmod(dir, 0o750); err != nil {
			return nil, err
		}
		if gid >= 0 {
			if err := os.Chown(dir, -1, gid); err != nil {
				return nil, fmt.Errorf("intake: socket directory %s: %w", dir, err)
			}
		}
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("intake: %s exists and is not a socket", path)
		}
		// A live server would answer: refuse to steal its socket.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("intake: %s: another server is listening: %w", path, syscall.EADDRINUSE)
		}
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	// Group before mode, so that the mode never applies to the wrong
	// group. Until then the socket has the mode the umask leaves
	// (connecting needs write permission: 0755 lets only the owner).
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("intake: socket %s: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// lookupGroup resolves a group name or numeric id.
func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil && id >= 0 {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, fmt.Errorf("intake: socket group %q: %w", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// addrKey groups IPv6 addresses by /64, the block one host usually has.
func addrKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// remoteIP returns the client's IP address ("" on a unix socket).
func remoteIP(nc net.Conn) netip.Addr {
	ap, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
