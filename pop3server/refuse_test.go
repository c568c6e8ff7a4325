package pop3server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
)

// A connection over the cap on an implicit-TLS listener is refused after
// the handshake; a client that never sends its hello must still be
// closed, within the pre-login timeout, instead of holding a descriptor
// and a goroutine for as long as it likes.
func TestRefusedTLSConnectionIsBounded(t *testing.T) {
	cfg, _ := testenv.ServerTLSConfig(t)
	s := startPostie(t, func(o *pop3server.Options) {
		o.Limits.MaxConns = 1
		o.Limits.AuthTimeout = time.Second
	})
	addr := s.pop.ServeTLS(t, cfg)
	dialTLS := func() *bufio.Reader {
		c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return bufio.NewReader(c)
	}
	// The one session allowed.
	if l, err := dialTLS().ReadString('\n'); err != nil || l != "+OK postie POP3 server ready\r\n" {
		t.Fatalf("greeting %q, %v", l, err)
	}
	// A TLS client over the cap is told why.
	if l, err := dialTLS().ReadString('\n'); err != nil || l != "-ERR [SYS/TEMP] too many connections, try again later\r\n" {
		t.Fatalf("refusal %q, %v", l, err)
	}
	// A silent one is closed.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("silent connection over the cap still open after %v: %v", time.Since(start).Round(time.Millisecond), err)
	}
	t.Logf("silent connection over the cap closed after %v", time.Since(start).Round(time.Millisecond))
}

// A client that stops reading a message it asked for costs WriteTimeout;
// the session then ends as a write failure, logged at Info, not as a
// store failure at Error (which operators page on).
func TestStalledReaderIsNotAStoreError(t *testing.T) {
	logs := &syncBuf{}
	s := startPostie(t, func(o *pop3server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Limits.WriteTimeout = 300 * time.Millisecond
	})
	msg := "Subject: big\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 24<<20/80)
	if _, err := s.store.Deliver(context.Background(), "user1", strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	cl := dial(t, s.addr)
	cl.c.(*net.TCPConn).SetReadBuffer(4096)
	cl.cmd("USER user1", "+OK send PASS")
	cl.cmd("PASS pass1", "+OK logged in, 1 messages ("+strconv.Itoa(len(msg))+" octets)")
	cl.send("RETR 1")
	// Never read: the server must give up on its own.
	waitSessions(t, s, 0)
	out := logs.String()
	if !strings.Contains(out, `reason="write failed"`) || strings.Contains(out, "level=ERROR") {
		t.Fatalf("stalled reader logged as:\n%s", out)
	}
}

// Lines that are not commands at all (control characters, over-long)
// count as bad commands like unknown keywords do, and the one that
// reaches the limit is answered, with the reason for closing, before the
// connection closes: nothing is swallowed.
func TestBadLinesAnsweredUpToTheClose(t *testing.T) {
	s := startPostie(t, nil)
	for _, bad := range []string{"\x01garbage", "\x00", strings.Repeat("A", 300)} {
		cl := dial(t, s.addr)
		want := "-ERR unknown command\r\n"
		if len(bad) > 255 {
			want = "-ERR line too long\r\n"
		}
		cl.c.Write([]byte(strings.Repeat(bad+"\r\n", 10)))
		cl.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(cl.br)
		if err != nil {
			t.Fatal(err)
		}
		if exp := strings.Repeat(want, 10) + "-ERR too many bad commands, closing connection\r\n"; string(out) != exp {
			t.Errorf("10 lines of %.10q: got\n%q\nwant\n%q", bad, out, exp)
		}
	}
}

// A client that keeps sending commands but never logs in is closed once
// LoginTimeout has passed since it connected; one that logged in is not.
func TestLoginTimeout(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) {
		o.Limits.LoginTimeout = 1500 * time.Millisecond
		o.Limits.AuthTimeout = time.Second
	})
	idler := dial(t, s.addr)
	user := dial(t, s.addr)
	user.cmd("USER user1", "+OK send PASS")
	user.cmd("PASS pass1", "+OK logged in, 0 messages (0 octets)")
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond {
		idler.cmd("CAPA", "+OK capability list follows")
		for l, _ := idler.line(); l != "."; l, _ = idler.line() {
		}
		time.Sleep(300 * time.Millisecond)
	}
	idler.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, err := io.ReadAll(idler.br)
	if err != nil || string(out) != "-ERR autologout: no login in time\r\n" {
		t.Fatalf("still not logged in after LoginTimeout: %q, %v", out, err)
	}
	time.Sleep(500 * time.Millisecond)
	user.cmd("NOOP", "+OK")
}

