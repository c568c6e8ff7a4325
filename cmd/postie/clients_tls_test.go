package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/postie-mail/postie/internal/testenv"
)

// run runs a peer program and returns its stdout; a failure fails the
// test with its output.
func run(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.Bytes()
}

// lfForm is the wire form with LF line ends, as retrievers deliver into
// Maildirs and MDAs.
func lfForm(wire string) string { return strings.ReplaceAll(wire, "\r\n", "\n") }

// doveadmSCRAM returns a passwd-file entry made by Dovecot's own doveadm.
func doveadmSCRAM(t *testing.T, password string) string {
	t.Helper()
	doveadm := testenv.LookPath(t, "doveadm")
	return strings.TrimSpace(string(run(t, nil, doveadm, "-c", "/dev/null", "pw", "-s", "SCRAM-SHA-256", "-p", password)))
}

// Python's poplib: STLS, APOP, and USER/PASS over POP3S for a user whose
// entry holds only SCRAM keys made by doveadm.
func TestPoplibTLS(t *testing.T) {
	t.Parallel()
	python := testenv.LookPath(t, "python3")
	s := startTLSConfig(t, tlsConfig{
		auth:   "apop = true",
		passwd: "alice:{PLAIN}alice pw\nbob:" + doveadmSCRAM(t, "bob pw") + "\n",
	})
	want1 := s.deliver(t, "alice", testMessage)
	want2 := s.deliver(t, "bob", "Subject: for bob\n\nhi\n")
	host, port, _ := net.SplitHostPort(s.POP3)
	_, tlsPort, _ := net.SplitHostPort(s.POP3S)
	script := `import poplib, ssl, sys
host, port, tlsport, ca = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
ctx = ssl.create_default_context(cafile=ca)
out = sys.stdout.buffer
def dump(p, user):
    resp, lines, octets = p.retr(1)
    out.write(b"".join(l + b"\r\n" for l in lines) + b"\x00")
    p.quit()
p = poplib.POP3(host, port)
caps = p.capa()
assert "STLS" in caps, caps
p.stls(ctx)
assert "STLS" not in p.capa()
assert p.sock.version() in ("TLSv1.2", "TLSv1.3"), p.sock.version()
p.user("alice"); p.pass_("alice pw")
dump(p, "alice")
p = poplib.POP3(host, port)
p.apop("alice", "alice pw")
dump(p, "alice")
p = poplib.POP3_SSL(host, tlsport, context=ctx)
p.user("bob"); p.pass_("bob pw")
dump(p, "bob")
p = poplib.POP3(host, port)
try:
    p.apop("alice", "wrong")
    raise SystemExit("APOP with a wrong password accepted")
except poplib.error_proto as e:
    assert b"[AUTH]" in e.args[0], e
`
	out := string(run(t, nil, python, "-c", script, host, port, tlsPort, s.caFile))
	parts := strings.Split(out, "\x00")
	if len(parts) != 4 || parts[0] != want1 || parts[1] != want1 || parts[2] != want2 {
		t.Errorf("poplib retrieved\n%q\nwant STLS, APOP: %q\nand POP3S: %q", parts, want1, want2)
	}
	// APOP needs the timestamp in the greeting.
	p := dialPOP3(t, s.POP3)
	p.cmd("+OK", "QUIT")
	c, _ := net.Dial("tcp", s.POP3)
	defer c.Close()
	g := make([]byte, 200)
	n, _ := c.Read(g)
	if !regexp.MustCompile(`^\+OK test POP3 server ready <[^<>@]+@test>\r\n$`).Match(g[:n]) {
		t.Errorf("greeting with APOP on: %q", g[:n])
	}
}

