package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/tlsconf"
)

// tlsServer is a running `postie serve` with TLS: a plain listener
// offering STLS (POP3) and an implicit-TLS one (POP3S).
type tlsServer struct {
	*testenv.Postie
	caFile string         // PEM to trust the server certificate with
	roots  *x509.CertPool // trusts it
}

// trust reads the server certificate from caFile into s.roots.
func (s *tlsServer) trust(t *testing.T, caFile string) {
	t.Helper()
	s.caFile = caFile
	s.roots = x509.NewCertPool()
	pem, err := os.ReadFile(caFile)
	if err != nil || !s.roots.AppendCertsFromPEM(pem) {
		t.Fatalf("server certificate %s: %v", caFile, err)
	}
}

// startTLSDev starts `postie serve --dev` on port 0: its self-signed
// certificate is made in the data directory.
func startTLSDev(t *testing.T) (*tlsServer, string) {
	t.Helper()
	s := &tlsServer{Postie: startServe(t, t.TempDir())}
	s.trust(t, filepath.Join(s.Dir, devCertFile))
	password := s.WaitStdout(t, `(?m)^\s*password:\s+(\S+)$`)[1]
	return s, password
}

// tlsConfig are the parts of the test config file that tests vary.
type tlsConfig struct {
	pop3, auth, tail string // lines for [pop3], [auth], and more tables
	passwd           string // the passwd-file
	// certPEM and keyPEM replace the test certificate (testenv.SelfSigned)
	// when set.
	certPEM, keyPEM []byte
}

// startTLSConfig starts `postie serve --config` with a fresh self-signed
// certificate, listeners on port 0 and the users of c.passwd.
func startTLSConfig(t *testing.T, c tlsConfig) *tlsServer {
	t.Helper()
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	if c.certPEM != nil {
		certPEM, keyPEM = c.certPEM, c.keyPEM
	}
	p := testenv.StartPostie(t, testenv.PostieOptions{
		Files: map[string]string{"cert.pem": string(certPEM), "key.pem": string(keyPEM), "passwd": c.passwd},
		Config: fmt.Sprintf(`[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
implementation = false
hostname = "test"
auth_fail_delay = "0s"
%s
[lmtp]
listen = []
[auth]
cache_ttl = "0s"
%s
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
%s
`, c.pop3, c.auth, c.tail),
	})
	s := &tlsServer{Postie: p}
	s.trust(t, filepath.Join(p.Dir, "cert.pem"))
	return s
}

// deliver stores msg for user with `postie deliver` and returns the
// message as stored (deliver adds trace header fields), in the wire form
// RETR must send it.
func (s *tlsServer) deliver(t *testing.T, user, msg string) string {
	t.Helper()
	args := dev(s.Dir, "deliver", user)
	if s.Config != "" {
		args = []string{"deliver", "--config", s.Config, user}
	}
	md := filepath.Join(s.Dir, "mail", user)
	before := map[string]bool{}
	for _, f := range maildirFiles(t, md) {
		before[filepath.Base(f)] = true
	}
	mustPostie(t, 0, msg, args...)
	for _, f := range maildirFiles(t, md) {
		if !before[filepath.Base(f)] {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			return wireForm(string(b))
		}
	}
	t.Fatalf("deliver to %s: no new file in %s", user, md)
	return ""
}

func (s *tlsServer) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "localhost"}
}

