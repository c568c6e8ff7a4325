package pop3server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store"
)

// client is a minimal raw client for behaviour tests: it sends lines and
// reads replies as bytes, so what is checked is what a client would see.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	cl.expect("+OK postie POP3 server ready")
	return cl
}

func (cl *client) send(line string) {
	cl.t.Helper()
	if _, err := cl.c.Write([]byte(line + "\r\n")); err != nil {
		cl.t.Fatal(err)
	}
}

func (cl *client) line() (string, error) {
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := cl.br.ReadString('\n')
	return strings.TrimSuffix(l, "\r\n"), err
}

func (cl *client) expect(want string) {
	cl.t.Helper()
	got, err := cl.line()
	if err != nil || got != want {
		cl.t.Fatalf("want %q, got %q (%v)", want, got, err)
	}
}

func (cl *client) cmd(line, want string) {
	cl.t.Helper()
	cl.send(line)
	cl.expect(want)
}

func (cl *client) login(user, pass string) {
	cl.t.Helper()
	cl.cmd("USER "+user, "+OK send PASS")
	cl.send("PASS " + pass)
	got, err := cl.line()
	if err != nil || !strings.HasPrefix(got, "+OK logged in") {
		cl.t.Fatalf("login: %q %v", got, err)
	}
}

func (cl *client) expectClosed() {
	cl.t.Helper()
	cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rest, err := io.ReadAll(cl.br)
	if len(rest) > 0 || (err != nil && !strings.Contains(err.Error(), "reset")) {
		cl.t.Fatalf("want close, got %q %v", rest, err)
	}
}

func waitSessions(t testing.TB, s *server, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("sessions: %d, want %d", s.srv.Sessions(), n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestDeliveryDuringSessionShowsInNext(t *testing.T) {
	s := startPostie(t, nil)
	s.deliverCorpus(t, "user1")
	cl := dial(t, s.addr)
	cl.login("user1", "pass1")
	if _, err := s.store.Deliver(context.Background(), "user1", strings.NewReader("Subject: late\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	cl.cmd("STAT", "+OK 3 "+itoa(totalSize()))
	cl.cmd("LIST 4", "-ERR no such message")
	cl.cmd("QUIT", "+OK bye, 0 messages deleted")
	cl = dial(t, s.addr)
	cl.login("user1", "pass1")
	cl.cmd("STAT", "+OK 4 "+itoa(totalSize()+len("Subject: late\r\n\r\nx\r\n")))
}

func TestIdleTimeout(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) {
		o.Limits.AuthTimeout = 150 * time.Millisecond
		o.Limits.IdleTimeout = 300 * time.Millisecond
	})
	s.deliverCorpus(t, "user1")
	cl := dial(t, s.addr)
	cl.expect("-ERR autologout: idle for too long")
	cl.expectClosed()

	cl = dial(t, s.addr)
	cl.login("user1", "pass1")
	cl.cmd("DELE 1", "+OK message 1 deleted")
	cl.expect("-ERR autologout: idle for too long")
	cl.expectClosed()
	// The timed-out session was not in UPDATE: nothing was deleted.
	cl = dial(t, s.addr)
	cl.login("user1", "pass1")
	cl.cmd("STAT", "+OK 3 "+itoa(totalSize()))
}

// A client that stalls mid-line holds only its own session.
func TestStalledClientBlocksNoOne(t *testing.T) {
	s := startPostie(t, nil)
	s.deliverCorpus(t, "user1")
	stalled, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	stalled.Write([]byte("USER us")) // and nothing more
	cl := dial(t, s.addr)
	cl.login("user1", "pass1")
	cl.cmd("STAT", "+OK 3 "+itoa(totalSize()))
}

func TestFailedLoginWaits(t *testing.T) {
	const delay = 300 * time.Millisecond
	s := startPostie(t, func(o *pop3server.Options) { o.Limits.AuthFailDelay = delay })
	cl := dial(t, s.addr)
	cl.cmd("USER user1", "+OK send PASS")
	start := time.Now()
	cl.cmd("PASS nope", "-ERR [AUTH] invalid user name or password")
	if d := time.Since(start); d < delay {
		t.Fatalf("failed login answered after %v, want at least %v", d, delay)
	}
}

func TestTooManyAuthFailuresDisconnect(t *testing.T) {
	s := startPostie(t, nil)
	cl := dial(t, s.addr)
	for range 3 {
		cl.cmd("USER user1", "+OK send PASS")
		cl.cmd("PASS nope", "-ERR [AUTH] invalid user name or password")
	}
	cl.expectClosed()
}

func TestConnectionCaps(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) { o.Limits.MaxConnsPerIP = 2 })
	dial(t, s.addr)
	dial(t, s.addr)
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(c)
	if string(b) != "-ERR [SYS/TEMP] too many connections from your address\r\n" {
		t.Fatalf("got %q", b)
	}

	s = startPostie(t, func(o *pop3server.Options) { o.Limits.MaxConns = 1 })
	dial(t, s.addr)
	c, err = net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ = io.ReadAll(c)
	if string(b) != "-ERR [SYS/TEMP] too many connections, try again later\r\n" {
		t.Fatalf("got %q", b)
	}
}