// curl: AUTH PLAIN over POP3S and AUTH LOGIN after STLS, from an address
// that may not log in without TLS; and that cleartext is refused.
func TestCurlTLS(t *testing.T) {
	t.Parallel()
	curl := testenv.LookPath(t, "curl")
	s := startTLSConfig(t, tlsConfig{
		pop3:   `trusted_networks = ["192.0.2.0/24"]`,
		passwd: "alice:{PLAIN}alice pw\n",
	})
	want := s.deliver(t, "alice", testMessage)
	for _, tc := range []struct{ name, url, mech string }{
		{"pop3s PLAIN", "pop3s://" + s.POP3S + "/1", "PLAIN"},
		{"STLS LOGIN", "pop3://" + s.POP3 + "/1", "LOGIN"},
	} {
		out := run(t, nil, curl, "-sS", "--ssl-reqd", "--cacert", s.caFile, "-u", "alice:alice pw", "--login-options", "AUTH="+tc.mech, tc.url)
		if string(out) != want {
			t.Errorf("curl %s:\n got %q\nwant %q", tc.name, out, want)
		}
	}
	// Without TLS, the login is refused (curl exit 67: login denied).
	cmd := exec.Command(curl, "-sS", "-u", "alice:alice pw", "--login-options", "AUTH=PLAIN", "pop3://"+s.POP3+"/1")
	if err := cmd.Run(); err == nil {
		t.Errorf("curl logged in without TLS from an untrusted address")
	}
}

// oauthIssuer signs JWT access tokens with a key of its own JWK Set.
type oauthIssuer struct {
	key  *ecdsa.PrivateKey
	jwks string // path of the JWK Set file
}

func newOAuthIssuer(t *testing.T, dir string) *oauthIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := key.PublicKey.ECDH()
	if err != nil {
		t.Fatal(err)
	}
	raw := pub.Bytes() // 0x04 || X || Y
	enc := base64.RawURLEncoding.EncodeToString
	set, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
		"x": enc(raw[1:33]), "y": enc(raw[33:]),
	}}})
	iss := &oauthIssuer{key: key, jwks: filepath.Join(dir, "jwks.json")}
	if err := os.WriteFile(iss.jwks, set, 0o600); err != nil {
		t.Fatal(err)
	}
	return iss
}