// dialTLS connects to the implicit-TLS port and reads the greeting.
func (s *tlsServer) dialTLS(t *testing.T, cfg *tls.Config) (*pop3Conn, *tls.Conn) {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", s.POP3S, cfg)
	if err != nil {
		t.Fatalf("TLS dial %s: %v", s.POP3S, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	p := &pop3Conn{t: t, c: c, br: bufio.NewReader(c)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return p, c
}

// stls upgrades p with STLS.
func (p *pop3Conn) stls(cfg *tls.Config) *tls.Conn {
	p.t.Helper()
	p.cmd("+OK begin TLS negotiation", "STLS")
	tc := tls.Client(p.c, cfg)
	if err := tc.Handshake(); err != nil {
		p.t.Fatalf("STLS handshake: %v", err)
	}
	p.c, p.br = tc, bufio.NewReader(tc)
	return tc
}

// transcript sends each "C: " line and checks that the server's bytes are
// exactly the "S: " lines that follow, CRLF-terminated.
func (p *pop3Conn) transcript(script string) {
	p.t.Helper()
	var want strings.Builder
	flush := func() {
		if want.Len() == 0 {
			return
		}
		exp := want.String()
		want.Reset()
		got := make([]byte, len(exp))
		p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
		n, err := ioReadFull(p.br, got)
		if string(got[:n]) != exp {
			p.t.Fatalf("server sent\n%q (%v)\nwant\n%q", got[:n], err, exp)
		}
	}
	for _, l := range strings.Split(strings.TrimSuffix(script, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "C: "):
			flush()
			if _, err := p.c.Write([]byte(l[3:] + "\r\n")); err != nil {
				p.t.Fatal(err)
			}
		case strings.HasPrefix(l, "S: "):
			want.WriteString(l[3:] + "\r\n")
		default:
			p.t.Fatalf("bad script line %q", l)
		}
	}
	flush()
}

func ioReadFull(br *bufio.Reader, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := br.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestServeDevTLS: --dev makes a certificate and serves POP3S and STLS;
// sessions resume; the certificate is reloaded when its files change and
// on SIGHUP, without closing sessions.
func TestServeDevTLS(t *testing.T) {
	t.Parallel()
	s, password := startTLSDev(t)
	if !strings.Contains(s.Stdout(), "pop3s://"+s.POP3S) {
		t.Errorf("the banner does not show the TLS port:\n%s", s.Stdout())
	}
	want := s.deliver(t, "demo", testMessage)

	cache := tls.NewLRUClientSessionCache(8)
	cfg := s.clientTLS()
	cfg.ClientSessionCache = cache
	p, tc := s.dialTLS(t, cfg)
	if v := tc.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("TLS version %x", v)
	}
	p.login("demo", password)
	p.cmd("+OK", "RETR 1")
	if got := p.multi(); got != want {
		t.Errorf("RETR 1 over TLS:\n got %q\nwant %q", got, want)
	}
	p.cmd("+OK", "QUIT")

	// A second connection resumes the session (TLS 1.3 tickets).
	p, tc = s.dialTLS(t, cfg)
	if !tc.ConnectionState().DidResume {
		t.Errorf("second connection did not resume the TLS session")
	}
	p.cmd("+OK", "QUIT")

	// STLS on the plain port.
	p = dialPOP3(t, s.POP3)
	p.stls(s.clientTLS())
	p.login("demo", password)
	// This session stays open across the reloads below.

	// Replace the certificate: picked up within a few seconds.
	certPEM, keyPEM, err := tlsconf.SelfSigned("localhost", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	old := serverCert(t, s.POP3S)
	if err := os.WriteFile(filepath.Join(s.Dir, devKeyFile), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, devCertFile), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s.WaitLog(t, `msg="tls: certificates reloaded"`)
	if now := serverCert(t, s.POP3S); bytes.Equal(now, old) {
		t.Errorf("still the old certificate after the files changed")
	}
	if !s.roots.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad PEM")
	}
	// Tickets survive the reload.
	p2, tc := s.dialTLS(t, cfg)
	if !tc.ConnectionState().DidResume {
		t.Errorf("no resumption after the certificate reload")
	}
	p2.cmd("+OK", "QUIT")

	// SIGHUP reloads too.
	s.Signal(t, syscall.SIGHUP)
	s.WaitLog(t, `(?s)tls: certificates reloaded.*users reloaded.*tls: certificates reloaded`)
	// The session opened before the reloads still works.
	if r := p.cmd("+OK", "STAT"); r != fmt.Sprintf("+OK 1 %d", len(want)) {
		t.Errorf("STAT after the reloads = %q", r)
	}
	p.cmd("+OK", "QUIT")
	s.Stop(t, syscall.SIGTERM, 10*time.Second)
}

// serverCert returns the certificate the server presents (unverified).
func serverCert(t *testing.T, addr string) []byte {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Raw
}

// Cleartext policy, STLS and CAPA before and after TLS, exact bytes, from
// an address that is not trusted (loopback is left out of
// trusted_networks).
func TestCleartextPolicyTLS(t *testing.T) {
	t.Parallel()
	s := startTLSConfig(t, tlsConfig{
		pop3:   `trusted_networks = ["192.0.2.0/24"]`,
		passwd: "alice:{PLAIN}alice pw\n",
	})
	size := len(s.deliver(t, "alice", testMessage))
	const greeting = "+OK test POP3 server ready"
	refused := "-ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port"

	p := dialPOP3(t, s.POP3)
	p.transcript(`C: CAPA
S: +OK capability list follows
S: TOP
S: UIDL
S: RESP-CODES
S: AUTH-RESP-CODE
S: PIPELINING
S: STLS
S: SASL SCRAM-SHA-256 SCRAM-SHA-1
S: UTF8 USER
S: LANG
S: .
C: USER alice
S: ` + refused + `
C: PASS alice pw
S: ` + refused + `
C: AUTH PLAIN ` + b64("\x00alice\x00alice pw") + `
S: ` + refused + `
C: AUTH LOGIN
S: ` + refused)
	// STLS with a command pipelined behind it in the same packet: the
	// server must discard it, not run it inside TLS (CVE-2011-0411).
	if _, err := p.c.Write([]byte("STLS\r\nCAPA\r\n")); err != nil {
		t.Fatal(err)
	}
	if l := p.line(); l != "+OK begin TLS negotiation" {
		t.Fatalf("STLS: %q", l)
	}
	tc := tls.Client(p.c, s.clientTLS())
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	p.c, p.br = tc, bufio.NewReader(tc)
	p.transcript("C: QUIT\nS: +OK bye")
	if _, err := p.br.ReadByte(); err == nil {
		t.Errorf("more after QUIT: the pipelined CAPA was run inside TLS")
	}

	// After STLS: USER and the cleartext mechanisms, no STLS; no -PLUS
	// by default (docs/clients.md).
	p = dialPOP3(t, s.POP3)
	p.stls(s.clientTLS())
	p.transcript(`C: CAPA
S: +OK capability list follows
S: TOP
S: USER
S: UIDL
S: RESP-CODES
S: AUTH-RESP-CODE
S: PIPELINING
S: SASL SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN
S: UTF8 USER
S: LANG
S: .
C: STLS
S: -ERR already using TLS
C: USER alice
S: +OK send PASS
C: PASS alice pw
S: +OK logged in, 1 messages (` + fmt.Sprint(size) + ` octets)
C: STLS
S: -ERR already logged in
C: CAPA
S: +OK capability list follows
S: TOP
S: USER
S: UIDL
S: RESP-CODES
S: AUTH-RESP-CODE
S: PIPELINING
S: LANG
S: .
C: QUIT
S: +OK bye, 0 messages deleted`)

	// Implicit TLS: the same, without STLS.
	p, _ = s.dialTLS(t, s.clientTLS())
	p.transcript(`C: CAPA
S: +OK capability list follows
S: TOP
S: USER
S: UIDL
S: RESP-CODES
S: AUTH-RESP-CODE
S: PIPELINING
S: SASL SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN
S: UTF8 USER
S: LANG
S: .
C: STLS
S: -ERR already using TLS
C: AUTH PLAIN ` + b64("\x00alice\x00alice pw") + `
S: +OK logged in, 1 messages (` + fmt.Sprint(size) + ` octets)
C: QUIT
S: +OK bye, 0 messages deleted`)

	// The greeting was checked by dialPOP3; make sure it is the one
	// configured (hostname = "test").
	c, err := net.Dial("tcp", s.POP3)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if l, _ := bufio.NewReader(c).ReadString('\n'); l != greeting+"\r\n" {
		t.Errorf("greeting %q", l)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// An explicitly empty trusted_networks trusts no network, loopback included:
// the operator asked for TLS everywhere.
func TestEmptyTrustedNetworks(t *testing.T) {
	t.Parallel()
	s := startTLSConfig(t, tlsConfig{
		pop3:   `trusted_networks = []`,
		passwd: "alice:{PLAIN}alice pw\n",
	})
	p := dialPOP3(t, s.POP3)
	p.transcript(`C: USER alice
S: -ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port
C: QUIT
S: +OK bye`)
}