// Shutdown lets a session finish its QUIT; Close of what remains after
// the grace period deletes nothing for sessions not in UPDATE.
func TestShutdown(t *testing.T) {
	s := startPostie(t, nil)
	s.deliverCorpus(t, "user1")
	s.deliverCorpus(t, "user2")
	busy := dial(t, s.addr)
	busy.login("user1", "pass1")
	busy.cmd("DELE 1", "+OK message 1 deleted")
	idle := dial(t, s.addr)
	idle.login("user2", "pass2")
	idle.cmd("DELE 1", "+OK message 1 deleted")

	done := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	go func() { done <- s.srv.Shutdown(ctx) }()
	time.Sleep(50 * time.Millisecond)
	// No new connections.
	if c, err := net.Dial("tcp", s.addr); err == nil {
		c.Close()
		t.Fatal("listener still accepting after Shutdown")
	}
	// A live session may still finish.
	busy.cmd("QUIT", "+OK bye, 1 messages deleted")
	if err := <-done; !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded (idle session closed)", err)
	}
	idle.expectClosed()

	md, err := s.store.Open(context.Background(), "user1")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Messages()); n != 2 {
		t.Errorf("user1 has %d messages after QUIT, want 2", n)
	}
	md.Close()
	md, err = s.store.Open(context.Background(), "user2")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(md.Messages()); n != 3 {
		t.Errorf("user2 has %d messages after shutdown without QUIT, want 3", n)
	}
	md.Close()
}

// A client that never reads its RETR output is dropped after the write
// timeout; the server and other clients carry on.
func TestClientNotReading(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) { o.Limits.WriteTimeout = 200 * time.Millisecond })
	big := strings.Repeat("0123456789012345678901234567890123456789012345678901234567890123456789\n", 150000) // ~10 MB
	if _, err := s.store.Deliver(context.Background(), "user1", strings.NewReader("Subject: big\n\n"+big)); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	c.Write([]byte("USER user1\r\nPASS pass1\r\nRETR 1\r\n"))
	waitSessions(t, s, 1)
	waitSessions(t, s, 0) // dropped by the write timeout
	cl := dial(t, s.addr)
	cl.login("user1", "pass1")
	cl.cmd("STAT", "+OK 1 "+itoa(len("Subject: big\r\n\r\n")+len(big)+150000))
}

// RETR streams: a message of many MB goes out byte-exact with dots and
// LF line ends converted on the way.
func TestRetrLargeMessage(t *testing.T) {
	s := startPostie(t, nil)
	var stored, wire strings.Builder
	stored.WriteString("Subject: big\n\n")
	wire.WriteString("Subject: big\r\n\r\n")
	for i := range 200000 {
		l := "line " + itoa(i) + " of a big message"
		if i%7 == 0 {
			l = "." + l
		}
		stored.WriteString(l + "\n")
		wire.WriteString(l + "\r\n")
	}
	if _, err := s.store.Deliver(context.Background(), "user1", strings.NewReader(stored.String())); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, s.addr)
	cl.login("user1", "pass1")
	cl.cmd("RETR 1", "+OK "+itoa(wire.Len())+" octets")
	var got strings.Builder
	for {
		l, err := cl.line()
		if err != nil {
			t.Fatal(err)
		}
		if l == "." {
			break
		}
		got.WriteString(strings.TrimPrefix(l, ".") + "\r\n")
	}
	if got.String() != wire.String() {
		t.Fatal("RETR content differs from the wire form of the stored message")
	}
}

// A message truncated behind the server's back is never sent as if whole.
func TestRetrTruncatedMessage(t *testing.T) {
	s := startPostie(t, nil)
	info, err := s.store.Deliver(context.Background(), "user1", strings.NewReader("Subject: x\n\n"+strings.Repeat("body\n", 1000)))
	if err != nil {
		t.Fatal(err)
	}
	cl := dial(t, s.addr)
	cl.login("user1", "pass1")
	dir, _ := s.store.Path("user1")
	matches, _ := filepath.Glob(filepath.Join(dir, "new", "*"))
	if len(matches) != 1 {
		t.Fatalf("messages in new/: %v", matches)
	}
	if err := os.Truncate(matches[0], 100); err != nil {
		t.Fatal(err)
	}
	cl.send("RETR 1")
	l, _ := cl.line()
	if l == "+OK "+itoa(int(info.Size))+" octets" {
		// The server may only find out while streaming: then it must
		// drop the connection rather than end the message.
		rest, _ := io.ReadAll(cl.br)
		if strings.HasSuffix(string(rest), "\r\n.\r\n") {
			t.Fatalf("truncated message sent as complete: %q", rest)
		}
		return
	}
	if l != "-ERR message no longer available" {
		t.Fatalf("got %q", l)
	}
	cl.cmd("NOOP", "+OK")
}