func (iss *oauthIssuer) token(t *testing.T, sub string, ttl time.Duration) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": "https://id.example.org", "aud": "pop3.example.org", "sub": sub,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"scope": strings.Repeat("mail.read ", 40), // a long token, as real ones are
	})
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(iss.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func oauthTOML(jwks string) string {
	return fmt.Sprintf(`[auth.oauth]
jwks_file = %q
issuer = "https://id.example.org"
audience = ["pop3.example.org"]
user_claim = "sub"
`, jwks)
}

// mpop retrieves into a Maildir: PLAIN after STLS, SCRAM-SHA-256 over
// POP3S against doveadm's keys, OAUTHBEARER and XOAUTH2 with tokens signed
// by a local key whose JWK Set postie reads.
func TestMpopTLS(t *testing.T) {
	t.Parallel()
	mpop := testenv.LookPath(t, "mpop")
	keys := t.TempDir()
	iss := newOAuthIssuer(t, keys)
	s := startTLSConfig(t, tlsConfig{
		pop3:   `trusted_networks = ["192.0.2.0/24"]`,
		passwd: "carol:{PLAIN}carol pw\ndave:" + doveadmSCRAM(t, "dave pw") + "\nerin:\n",
		tail:   oauthTOML(iss.jwks),
	})
	_, port, _ := net.SplitHostPort(s.POP3)
	_, tlsPort, _ := net.SplitHostPort(s.POP3S)
	for _, tc := range []struct {
		name, user, auth, secret string
		starttls                 bool
	}{
		{"plain/STLS", "carol", "plain", "carol pw", true},
		{"scram-sha-256/pop3s", "dave", "scram-sha-256", "dave pw", false},
		{"scram-sha-256/STLS", "dave", "scram-sha-256", "dave pw", true},
		{"oauthbearer/STLS", "erin", "oauthbearer", iss.token(t, "erin", time.Hour), true},
		{"xoauth2/pop3s", "erin", "xoauth2", iss.token(t, "erin", time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := lfForm(s.deliver(t, tc.user, testMessage))
			md := t.TempDir()
			for _, sub := range []string{"cur", "new", "tmp"} {
				os.Mkdir(filepath.Join(md, sub), 0o700)
			}
			p, starttls := tlsPort, "off"
			if tc.starttls {
				p, starttls = port, "on"
			}
			secretFile := filepath.Join(md, "secret")
			os.WriteFile(secretFile, []byte(tc.secret), 0o600)
			run(t, nil, mpop, "-C", "/dev/null", "--host=127.0.0.1", "--port="+p,
				"--tls=on", "--tls-starttls="+starttls, "--tls-trust-file="+s.caFile,
				"--auth="+tc.auth, "--user="+tc.user, "--passwordeval=cat "+secretFile,
				"--delivery=maildir,"+md, "--received-header=off", "--keep=off", "--quiet",
				"--uidls-file="+filepath.Join(md, "uidls")) // not the shared ~/.mpop_uidls
			files, _ := filepath.Glob(filepath.Join(md, "new", "*"))
			if len(files) != 1 {
				t.Fatalf("mpop delivered %v, want one message", files)
			}
			got, _ := os.ReadFile(files[0])
			if string(got) != want {
				t.Errorf("mpop retrieved:\n got %q\nwant %q", got, want)
			}
			if n := len(maildirFiles(t, filepath.Join(s.Dir, "mail", tc.user))); n != 0 {
				t.Errorf("%d messages left on the server after mpop --keep=off", n)
			}
		})
	}
	// An expired token, and a token for another user, are refused
	// (mpop exit 77: authentication failed).
	md := t.TempDir()
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.Mkdir(filepath.Join(md, sub), 0o700)
	}
	for _, tok := range []string{iss.token(t, "erin", -time.Hour), iss.token(t, "carol", time.Hour)} {
		cmd := exec.Command(mpop, "-C", "/dev/null", "--host=127.0.0.1", "--port="+tlsPort, "--tls=on",
			"--tls-starttls=off", "--tls-trust-file="+s.caFile, "--auth=oauthbearer", "--user=erin",
			"--passwordeval=echo "+tok, "--delivery=maildir,"+md, "--uidls-file="+filepath.Join(md, "uidls"))
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 77 {
			t.Errorf("mpop with a bad token: %v, want exit 77 (authentication failed): %s", err, out)
		}
	}
}

// curl with OAUTHBEARER and XOAUTH2 (--oauth2-bearer).
func TestCurlOAuth(t *testing.T) {
	t.Parallel()
	curl := testenv.LookPath(t, "curl")
	iss := newOAuthIssuer(t, t.TempDir())
	s := startTLSConfig(t, tlsConfig{passwd: "erin:\n", tail: oauthTOML(iss.jwks)})
	want := s.deliver(t, "erin", testMessage)
	for _, mech := range []string{"OAUTHBEARER", "XOAUTH2"} {
		out := run(t, nil, curl, "-sS", "--cacert", s.caFile, "-u", "erin:", "--oauth2-bearer", iss.token(t, "erin", time.Hour),
			"--login-options", "AUTH="+mech, "pop3s://"+s.POP3S+"/1")
		if string(out) != want {
			t.Errorf("curl %s:\n got %q\nwant %q", mech, out, want)
		}
	}
}

