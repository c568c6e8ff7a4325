// Package pop3server is postie's POP3 protocol engine (RFC 1939, with CAPA
// and response codes of RFC 2449 and RFC 3206, and STLS of RFC 2595). It
// owns the session states, the commands, limits and timeouts; it takes a
// store.Store for maildrops and an Authenticator for credentials and knows
// nothing of configuration files or concrete backends.
//
// The lifecycle follows net/http.Server: New, Serve(ln) per listener,
// Shutdown(ctx) to drain, Close to stop at once.
package pop3server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postie-mail/postie/internal/lograte"
	"github.com/postie-mail/postie/pop3"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("pop3server: server closed")

const (
	// refuseTimeout bounds the -ERR reply to a connection over a cap
	// (and its TLS handshake on an implicit-TLS listener); AuthTimeout
	// bounds it too when shorter.
	refuseTimeout = 5 * time.Second
	// maxRefusing caps the refusal replies in flight; beyond it, excess
	// connections are closed without one.
	maxRefusing = 256
)

// Server serves POP3 sessions. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	log  *slog.Logger

	ctx    context.Context // canceled by Close: interrupts waits and store calls
	cancel context.CancelFunc

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*session]struct{}
	perIP     map[netip.Addr]int
	closing   bool
	wg        sync.WaitGroup // one per session goroutine

	greeting string      // without APOP: the same for every session
	langs    []*language // offered by LANG, the preferred first

	nextID   atomic.Uint64
	refusing atomic.Int32 // refusal replies being written
	refusals lograte.Limit
	stats    counters
	abuse    *abuse
	checks   checkGate    // password checks in flight per address
	logins   recentLogins // for RecentLogins
}

// New validates opts and returns a Server.
func New(opts Options) (*Server, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:      opts,
		log:       opts.Logger,
		ctx:       ctx,
		cancel:    cancel,
		listeners: map[net.Listener]struct{}{},
		conns:     map[*session]struct{}{},
		perIP:     map[netip.Addr]int{},
		abuse:     newAbuse(opts.Abuse),
		greeting:  "+OK " + opts.Hostname + " POP3 server ready\r\n",
		langs:     defaultLanguages,
	}, nil
}

// Serve accepts connections on ln and serves each in its own goroutine
// until Shutdown or Close, when it returns ErrServerClosed. Serve closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()

	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				// Out of file descriptors and the like: back off, keep serving.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		s.accept(c)
	}
}

func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// accept registers c, enforces connection caps and starts its session.
func (s *Server) accept(c net.Conn) {
	addr := remoteAddr(c)
	ss := newSession(s, c, addr)
	// The per-address cap counts an IPv6 /64 as one address, as the
	// login penalties do: one host usually has a whole /64.
	key := addrKey(addr)

	s.mu.Lock()
	var refuse *pop3.Error
	switch {
	case s.closing:
		refuse = errShuttingDown
	case len(s.conns) >= s.opts.Limits.MaxConns:
		refuse = errTooManyConns
	case s.perIP[key] >= s.opts.Limits.MaxConnsPerIP:
		refuse = errTooManyPerAddr
	case s.opts.Limits.BanAfter > 0 && s.abuse.banned(s, addr, time.Now()):
		refuse = errBanned
	default:
		s.conns[ss] = struct{}{}
		s.perIP[key]++
		s.wg.Add(1)
		s.stats.sessionsTotal.Add(1)
	}
	s.mu.Unlock()
	if refuse != nil {
		s.stats.refused.Add(1)
		if ok, suppressed := s.refusals.Allow(time.Now()); ok {
			// At most one line a second: a flood of refused clients
			// must not flood the log (and the disk) too.
			s.log.Warn("connection refused", "remote", c.RemoteAddr().String(), "reason", refuse.Text, "suppressed", suppressed)
		}
		if s.refusing.Add(1) > maxRefusing {
			// A flood of refused clients: no reply, so that none of
			// them holds a descriptor.
			s.refusing.Add(-1)
			c.Close()
			return
		}
		go func() {
			defer s.refusing.Add(-1)
			// Both directions are bounded: on an implicit-TLS listener
			// the write first runs the handshake, which reads the
			// client's hello, and a client that never sends one must
			// not hold the connection.
			c.SetDeadline(time.Now().Add(min(refuseTimeout, s.opts.Limits.AuthTimeout)))
			c.Write([]byte(refuse.Reply()))
			c.Close()
		}()
		return
	}
	go func() {
		defer s.wg.Done()
		defer s.forget(ss, key)
		ss.serve()
	}()
}

func (s *Server) forget(ss *session, key netip.Addr) {
	s.mu.Lock()
	delete(s.conns, ss)
	if s.perIP[key]--; s.perIP[key] <= 0 {
		delete(s.perIP, key)
	}
	s.mu.Unlock()
}

func remoteAddr(c net.Conn) netip.Addr {
	if ap, err := netip.ParseAddrPort(c.RemoteAddr().String()); err == nil {
		return ap.Addr().Unmap()
	}
	return netip.Addr{}
}

// Shutdown stops accepting, lets sessions end on their own until ctx is
// done, then closes the rest. A session closed this way is not in UPDATE
// and deletes nothing. It returns ctx.Err() if sessions had to be closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.Close()
		return ctx.Err()
	}
}

// Close stops accepting and closes every connection at once; it returns
// when all session goroutines have ended. Sessions in UPDATE finish their
// deletions first (they no longer read from the client).
func (s *Server) Close() error {
	s.stopAccepting()
	s.cancel()
	s.mu.Lock()
	for ss := range s.conns {
		ss.abort()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

func (s *Server) stopAccepting() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