func TestSTLS(t *testing.T) {
	cfg, certPEM := testenv.ServerTLSConfig(t)
	s := startPostie(t, func(o *pop3server.Options) {
		o.TLSConfig = cfg
	})
	s.deliverCorpus(t, "user1")
	cl := dial(t, s.addr)
	cl.send("CAPA")
	var capa []string
	for {
		l, _ := cl.line()
		capa = append(capa, l)
		if l == "." {
			break
		}
	}
	if !strings.Contains(strings.Join(capa, "|"), "|STLS|") {
		t.Fatalf("CAPA without STLS: %q", capa)
	}
	// Bytes pipelined after STLS must not be executed inside TLS.
	cl.c.Write([]byte("STLS\r\nUSER user1\r\nPASS pass1\r\n"))
	cl.expect("+OK begin TLS negotiation")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	tc := tls.Client(cl.c, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tcl := &client{t: t, c: tc, br: bufio.NewReader(tc)}
	tcl.cmd("STLS", "-ERR already using TLS")
	tcl.send("CAPA")
	for {
		l, _ := tcl.line()
		if l == "STLS" {
			t.Fatal("CAPA offers STLS inside TLS")
		}
		if l == "." {
			break
		}
	}
	// The injected USER/PASS were discarded: PASS now needs USER first.
	tcl.cmd("PASS pass1", "-ERR send USER first")
	tcl.login("user1", "pass1")
	tcl.cmd("STAT", "+OK 3 "+itoa(totalSize()))

	// TLS 1.1 is refused.
	raw := dial(t, s.addr)
	raw.cmd("STLS", "+OK begin TLS negotiation")
	old := tls.Client(raw.c, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11})
	if err := old.Handshake(); err == nil {
		t.Fatal("TLS 1.1 handshake succeeded")
	}
}

func itoa(n int) string { return testenv.Itoa(n) }

// syncBuf is testenv.SyncBuffer under this package's old name.
type syncBuf = testenv.SyncBuffer

// The log has one line per session end with the counters, and never a
// password or message text, even at debug level.
func TestSessionLog(t *testing.T) {
	var logs syncBuf
	s := startPostie(t, func(o *pop3server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	s.deliverCorpus(t, "user1")
	cl := dial(t, s.addr)
	cl.cmd("USER user1", "+OK send PASS")
	cl.cmd("PASS s3cret-wrong", "-ERR [AUTH] invalid user name or password")
	cl.login("user1", "pass1")
	cl.send("RETR 1")
	for l, _ := cl.line(); l != "."; l, _ = cl.line() {
	}
	cl.send("TOP 2 0")
	for l, _ := cl.line(); l != "."; l, _ = cl.line() {
	}
	cl.cmd("DELE 3", "+OK message 3 deleted")
	cl.cmd("QUIT", "+OK bye, 1 messages deleted")
	cl.expectClosed()
	waitSessions(t, s, 0)
	out := logs.String()
	for _, secret := range []string{"s3cret-wrong", "pass1", "Hello", "Subject: one"} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
	var end string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.Contains(l, `msg="session end"`) {
			if end != "" {
				t.Fatalf("two session end lines:\n%s", out)
			}
			end = l
		}
	}
	for _, f := range []string{"user=user1", "remote=127.0.0.1", "retr=1", "retr_bytes=" + itoa(wireSize(0)), "top=1", "dele=1", "duration=", "reason=quit"} {
		if !strings.Contains(end, f) {
			t.Errorf("session end line lacks %q: %s", f, end)
		}
	}
	if !strings.Contains(out, `msg="authentication failed"`) {
		t.Errorf("no authentication failure line:\n%s", out)
	}
}

func newReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

// slowClose delays releasing the lock, to make the order of QUIT's reply
// and the release observable.
type slowClose struct{ store.Store }

type slowCloseDrop struct{ store.Maildrop }

func (s slowClose) Open(ctx context.Context, user string) (store.Maildrop, error) {
	md, err := s.Store.Open(ctx, user)
	if err != nil {
		return nil, err
	}
	return slowCloseDrop{md}, nil
}

func (d slowCloseDrop) Close() error {
	time.Sleep(100 * time.Millisecond)
	return d.Maildrop.Close()
}

// The lock is released before QUIT's reply: logging in again as soon as
// +OK arrives never meets the old session's [IN-USE].
func TestQuitReleasesLockBeforeReply(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) { o.Store = slowClose{o.Store} })
	s.deliverCorpus(t, "user1")
	for range 3 {
		cl := dial(t, s.addr)
		cl.login("user1", "pass1")
		cl.cmd("QUIT", "+OK bye, 0 messages deleted")
	}
}