// fetchmail over POP3S and with STLS (--sslproto tls1.2+, certificate
// checked), logging in with USER/PASS as a user whose entry holds only
// doveadm's SCRAM keys.
func TestFetchmailTLS(t *testing.T) {
	t.Parallel()
	fetchmail := testenv.LookPath(t, "fetchmail")
	s := startTLSConfig(t, tlsConfig{
		pop3:   `trusted_networks = ["192.0.2.0/24"]`,
		passwd: "dave:" + doveadmSCRAM(t, "dave pw") + "\n",
	})
	_, port, _ := net.SplitHostPort(s.POP3)
	_, tlsPort, _ := net.SplitHostPort(s.POP3S)
	for _, tc := range []struct{ name, port, ssl string }{
		{"implicit", tlsPort, "ssl"},
		{"STLS", port, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := lfForm(s.deliver(t, "dave", testMessage))
			home := t.TempDir()
			out := filepath.Join(home, "out")
			rc := filepath.Join(home, "fetchmailrc")
			os.WriteFile(rc, []byte(fmt.Sprintf(`poll 127.0.0.1 port %s proto POP3 auth password
  user "dave" password "dave pw" %s sslcertck sslcertfile %q sslcommonname localhost sslproto "tls1.2+"
  mda "/bin/sh -c 'cat >> %s'" nokeep
`, tc.port, tc.ssl, s.caFile, out)), 0o600)
			run(t, []string{"HOME=" + home, "FETCHMAILHOME=" + home}, fetchmail, "-f", rc, "--nosyslog", "--invisible", "--nodetach",
				// Its own lock and UID list: run as root, fetchmail locks
				// /var/run/fetchmail.pid whatever FETCHMAILHOME says, and
				// another fetchmail on the machine would make it refuse.
				"--pidfile", filepath.Join(home, "fetchmail.pid"), "--idfile", filepath.Join(home, "fetchids"))
			got, _ := os.ReadFile(out)
			if string(got) != want {
				t.Errorf("fetchmail retrieved:\n got %q\nwant %q", got, want)
			}
			if !strings.Contains(s.Log(), "user=dave tls=true") {
				t.Errorf("no TLS login of dave in the server log")
			}
		})
	}
}

// getmail6 over POP3S, deleting what it fetched. getmail6 has no STLS
// for POP3 (only its IMAP retrievers know STARTTLS), so POP3S only.
func TestGetmailTLS(t *testing.T) {
	t.Parallel()
	testenv.LookPath(t, "getmail")
	s := startTLSConfig(t, tlsConfig{
		pop3:   `trusted_networks = ["192.0.2.0/24"]`,
		passwd: "dave:" + doveadmSCRAM(t, "dave pw") + "\n",
	})
	host, port, _ := net.SplitHostPort(s.POP3S)
	want := lfForm(s.deliver(t, "dave", testMessage))
	dir := t.TempDir()
	md := filepath.Join(dir, "Maildir")
	rc := filepath.Join(dir, "getmailrc")
	os.WriteFile(rc, []byte(fmt.Sprintf(`[retriever]
type = SimplePOP3SSLRetriever
server = %s
port = %s
username = dave
password = dave pw
ca_certs = %s
ssl_cert_hostname = localhost
timeout = 20

[destination]
type = Maildir
path = %s/
%s
[options]
read_all = false
delete = true
verbose = 0
delivered_to = false
received = false
`, host, port, s.caFile, md, getmailMaildir(t, md))), 0o600)
	runGetmail(t, dir, rc)
	files, _ := filepath.Glob(filepath.Join(md, "new", "*"))
	if len(files) != 1 {
		t.Fatalf("getmail delivered %d messages, want 1", len(files))
	}
	if got := mustRead(t, files[0]); got != want {
		t.Errorf("getmail retrieved:\n got %q\nwant %q", got, want)
	}
	if !strings.Contains(s.Log(), "user=dave tls=true") {
		t.Errorf("no TLS login of dave in the server log")
	}
	if left := maildirFiles(t, filepath.Join(s.Dir, "mail", "dave")); len(left) != 0 {
		t.Errorf("%d messages left on the server after getmail with delete = true", len(left))
	}
}

