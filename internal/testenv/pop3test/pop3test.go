// Package pop3test runs postie's POP3 engine inside the test process, on
// a real loopback socket over a real Maildir in a temporary directory:
// the server the tests of the engine, the client library, fetch and the
// fetch command talk to when they need no more of postie than POP3. (The
// whole binary is testenv.Postie.)
//
// It is a package of its own, not part of testenv, because testenv is
// imported by the internal tests of packages pop3server depends on.
package pop3test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// Users accepts userN with password passN, for N in 1..100.
var Users = pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(user, "user"))
	if err != nil || !strings.HasPrefix(user, "user") || n < 1 || n > 100 {
		return "", false, nil
	}
	return user, pass == "pass"+strconv.Itoa(n), nil
})

// Options change a Server.
type Options struct {
	// Logger is the server's and the store's; nil discards.
	Logger *slog.Logger
	// Tweak changes the engine's options before pop3server.New: its
	// limits, TLS, a wrapped store.
	Tweak func(*pop3server.Options)
}

// Server is a running in-process POP3 server. It is closed when the test
// ends.
type Server struct {
	Addr   string             // the plain listener
	Root   string             // the Maildir root: user U's maildrop is Root/U
	Server *pop3server.Server // the engine
	Store  *maildir.Store
}

// Start runs the engine with Users, no delay after a failed login
// (AuthFailDelay -1) and o's changes, on 127.0.0.1:0.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	root := t.TempDir()
	st, err := maildir.New(maildir.Options{Root: root, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts := pop3server.Options{
		Logger:        log,
		Store:         st,
		Authenticator: Users,
		Limits:        pop3server.Limits{AuthFailDelay: -1},
	}
	if o.Tweak != nil {
		o.Tweak(&opts)
	}
	srv, err := pop3server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &Server{Addr: ln.Addr().String(), Root: root, Server: srv, Store: st}
}

// ServeTLS adds an implicit-TLS listener (RFC 8314) on 127.0.0.1:0 and
// returns its address.
func (s *Server) ServeTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Server.Serve(tls.NewListener(ln, cfg))
	return ln.Addr().String()
}

// Deliver stores each message for user, in order, and returns their UIDs.
func (s *Server) Deliver(t testing.TB, user string, msgs ...string) []string {
	t.Helper()
	var uids []string
	for _, m := range msgs {
		info, err := s.Store.Deliver(context.Background(), user, strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, info.UID)
	}
	return uids
}