// A flood of refused connections logs at most a line a second, each
// counting the refusals it stands for: the log (and the disk) does not
// grow with the flood.
func TestRefusalsDoNotFloodTheLog(t *testing.T) {
	logs := &syncBuf{}
	s := startPostie(t, func(o *pop3server.Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, nil))
		o.Limits.MaxConns = 1
	})
	dial(t, s.addr) // the one session allowed
	const n = 300
	start := time.Now()
	for range n {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || l != "-ERR [SYS/TEMP] too many connections, try again later\r\n" {
			t.Fatalf("refusal %q, %v", l, err)
		}
		c.Close()
	}
	elapsed := time.Since(start)
	lines := strings.Count(logs.String(), `msg="connection refused"`)
	t.Logf("%d refusals in %v: %d log lines", n, elapsed.Round(time.Millisecond), lines)
	if lines < 1 || lines > int(elapsed/time.Second)+2 {
		t.Fatalf("%d refusals in %v gave %d log lines, want one a second at most", n, elapsed, lines)
	}
}

// Refusals in flight are capped: past 256 (silent clients on an
// implicit-TLS listener hold theirs up to the timeout), more connections
// over a cap are closed at once, without a reply, so that a flood of them
// holds no descriptors.
func TestRefusalsInFlightAreCapped(t *testing.T) {
	cfg, _ := testenv.ServerTLSConfig(t)
	s := startPostie(t, func(o *pop3server.Options) {
		o.Limits.MaxConns = 1
		o.Limits.AuthTimeout = 20 * time.Second
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	})
	tlsAddr := s.pop.ServeTLS(t, cfg)
	hold, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()
	hold.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := bufio.NewReader(hold).ReadString('\n'); err != nil || !strings.HasPrefix(l, "+OK") {
		t.Fatalf("greeting %q, %v", l, err)
	}
	const n = 300
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.Dial("tcp", tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var closed atomic.Int32
	var wg sync.WaitGroup
	deadline := time.Now().Add(2 * time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(deadline)
			if _, err := c.Read(make([]byte, 1)); err == io.EOF || err != nil && strings.Contains(err.Error(), "reset") {
				closed.Add(1)
			}
		}()
	}
	wg.Wait()
	// 256 wait for their ClientHello (up to 5 s); the rest are closed.
	if want := int32(n - 256); closed.Load() != want {
		t.Fatalf("%d of %d silent connections over the cap closed at once, want %d", closed.Load(), n, want)
	}
}

// Close ends sessions still in a TLS handshake, on an implicit-TLS
// listener and after STLS, however long the pre-login timeout: the
// handshake has no context of its own to cancel, closing the connection
// ends it.
func TestCloseEndsTLSHandshakes(t *testing.T) {
	cfg, _ := testenv.ServerTLSConfig(t)
	s := startPostie(t, func(o *pop3server.Options) {
		o.TLSConfig = cfg
		o.Limits.AuthTimeout = time.Hour
	})
	tlsAddr := s.pop.ServeTLS(t, cfg)

	// Neither client sends a ClientHello: both sessions wait in the
	// handshake.
	implicit, err := net.Dial("tcp", tlsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer implicit.Close()
	stls := dial(t, s.addr)
	stls.cmd("STLS", "+OK begin TLS negotiation")
	waitSessions(t, s, 2)

	closed := make(chan struct{})
	go func() {
		s.srv.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not end the sessions in a TLS handshake")
	}
	for name, c := range map[string]net.Conn{"implicit TLS": implicit, "STLS": stls.c} {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("%s: connection still open after Close: read %d, %v", name, n, err)
		}
	}
}