// getmailMaildir makes the Maildir md for getmail6 and returns the line of
// its [destination] that lets it deliver there. As root getmail refuses to
// deliver unless a user is named: its delivery process then runs as
// nobody, which must be able to reach and write md.
func getmailMaildir(t *testing.T, md string) string {
	t.Helper()
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() != 0 {
		return ""
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("getmail as root needs a user to deliver as: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.Chown(filepath.Join(md, sub), uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	// The test's own temporary directories, made 0700, up to the system's.
	for p := filepath.Dir(md); p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	return "user = nobody\n"
}

// runGetmail runs getmail6 with the rc file rc and its state (the oldmail
// file of what it has seen) in dir, never the shared ~/.getmail.
func runGetmail(t *testing.T, dir, rc string) {
	t.Helper()
	// getmail forks a delivery process per message and installs its
	// SIGCHLD handler only after fork(2): a child that exits first is
	// waited for until the retriever's timeout, and the run fails. On one
	// CPU the parent runs first after fork(2) and installs the handler in
	// time.
	args := []string{"getmail", "--rcfile", rc, "--getmaildir", dir}
	if taskset, err := exec.LookPath("taskset"); err == nil {
		args = append([]string{taskset, "-c", "0"}, args...)
	}
	run(t, []string{"HOME=" + dir}, args[0], args[1:]...)
}

// SASL EXTERNAL with a TLS client certificate from the configured CA.
func TestExternalClientCert(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test client CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	caCert, _ := x509.ParseCertificate(caDER)
	caFile := filepath.Join(dir, "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600)
	client := func(cn string, emails ...string) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn}, EmailAddresses: emails,
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	s := startTLSConfig(t, tlsConfig{
		auth:   fmt.Sprintf("client_ca_file = %q", caFile),
		passwd: "frank:{PLAIN}x\ngina@example.org:{PLAIN}y\n",
	})
	size := len(s.deliver(t, "frank", testMessage))
	for _, tc := range []struct {
		cert     tls.Certificate
		loggedIn string
	}{
		{client("frank"), fmt.Sprintf("+OK logged in, 1 messages (%d octets)", size)},
		{client("someone", "gina@example.org"), "+OK logged in, 0 messages (0 octets)"},
	} {
		cfg := s.clientTLS()
		cfg.Certificates = []tls.Certificate{tc.cert}
		p, _ := s.dialTLS(t, cfg)
		p.send("CAPA")
		if capa := p.multi(); !strings.Contains(capa, "SASL SCRAM-SHA-256 SCRAM-SHA-1 EXTERNAL PLAIN LOGIN\r\n") {
			t.Errorf("CAPA with a client certificate:\n%s", capa)
		}
		p.transcript("C: AUTH EXTERNAL =\nS: " + tc.loggedIn + "\nC: QUIT\nS: +OK bye, 0 messages deleted")
	}
	// Without a certificate: no EXTERNAL.
	p, _ := s.dialTLS(t, s.clientTLS())
	p.transcript("C: AUTH EXTERNAL =\nS: -ERR unrecognized authentication type")
	// A certificate from another CA, sent anyway, fails the handshake.
	other, _ := selfSignedPair(t)
	cfg := s.clientTLS()
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &other, nil }
	if c, err := tls.Dial("tcp", s.POP3S, cfg); err == nil {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("a client certificate from an unknown CA was accepted")
		}
		c.Close()
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func selfSignedPair(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return c, certPEM
}

func (p *pop3Conn) send(line string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(line + "\r\n")); err != nil {
		p.t.Fatal(err)
	}
	if l := p.line(); !strings.HasPrefix(l, "+OK") {
		p.t.Fatalf("%s: %q", line, l)
	}
}

// fail2banRegex is the filter README.md documents, for the text log
// format; fail2ban puts its host pattern in place of <HOST>.
const fail2banRegex = `msg="authentication failed" session=\S+ remote=<HOST>(?:\s|$)`

// TestFail2banRegex: a failed login produces a log line that the filter
// in the README matches, naming the client's address.
func TestFail2banRegex(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "failregex = "+fail2banRegex) {
		t.Errorf("README.md does not document failregex = %s", fail2banRegex)
	}
	s := startTLSConfig(t, tlsConfig{passwd: "alice:{PLAIN}alice pw\n"})
	p, _ := s.dialTLS(t, s.clientTLS())
	p.cmd("+OK", "USER nobody")
	p.cmd("-ERR [AUTH]", "PASS guess")
	m := s.WaitLog(t, strings.Replace(fail2banRegex, "<HOST>", `(\S+)`, 1))
	if m[1] != "127.0.0.1" {
		t.Errorf("fail2ban would ban %q", m[1])
	}
}

