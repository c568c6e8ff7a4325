package pop3server_test

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
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
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	s := startPostie(t, func(o *pop3server.Options) {
		o.Limits.MaxConns = 1
		o.Limits.AuthTimeout = time.Second
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.srv.Serve(tls.NewListener(ln, cfg))
	addr := ln.Addr().String()
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
