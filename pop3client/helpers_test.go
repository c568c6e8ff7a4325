package pop3client_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3server"
)

// corpus is the maildrop every core test starts with: each message as
// stored and in the wire form RFC 1939 requires (CRLF ends, a final line
// end, before stuffing), written out by hand rather than computed by the
// code under test.
var corpus = []struct{ stored, wire string }{
	{ // LF line ends
		"From: a@example.com\nSubject: one\n\nHello\n",
		"From: a@example.com\r\nSubject: one\r\n\r\nHello\r\n",
	},
	{ // CRLF, lines beginning with dots (stuffed on the wire)
		"From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
		"From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
	},
	{ // no final line end
		"Subject: three\n\nline1\nline2\nline3\nno final newline",
		"Subject: three\r\n\r\nline1\r\nline2\r\nline3\r\nno final newline\r\n",
	},
}

// postie is postie's POP3 server in the test process (pop3test).
type postie struct {
	*pop3test.Server
	addr string
	srv  *pop3server.Server
}

// startPostie runs postie's POP3 server on a loopback socket over a real
// Maildir in a temporary directory.
func startPostie(t testing.TB, tweak func(*pop3server.Options)) *postie {
	t.Helper()
	s := pop3test.Start(t, pop3test.Options{Tweak: tweak})
	return &postie{Server: s, addr: s.Addr, srv: s.Server}
}

// serveTLS adds an implicit-TLS listener (RFC 8314) and returns its
// address.
func (p *postie) serveTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return p.ServeTLS(t, cfg)
}

func (p *postie) deliver(t testing.TB, user, msg string) {
	t.Helper()
	p.Deliver(t, user, msg)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// tlsPair makes a self-signed certificate for 127.0.0.1 and localhost and
// returns the server config and a pool trusting it.
func tlsPair(t testing.TB) (*tls.Config, *x509.CertPool, tls.Certificate) {
	t.Helper()
	cert, certPEM := testenv.SelfSignedCert(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, pool, cert
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fakeConn is one connection to a scripted raw-TCP server.
type fakeConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

// startFake runs handle for every connection to a loopback listener and
// returns its address. Cleanup closes the listener and the connections
// and waits for the handlers.
func startFake(t testing.TB, handle func(fc *fakeConn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(&fakeConn{t: t, c: c, br: bufio.NewReader(c)})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// send writes the lines, each followed by CRLF, in one write.
func (f *fakeConn) send(lines ...string) {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l + "\r\n")
	}
	f.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	f.c.Write([]byte(b.String()))
}

// line reads one client line without its CRLF; ok is false once the
// client is gone.
func (f *fakeConn) line() (string, bool) {
	f.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	l, err := f.br.ReadString('\n')
	if err != nil {
		return "", false
	}
	return strings.TrimSuffix(l, "\r\n"), true
}

// waiting reports whether more client bytes are already there: the client
// sent the next command before this one was answered.
func (f *fakeConn) waiting() bool {
	if f.br.Buffered() > 0 {
		return true
	}
	f.c.SetReadDeadline(time.Now().Add(30 * time.Millisecond))
	_, err := f.br.Peek(1)
	return err == nil
}

// stuff dot-stuffs a wire-form message and appends the terminator.
func stuff(wire string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(wire, "\r\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l)
	}
	return b.String() + ".\r\n"
}