// testssl.sh against the implicit-TLS port and with --starttls pop3: no
// protocol below TLS 1.2, no weak cipher.
func TestTestssl(t *testing.T) {
	if testing.Short() {
		t.Skip("testssl.sh takes a minute")
	}
	t.Parallel()
	testssl := testenv.LookPath(t, "testssl")
	s := startTLSConfig(t, tlsConfig{passwd: "alice:{PLAIN}alice pw\n"})
	for _, tc := range []struct{ name, target string }{
		{"pop3s", s.POP3S},
		{"starttls", s.POP3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each run takes minutes of waiting, little CPU: side by side.
			t.Parallel()
			out := filepath.Join(t.TempDir(), "testssl.json")
			// --nodns none: the target is an address, and on a machine without
			// a resolver the lookups testssl makes of it each wait for a timeout.
			args := []string{"--quiet", "--color", "0", "--warnings", "off", "--sneaky", "--nodns", "none", "-p", "-s", "--jsonfile", out}
			if tc.name == "starttls" {
				args = append(args, "--starttls", "pop3")
			}
			start := time.Now()
			cmd := exec.Command(testssl, append(args, tc.target)...)
			if b, err := cmd.CombinedOutput(); err != nil && !fileExistsT(out) {
				t.Fatalf("testssl: %v\n%s", err, b)
			}
			var findings []struct{ ID, Severity, Finding string }
			if err := json.Unmarshal([]byte(mustRead(t, out)), &findings); err != nil {
				t.Fatal(err)
			}
			var summary []string
			seen := map[string]string{}
			for _, f := range findings {
				seen[f.ID] = f.Finding
				switch f.Severity {
				case "LOW", "MEDIUM", "HIGH", "CRITICAL":
					t.Errorf("testssl %s: %s %s: %s", tc.name, f.Severity, f.ID, f.Finding)
				}
				if strings.HasPrefix(f.ID, "SSL") || strings.HasPrefix(f.ID, "TLS") || strings.HasPrefix(f.ID, "cipherlist_") {
					summary = append(summary, f.ID+"="+f.Finding)
				}
			}
			for _, id := range []string{"SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL",
				"cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA", "cipherlist_AVERAGE"} {
				if f, ok := seen[id]; !ok || !strings.HasPrefix(f, "not offered") {
					t.Errorf("testssl %s: %s = %q, want not offered", tc.name, id, f)
				}
			}
			for _, id := range []string{"TLS1_2", "TLS1_3", "cipherlist_STRONG"} {
				if f := seen[id]; !strings.HasPrefix(f, "offered") {
					t.Errorf("testssl %s: %s = %q, want offered", tc.name, id, f)
				}
			}
			t.Logf("testssl %s (%v): %s", tc.name, time.Since(start).Round(time.Second), strings.Join(summary, "; "))
		})
	}
}

func fileExistsT(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// Python's poplib in RFC 6856 UTF-8 mode, for a user whose name and
// password are not ASCII, over POP3S.
func TestPoplibUTF8(t *testing.T) {
	t.Parallel()
	python := testenv.LookPath(t, "python3")
	s := startTLSConfig(t, tlsConfig{passwd: "jörg:{PLAIN}пароль 密码\n"})
	want := s.deliver(t, "jörg", "Subject: =?UTF-8?Q?gr=C3=BC=C3=9Fe?=\nFrom: Jörg <jörg@example.org>\n\nGrüße\n")
	_, tlsPort, _ := net.SplitHostPort(s.POP3S)
	script := `import poplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
p = poplib.POP3_SSL("127.0.0.1", port, context=ssl.create_default_context(cafile=ca))
caps = p.capa()
assert caps.get("UTF8") == ["USER"], caps
p.utf8()
p.user("jörg"); p.pass_("пароль 密码")
resp, lines, octets = p.retr(1)
sys.stdout.buffer.write(b"".join(l + b"\r\n" for l in lines))
p.quit()
`
	if got := string(run(t, nil, python, "-c", script, tlsPort, s.caFile)); got != want {
		t.Errorf("poplib retrieved %q, want %q", got, want)
	}
}
