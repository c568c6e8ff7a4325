package abuse

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// certPEM and keyPEM are a self-signed certificate for 127.0.0.1 and
// localhost; roots trusts it.
var (
	certPEM, keyPEM []byte
	roots           = x509.NewCertPool()
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if runtime.GOOS != "linux" {
		// Clients from 127.0.x.y and the server's /proc/PID/status.
		fmt.Println("internal/abuse: skipped: Linux only")
		return 0
	}
	// 10,000 connections need 10,000 descriptors here (and as many in
	// the server, which inherits the limit).
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintln(os.Stderr, "setrlimit:", err)
		}
	}
	var err error
	if certPEM, keyPEM, err = testenv.SelfSigned(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	roots.AppendCertsFromPEM(certPEM)
	return testenv.Run(m)
}

func clientTLS() *tls.Config {
	return &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// long reports whether the long variants run (POSTIE_LONG=1).
func long() bool { return os.Getenv("POSTIE_LONG") == "1" }

// server is a running `postie serve` with its own config and data. It
// runs the binary built without the race detector even under -race: the
// race runtime allows at most 8128 live goroutines (a 10,000-connection
// server needs more) and multiplies memory, which would make the
// peak-memory figures meaningless. The engine's races are the business of
// pop3server's own tests.
type server struct {
	*testenv.Postie
}

// setup is what a scenario changes: [pop3] keys (TOML values). The log
// level is info: the tests read the "listening" and "session end" lines.
type setup struct {
	pop3 map[string]string
}

// Users and their passwords; every server has them.
var passwords = map[string]string{"alice": "alice-pw", "bob": "bob-pw"}

// startServer writes a config, creates the users and starts postie serve
// on free loopback ports (POP3 and POP3S). The process is stopped when the
// test ends.
func startServer(t *testing.T, su setup) *server {
	t.Helper()
	pop3 := map[string]string{
		"listen":     `["127.0.0.1:0"]`,
		"listen_tls": `["127.0.0.1:0"]`,
		"hostname":   `"abuse"`,
	}
	for k, v := range su.pop3 {
		pop3[k] = v
	}
	keys := make([]string, 0, len(pop3))
	for k := range pop3 {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var cfg strings.Builder
	cfg.WriteString("[log]\nlevel = \"info\"\n[pop3]\n")
	for _, k := range keys {
		fmt.Fprintf(&cfg, "%s = %s\n", k, pop3[k])
	}
	cfg.WriteString("[auth]\ndefault_scheme = \"SHA512-CRYPT\"\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n[lmtp]\nlisten = []\n")
	s := &server{testenv.NewPostie(t, testenv.PostieOptions{
		Config: cfg.String(),
		Files:  map[string]string{"cert.pem": string(certPEM), "key.pem": string(keyPEM)},
		NoRace: true,
	})}
	for _, u := range []string{"alice", "bob"} {
		s.MustRun(t, passwords[u]+"\n", "user", "add", "--password-stdin", u)
	}
	s.Start(t)
	return s
}

// deliver stores msg for user with `postie deliver`.
func (s *server) deliver(t *testing.T, user, msg string) {
	t.Helper()
	s.MustRun(t, msg, "deliver", user)
}

// alive fails the test if the server process has ended.
func (s *server) alive(t *testing.T) {
	t.Helper()
	select {
	case <-s.Done():
		t.Fatalf("postie serve died:\n%s", s.Log())
	default:
	}
}

// peakMemory returns the server's peak resident set size (VmHWM), in
// bytes.
func (s *server) peakMemory(t *testing.T) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Pid()))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^VmHWM:\s+(\d+) kB$`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("no VmHWM in /proc/%d/status", s.Pid())
	}
	kb, _ := strconv.ParseInt(string(m[1]), 10, 64)
	return kb << 10
}

// checkMemory logs the server's peak memory and fails over limit.
func (s *server) checkMemory(t *testing.T, scenario string, limit int64) {
	t.Helper()
	s.alive(t)
	peak := s.peakMemory(t)
	t.Logf("%s: server peak memory (VmHWM) %.1f MiB (limit %d MiB)", scenario, float64(peak)/(1<<20), limit>>20)
	if peak > limit {
		t.Errorf("%s: server peak memory %.1f MiB, over %d MiB", scenario, float64(peak)/(1<<20), limit>>20)
	}
}

// conn is a raw POP3 client connection: the tests read exact bytes.
type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

// dialFrom connects from the loopback address src ("" for any).
func dialFrom(t *testing.T, src, addr string) (net.Conn, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d.Dial("tcp", addr)
}

func newConn(t *testing.T, c net.Conn) *conn {
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	return &conn{t: t, c: c, br: bufio.NewReader(c)}
}

// dial connects and expects the greeting.
func dial(t *testing.T, src, addr string) *conn {
	t.Helper()
	c, err := dialFrom(t, src, addr)
	if err != nil {
		t.Fatal(err)
	}
	p := newConn(t, c)
	p.expect(greeting)
	return p
}

// dialTLS connects to the implicit-TLS port and expects the greeting.
func dialTLS(t *testing.T, src, addr string) *conn {
	t.Helper()
	c, err := dialFrom(t, src, addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, clientTLS())
	p := newConn(t, tc)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	p.expect(greeting)
	return p
}

const greeting = "+OK abuse POP3 server ready"

func (p *conn) line() (string, error) {
	l, err := p.br.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return l, fmt.Errorf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// expect reads one line, which must be want exactly.
func (p *conn) expect(want string) {
	p.t.Helper()
	l, err := p.line()
	if err != nil {
		p.t.Fatalf("reading %q: %v (got %q)", want, err, l)
	}
	if l != want {
		p.t.Fatalf("reply %q, want %q", l, want)
	}
}

func (p *conn) send(s string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s)); err != nil {
		p.t.Fatalf("sending: %v", err)
	}
}

// cmd sends a command line and expects the reply want exactly.
func (p *conn) cmd(line, want string) {
	p.t.Helper()
	p.send(line + "\r\n")
	p.expect(want)
}

// multi reads a multi-line body up to its terminating ".", undoing the
// byte-stuffing.
func (p *conn) multi() string {
	p.t.Helper()
	var b strings.Builder
	for {
		l, err := p.line()
		if err != nil {
			p.t.Fatalf("reading a multi-line reply: %v", err)
		}
		if l == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
		b.WriteString("\r\n")
	}
}

// expectEOF reads until the server closes the connection, within limit;
// whatever arrives before must be want.
func (p *conn) expectEOF(want string, limit time.Duration) {
	p.t.Helper()
	p.c.SetReadDeadline(time.Now().Add(limit))
	rest, err := readAll(p.br)
	if err != nil {
		p.t.Fatalf("connection not closed by the server within %v: %v (got %q)", limit, err, rest)
	}
	if string(rest) != want {
		p.t.Fatalf("before close: %q, want %q", rest, want)
	}
}

// readAll reads to EOF; a reset by the peer counts as EOF.
func readAll(br *bufio.Reader) ([]byte, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := br.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if err.Error() == "EOF" || strings.Contains(err.Error(), "connection reset") {
				return out, nil
			}
			return out, err
		}
	}
}

// login logs user in with USER/PASS and expects that many messages.
func (p *conn) login(user string, messages int) {
	p.t.Helper()
	p.cmd("USER "+user, "+OK send PASS")
	p.send("PASS " + passwords[user] + "\r\n")
	l, err := p.line()
	if want := fmt.Sprintf("+OK logged in, %d messages (", messages); err != nil || !strings.HasPrefix(l, want) {
		p.t.Fatalf("PASS: reply %q (%v), want %s…", l, err, want)
	}
}

// retr retrieves message n and checks it byte for byte against the
// stored file that holds marker.
func (p *conn) retr(s *server, user string, n int, marker string) {
	p.t.Helper()
	want := wireForm(s.stored(p.t, user, marker))
	p.send(fmt.Sprintf("RETR %d\r\n", n))
	p.expect(fmt.Sprintf("+OK %d octets", len(want)))
	if got := p.multi(); got != want {
		p.t.Fatalf("RETR %d: %d octets differ from the stored message (%d octets)", n, len(got), len(want))
	}
}

// stored returns the content of user's message that holds marker, as
// postie deliver stored it (with its trace fields).
func (s *server) stored(t *testing.T, user, marker string) string {
	t.Helper()
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(s.Dir, "mail", user, sub, "*"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(data, []byte(marker)) {
				return string(data)
			}
		}
	}
	t.Fatalf("no stored message of %s holds %q", user, marker)
	return ""
}

// messages counts user's messages on disk.
func (s *server) messages(t *testing.T, user string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		files, _ := filepath.Glob(filepath.Join(s.Dir, "mail", user, sub, "*"))
		n += len(files)
	}
	return n
}

// smallMessage has a leading dot, LF ends and no final newline.
const smallMessage = "Subject: small\n\n.dot\nsmall-marker\nno final newline"

// wireForm is msg as RETR sends it: CRLF line ends and a final line end.
func wireForm(msg string) string {
	s := strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}
