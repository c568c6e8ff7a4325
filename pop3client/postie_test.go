package pop3client_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"github.com/postie-mail/postie/internal/testenv"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
	"github.com/postie-mail/postie/pop3server"
)

// A leading dot on the very first line is the classic stuffing miss.
func TestRetrDotsEverywhere(t *testing.T) {
	s := startPostie(t, nil)
	msgs := []struct{ stored, wire string }{
		{".first line\n.\n..\nx.\n.", ".first line\r\n.\r\n..\r\nx.\r\n.\r\n"},
		{".\r\n", ".\r\n"},
		{"", ""},
	}
	for _, m := range msgs {
		s.deliver(t, "user1", m.stored)
	}
	ctx := ctxT(t)
	c := dialLogin(t, s.addr, nil, "user1", "pass1")
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range msgs {
		r, err := c.Retr(ctx, i+1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil || string(b) != m.wire || list[i].Size != int64(len(b)) {
			t.Errorf("RETR %d = %q, %v (LIST %d); want %q", i+1, b, err, list[i].Size, m.wire)
		}
		r.Close()
	}
}

func dialLogin(t testing.TB, addr string, opts *pop3client.Options, user, pass string) *pop3client.Client {
	t.Helper()
	ctx := ctxT(t)
	c, err := pop3client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(ctx, user, pass); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestInUse(t *testing.T) {
	s := startPostie(t, nil)
	s.deliver(t, "user1", corpus[0].stored)
	dialLogin(t, s.addr, nil, "user1", "pass1")
	ctx := ctxT(t)
	c, err := pop3client.Dial(ctx, s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(ctx, "user1", "pass1")
	var perr *pop3.Error
	if !errors.As(err, &perr) || perr.Code != pop3.CodeInUse {
		t.Fatalf("second login = %v; want -ERR [IN-USE]", err)
	}
	var cerr *pop3client.Error
	if !errors.As(err, &cerr) || cerr.Command != "PASS" || !cerr.Temporary() {
		t.Fatalf("second login = %#v; want a temporary *Error for PASS", err)
	}
	// The session goes on: QUIT is answered.
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWrongPassword(t *testing.T) {
	s := startPostie(t, nil)
	ctx := ctxT(t)
	c, err := pop3client.Dial(ctx, s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login(ctx, "user1", "wrong")
	var perr *pop3.Error
	if !errors.As(err, &perr) || perr.Code != pop3.CodeAuth {
		t.Fatalf("Login with a wrong password = %v; want -ERR [AUTH]", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("error shows the password: %v", err)
	}
	if err := c.Login(ctx, "user1", "pass1"); err != nil {
		t.Fatalf("Login after a failed one: %v", err)
	}
}

func TestArgumentsRefused(t *testing.T) {
	s := startPostie(t, nil)
	s.deliver(t, "user1", corpus[0].stored)
	ctx := ctxT(t)
	c, err := pop3client.Dial(ctx, s.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, tc := range []struct{ user, pass string }{
		{"user1\r\nDELE 1", "pass1"},
		{"user1", "pass1\nQUIT"},
		{"user1", strings.Repeat("p", 250)},
	} {
		if err := c.Login(ctx, tc.user, tc.pass); err == nil {
			t.Errorf("Login(%q, %q) succeeded", tc.user, tc.pass)
		}
	}
	if _, err := c.Retr(ctx, 0); err == nil {
		t.Error("RETR 0 accepted")
	}
	// Nothing was sent: the session is still in step.
	if err := c.Login(ctx, "user1", "pass1"); err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.Stat(ctx); err != nil || n != 1 {
		t.Fatalf("Stat = %d, %v", n, err)
	}
}

func startPostieTLS(t *testing.T) (*postie, *x509.CertPool, tls.Certificate) {
	cfg, pool, cert := tlsPair(t)
	s := startPostie(t, func(o *pop3server.Options) { o.TLSConfig = cfg })
	for _, m := range corpus {
		s.deliver(t, "user1", m.stored)
	}
	return s, pool, cert
}

func TestSTLS(t *testing.T) {
	s, pool, _ := startPostieTLS(t)
	ctx := ctxT(t)

	// By hand: CAPA offers STLS, STLS re-reads CAPA, which no longer does.
	c, err := pop3client.Dial(ctx, s.addr, &pop3client.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capabilities(ctx)
	if err != nil || !caps.Has(pop3.CapSTLS) {
		t.Fatalf("Capabilities = %v, %v; want STLS", caps, err)
	}
	if err := c.STLS(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("no TLS after STLS")
	}
	if caps, err := c.Capabilities(ctx); err != nil || caps.Has(pop3.CapSTLS) || !caps.Has(pop3.CapUIDL) {
		t.Fatalf("Capabilities after STLS = %v, %v", caps, err)
	}
	var cerr *pop3client.Error
	if err := c.STLS(ctx); err == nil || errors.As(err, &cerr) {
		t.Fatalf("second STLS = %v; want a client-side refusal", err)
	}
	if err := c.Login(ctx, "user1", "pass1"); err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.Stat(ctx); err != nil || n != 3 {
		t.Fatalf("Stat = %d, %v", n, err)
	}
	c.Quit(ctx)
	waitSessions(t, s, 0)

	// As a dial option.
	c = dialLogin(t, s.addr, &pop3client.Options{TLS: pop3client.TLSStartTLS, TLSConfig: &tls.Config{RootCAs: pool}}, "user1", "pass1")
	if st, ok := c.TLSConnectionState(); !ok || st.Version < tls.VersionTLS12 {
		t.Fatalf("TLS state %v %v", st.Version, ok)
	}
	if _, _, err := c.Stat(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestImplicitTLS(t *testing.T) {
	cfg, pool, _ := tlsPair(t)
	s := startPostie(t, nil)
	s.deliver(t, "user1", corpus[1].stored)
	addr := s.serveTLS(t, cfg)
	c := dialLogin(t, addr, &pop3client.Options{TLS: pop3client.TLSImplicit, TLSConfig: &tls.Config{RootCAs: pool}}, "user1", "pass1")
	r, err := c.Retr(ctxT(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if string(b) != corpus[1].wire {
		t.Fatalf("RETR over TLS = %q", b)
	}
}

func TestSTLSNotOffered(t *testing.T) {
	s := startPostie(t, nil) // no TLSConfig: STLS is refused
	_, err := pop3client.Dial(ctxT(t), s.addr, &pop3client.Options{TLS: pop3client.TLSStartTLS})
	var cerr *pop3client.Error
	if !errors.As(err, &cerr) || cerr.Command != "STLS" {
		t.Fatalf("Dial with STLS to a server without it = %v; want the -ERR to STLS", err)
	}
}

func TestCertificateVerification(t *testing.T) {
	s, pool, cert := startPostieTLS(t)
	_, otherPool, _ := tlsPair(t) // a CA that did not sign the server's certificate
	ctx := ctxT(t)
	for _, tc := range []struct {
		name string
		opts *pop3client.Options
	}{
		{"wrong CA", &pop3client.Options{TLS: pop3client.TLSStartTLS, TLSConfig: &tls.Config{RootCAs: otherPool}}},
		{"system roots", &pop3client.Options{TLS: pop3client.TLSStartTLS}},
	} {
		_, err := pop3client.Dial(ctx, s.addr, tc.opts)
		if err == nil || !strings.Contains(err.Error(), "verify") {
			t.Errorf("%s: Dial = %v; want a certificate verification failure", tc.name, err)
		}
		var uerr x509.UnknownAuthorityError
		if !errors.As(err, &uerr) {
			t.Errorf("%s: %v is not an x509.UnknownAuthorityError", tc.name, err)
		}
	}

	sum := sha256.Sum256(cert.Certificate[0])
	pin := sum[:]
	c := dialLogin(t, s.addr, &pop3client.Options{TLS: pop3client.TLSStartTLS, PinSHA256: pin}, "user1", "pass1")
	if _, _, err := c.Stat(ctx); err != nil {
		t.Fatal(err)
	}
	parsed, err := pop3client.ParseFingerprint(pop3client.Fingerprint(pin))
	if err != nil || string(parsed) != string(pin) {
		t.Fatalf("ParseFingerprint(Fingerprint(pin)) = %x, %v", parsed, err)
	}

	bad := append([]byte(nil), pin...)
	bad[0] ^= 1
	// A pin mismatch fails even when the CA is trusted.
	_, err = pop3client.Dial(ctx, s.addr, &pop3client.Options{TLS: pop3client.TLSStartTLS, PinSHA256: bad, TLSConfig: &tls.Config{RootCAs: pool}})
	if !errors.Is(err, pop3client.ErrPinMismatch) || !strings.Contains(err.Error(), pop3client.Fingerprint(pin)) {
		t.Fatalf("Dial with a wrong pin = %v; want ErrPinMismatch naming the server's fingerprint", err)
	}
}

// Canceling the context in the middle of a 10 MB RETR returns at once,
// closes the connection, and the server lets go of the maildrop.
func TestRetrCancel(t *testing.T) {
	s := startPostie(t, nil)
	line := strings.Repeat("0123456789", 7) + "\n"
	s.deliver(t, "user1", "Subject: big\n\n"+strings.Repeat(line, 150000))
	c := dialLogin(t, s.addr, nil, "user1", "pass1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(io.Discard, r, 1<<20); err != nil {
		t.Fatal(err)
	}
	cancel()
	start := time.Now()
	n, err := io.Copy(io.Discard, r)
	if d := time.Since(start); d > time.Second {
		t.Errorf("Read after cancel took %v", d)
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel = %d octets, %v; want context.Canceled", n, err)
	}
	if n > 64<<10 {
		t.Errorf("%d octets read after cancel", n)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close after cancel = %v", err)
	}
	if err := c.Noop(context.Background()); !errors.Is(err, pop3client.ErrClosed) {
		t.Fatalf("Noop after cancel = %v; want ErrClosed", err)
	}
	waitSessions(t, s, 0)
	c = dialLogin(t, s.addr, nil, "user1", "pass1")
	if n, _, err := c.Stat(context.Background()); err != nil || n != 1 {
		t.Fatalf("Stat in a new session = %d, %v", n, err)
	}
}

// Closing a body part-way, or leaving it open, drains it: the next
// command works.
func TestBodyDrain(t *testing.T) {
	s := startPostie(t, nil)
	for _, m := range corpus {
		s.deliver(t, "user1", m.stored)
	}
	s.deliver(t, "user1", "Subject: big\n\n"+strings.Repeat("a line of text\n", 20000))
	c := dialLogin(t, s.addr, nil, "user1", "pass1")
	ctx := ctxT(t)
	r, err := c.Retr(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || string(buf) != "Subject: b" {
		t.Fatalf("first octets %q, %v", buf, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Read(buf); err == nil {
		t.Fatal("Read after Close succeeded")
	}
	if n, _, err := c.Stat(ctx); err != nil || n != 4 {
		t.Fatalf("Stat after Close = %d, %v", n, err)
	}
	// Left open: the next command drains it first.
	if _, err := c.Top(ctx, 4, 1000); err != nil {
		t.Fatal(err)
	}
	r, err = c.Retr(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != corpus[1].wire {
		t.Fatalf("RETR after an undrained TOP = %q, %v", b, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}

// farConn makes a loopback connection look like a remote one.
type farConn struct{ net.Conn }

func (farConn) RemoteAddr() net.Addr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 110} }

func TestInsecureAuthRefused(t *testing.T) {
	s := startPostie(t, nil)
	ctx := ctxT(t)
	for _, allow := range []bool{false, true} {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		c, err := pop3client.NewClient(farConn{conn}, &pop3client.Options{AllowInsecureAuth: allow})
		if err != nil {
			t.Fatal(err)
		}
		errs := []error{
			c.Login(ctx, "user1", "pass1"),
			c.Auth(ctx, pop3client.SASLPlain("", "user1", "pass1")),
			c.Auth(ctx, pop3client.SASLXOAuth2("user1", "token")),
		}
		for i, err := range errs {
			if allow == errors.Is(err, pop3client.ErrInsecure) {
				t.Errorf("AllowInsecureAuth %v: attempt %d = %v", allow, i, err)
			}
		}
		c.Close()
	}
}

// syncBuf is testenv.SyncBuffer under this package's old name.
type syncBuf = testenv.SyncBuffer

// The protocol trace shows commands and replies but never a password, a
// token, a SASL response or message text.
func TestTraceRedacts(t *testing.T) {
	var logs syncBuf
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: pop3client.LevelTrace}))
	opts := &pop3client.Options{Logger: logger}
	ctx := ctxT(t)

	s := startPostie(t, nil)
	s.deliver(t, "user1", "Subject: secret-subject\n\nsecret-body\n")
	c, err := pop3client.Dial(ctx, s.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "user1", "pass1"); err != nil {
		t.Fatal(err)
	}
	r, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(r)
	r.Close()
	c.Quit(ctx)

	addr, _ := saslServer(t, "+ ", "+OK")
	c, err = pop3client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(ctx, pop3client.SASLXOAuth2("user1", strings.Repeat("tok", 100))); err != nil {
		t.Fatal(err)
	}
	addr, _ = saslServer(t, "+OK")
	c, err = pop3client.Dial(ctx, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(ctx, pop3client.SASLPlain("", "user1", "pass1")); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, want := range []string{"C: USER user1", "C: PASS ***", "C: RETR 1", "C: AUTH XOAUTH2", "C: AUTH PLAIN ***", "S: +OK"} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"pass1", "toktok", "secret-", b64("user=user"), b64("\x00user1\x00pass1")} {
		if strings.Contains(out, secret) {
			t.Errorf("trace shows %q:\n%s", secret, out)
		}
	}
}
