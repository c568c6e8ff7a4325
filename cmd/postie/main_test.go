package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type result struct {
	stdout, stderr string
	code           int
}

// postie runs the binary to completion with stdin and returns its output
// and exit code.
func postie(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := testenv.PostieCommand(t, args...)
	cmd.Env = append(cmd.Env, env...)
	r := testenv.RunPostieCommand(t, cmd, stdin)
	if r.Code < 0 {
		t.Fatalf("postie %s: killed by a signal\nstderr: %s", strings.Join(args, " "), r.Stderr)
	}
	return result{stdout: r.Stdout, stderr: r.Stderr, code: r.Code}
}

// mustPostie is postie that expects exit code want.
func mustPostie(t *testing.T, want int, stdin string, args ...string) result {
	t.Helper()
	r := postie(t, nil, stdin, args...)
	if r.code != want {
		t.Fatalf("postie %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.stdout, r.stderr)
	}
	return r
}

func dev(dir string, args ...string) []string {
	return append([]string{args[0], "--dev", "--data-dir", dir}, args[1:]...)
}

// addUser adds an account in the --dev state in dir. The scheme is a
// quick one: argon2 is slow under the race detector, and TestUserCommands
// covers the default.
func addUser(t *testing.T, dir, user, password string) {
	t.Helper()
	mustPostie(t, 0, password+"\n", dev(dir, "user", "add", "--password-stdin", "--scheme", "SHA512-CRYPT", user)...)
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	user := func(args ...string) []string {
		return append([]string{"user", args[0], "--dev", "--data-dir", dir}, args[1:]...)
	}

	mustPostie(t, 0, "s3cret pass\n", user("add", "--password-stdin", "alice")...)
	mustPostie(t, 0, "hunter2", user("add", "--password-stdin", "--scheme", "SHA512-CRYPT", "bob")...)
	if r := mustPostie(t, 0, "", user("list")...); r.stdout != "alice\nbob\n" {
		t.Errorf("user list = %q, want alice and bob", r.stdout)
	}
	data, err := os.ReadFile(filepath.Join(dir, "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "alice:{ARGON2ID}") || !strings.Contains(string(data), "bob:{SHA512-CRYPT}") {
		t.Errorf("passwd file has unexpected schemes:\n%s", data)
	}
	if strings.Contains(string(data), "s3cret") || strings.Contains(string(data), "hunter2") {
		t.Errorf("passwd file holds a clear-text password")
	}

	r := mustPostie(t, 1, "x\n", user("add", "--password-stdin", "alice")...)
	if !strings.Contains(r.stderr, "already exists") {
		t.Errorf("add of an existing user: stderr %q", r.stderr)
	}
	r = mustPostie(t, 67, "x\n", user("passwd", "--password-stdin", "carol")...)
	if !strings.Contains(r.stderr, "no such user") {
		t.Errorf("passwd of an unknown user: stderr %q", r.stderr)
	}
	mustPostie(t, 67, "", user("del", "carol")...)
	mustPostie(t, 65, "x\n", user("add", "--password-stdin", "../evil")...)
	// It would be written as a comment line, and never found.
	if r := mustPostie(t, 65, "x\n", user("add", "--password-stdin", "#x")...); !strings.Contains(r.stderr, "starts with '#'") {
		t.Errorf("add of #x: stderr %q", r.stderr)
	}
	mustPostie(t, 65, "\n", user("add", "--password-stdin", "dave")...)
	mustPostie(t, 65, "", user("add", "--password-stdin", "dave")...)
	// Without --password-stdin the password comes from a terminal only.
	r = mustPostie(t, 64, "x\nx\n", user("add", "dave")...)
	if !strings.Contains(r.stderr, "--password-stdin") {
		t.Errorf("add without a terminal: stderr %q", r.stderr)
	}
	mustPostie(t, 64, "x\n", user("add", "--password-stdin", "--scheme", "ROT13", "dave")...)
	mustPostie(t, 64, "", user("add")...)

	mustPostie(t, 0, "n3w\n", user("passwd", "--password-stdin", "alice")...)
	mustPostie(t, 0, "", user("del", "bob")...)
	if r := mustPostie(t, 0, "", user("list")...); r.stdout != "alice\n" {
		t.Errorf("user list after del = %q", r.stdout)
	}
}

// wireForm is msg as RETR sends it before dot-stuffing: CRLF line ends and
// a final line end.
func wireForm(msg string) string {
	s := strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

// Every byte matters: LF and CRLF ends, a leading dot, a lone ".", 8-bit
// text, and no final newline.
const testMessage = "From: a@example.org\nSubject: test\r\n\n.leading dot\n.\nmixed \xe2\x9c\x89 ends\r\nno final newline"

func maildirFiles(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	for _, sub := range []string{"new", "cur"} {
		m, err := filepath.Glob(filepath.Join(dir, sub, "*"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	return files
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "pw")

	mustPostie(t, 0, testMessage, dev(dir, "deliver", "alice")...)
	files := maildirFiles(t, filepath.Join(dir, "mail", "alice"))
	if len(files) != 1 {
		t.Fatalf("Maildir holds %v, want one message", files)
	}
	got, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	// Byte for byte after the trace fields deliver adds.
	checkTraced(t, string(got), "alice", testMessage)

	// The name is matched as the user database matches it; the maildrop
	// is the stored spelling.
	mustPostie(t, 0, "Subject: 2\n\nx\n", dev(dir, "deliver", "ALICE")...)
	if n := len(maildirFiles(t, filepath.Join(dir, "mail", "alice"))); n != 2 {
		t.Errorf("after delivering to ALICE: %d messages for alice, want 2", n)
	}

	for _, u := range []string{"bob", "../alice", ".alice", "a/b", ""} {
		r := mustPostie(t, 67, "Subject: x\n\nx\n", dev(dir, "deliver", u)...)
		if !strings.Contains(r.stderr, "user") || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("deliver %q: want one concise line about the user, got %q", u, r.stderr)
		}
	}
	mustPostie(t, 64, "", dev(dir, "deliver")...)
	mustPostie(t, 64, "", dev(dir, "deliver", "alice", "bob")...)
	mustPostie(t, 64, "", dev(dir, "deliver", "--no-such-flag", "alice")...)
	if _, err := os.Stat(filepath.Join(dir, "mail", "bob")); err == nil {
		t.Errorf("a maildrop was made for an unknown user")
	}
}

func TestDeliverTempFail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "pw")
	// A store failure (here: the Maildir is a file) is temporary: the MTA
	// keeps the message and retries.
	if err := os.MkdirAll(filepath.Join(dir, "mail"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "mail", "alice"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mustPostie(t, 75, "Subject: x\n\nx\n", dev(dir, "deliver", "alice")...)
}

func TestConfigResolution(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postie.toml")
	if err := os.WriteFile(cfg, []byte("data_dir = \"state\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// --config, then $POSTIE_CONFIG; data_dir is relative to the file.
	mustPostie(t, 0, "pw\n", "user", "add", "--config", cfg, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	r := postie(t, []string{"POSTIE_CONFIG=" + cfg}, testMessage, "deliver", "alice")
	if r.code != 0 {
		t.Fatalf("deliver with POSTIE_CONFIG: exit %d: %s", r.code, r.stderr)
	}
	if n := len(maildirFiles(t, filepath.Join(dir, "state", "mail", "alice"))); n != 1 {
		t.Errorf("%d messages in state/mail/alice, want 1", n)
	}

	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[pop3]\nidel_timeout = \"10m\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustPostie(t, 78, "x", "deliver", "--config", bad, "alice")
	if !strings.Contains(r.stderr, "pop3.idel_timeout") {
		t.Errorf("bad config: stderr %q does not name the key", r.stderr)
	}
	mustPostie(t, 78, "x", "deliver", "--config", filepath.Join(dir, "missing.toml"), "alice")
	mustPostie(t, 78, "", "serve", "--config", bad)
	mustPostie(t, 64, "", "user", "list", "--dev", "--config", cfg)

	if _, err := os.Stat(systemConfig); err == nil {
		t.Logf("%s exists: not testing the missing-config error", systemConfig)
		return
	}
	r = mustPostie(t, 78, "x", "deliver", "alice")
	if !strings.Contains(r.stderr, "--config") || !strings.Contains(r.stderr, "--dev") {
		t.Errorf("missing config: stderr %q should point to --config and --dev", r.stderr)
	}
}

// startServe starts `postie serve --dev` in dir with every listener on a
// free loopback port; the process is stopped when the test ends.
func startServe(t *testing.T, dir string) *testenv.Postie {
	t.Helper()
	return testenv.StartPostie(t, testenv.PostieOptions{Dev: true, Dir: dir})
}

// pop3Conn is a raw POP3 client: the tests check exact bytes, not a
// library's reading of them.
type pop3Conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialPOP3(t *testing.T, addr string) *pop3Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return pop3Over(t, c)
}

// pop3Over is dialPOP3 on a connection made otherwise (TLS, another
// source address).
func pop3Over(t *testing.T, c net.Conn) *pop3Conn {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute))
	p := &pop3Conn{t: t, c: c, br: bufio.NewReader(c)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	return p
}

func (p *pop3Conn) line() string {
	p.t.Helper()
	l, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		p.t.Fatalf("reply line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// cmd sends line and returns the first reply line, which must start with
// want.
func (p *pop3Conn) cmd(want, line string) string {
	p.t.Helper()
	if _, err := p.c.Write([]byte(line + "\r\n")); err != nil {
		p.t.Fatal(err)
	}
	r := p.line()
	if !strings.HasPrefix(r, want) {
		p.t.Fatalf("%s: reply %q, want %s", strings.Fields(line)[0], r, want)
	}
	return r
}

// multi reads a multi-line body up to its terminating ".", undoing the
// byte-stuffing.
func (p *pop3Conn) multi() string {
	p.t.Helper()
	var b strings.Builder
	for {
		l := p.line()
		if l == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
		b.WriteString("\r\n")
	}
}

func (p *pop3Conn) login(user, password string) {
	p.t.Helper()
	p.cmd("+OK", "USER "+user)
	p.cmd("+OK", "PASS "+password)
}

func TestServeDev(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	password := s.WaitStdout(t, `(?m)^\s*password:\s+(\S+)$`)[1]
	s.WaitStdout(t, `(?m)^\s*user:\s+demo$`)
	addr := s.WaitLog(t, `msg=listening proto=pop3 addr=(127\.0\.0\.1:\d+)`)[1]
	if strings.HasSuffix(addr, ":0") {
		t.Fatalf("logged the requested address %s instead of the bound one", addr)
	}
	if !strings.Contains(s.Stdout(), "curl -u") || !strings.Contains(s.Stdout(), "pop3://"+addr) {
		t.Errorf("the banner does not show how to read mail:\n%s", s.Stdout())
	}
	saved, err := os.ReadFile(filepath.Join(dir, "demo-password"))
	if err != nil || strings.TrimSpace(string(saved)) != password {
		t.Errorf("demo-password file holds %q (%v), want the printed password", saved, err)
	}

	mustPostie(t, 0, testMessage, dev(dir, "deliver", "demo")...)
	want := wireForm(storedMessage(t, filepath.Join(dir, "mail", "demo"), "demo", testMessage))

	p := dialPOP3(t, addr)
	p.login("demo", password)
	if r := p.cmd("+OK", "STAT"); r != "+OK 1 "+strconv.Itoa(len(want)) {
		t.Errorf("STAT = %q, want +OK 1 %d", r, len(want))
	}
	p.cmd("+OK", "RETR 1")
	if got := p.multi(); got != want {
		t.Errorf("RETR 1:\n got %q\nwant %q", got, want)
	}
	p.cmd("+OK", "QUIT")

	s.Stop(t, syscall.SIGTERM, 10*time.Second)
	s.WaitLog(t, `msg=stopped`)

	// A second start keeps the account and prints no new password.
	s2 := startServe(t, dir)
	s2.WaitLog(t, `msg=listening`)
	s2.WaitStdout(t, `Stop with Ctrl-C`)
	if strings.Contains(s2.Stdout(), "password:") {
		t.Errorf("second start printed a new password:\n%s", s2.Stdout())
	}
	if r := mustPostie(t, 0, "", dev(dir, "user", "list")...); r.stdout != "demo\n" {
		t.Errorf("users after restart: %q", r.stdout)
	}
	s2.Stop(t, syscall.SIGINT, 10*time.Second)
}

func TestServeReloadOnSIGHUP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	addr := s.POP3

	addUser(t, dir, "carol", "carol pw")
	mustPostie(t, 0, "Subject: for carol\n\nhi\n", dev(dir, "deliver", "carol")...)
	s.Signal(t, syscall.SIGHUP)
	s.WaitLog(t, `msg="users reloaded" users=2`)

	p := dialPOP3(t, addr)
	p.login("carol", "carol pw")
	p.cmd("+OK 1 ", "STAT")
	p.cmd("+OK", "QUIT")
	s.Stop(t, syscall.SIGTERM, 10*time.Second)
}

// TestServeShutdownKeepsMail: SIGTERM during a session waits the grace
// period, then closes the session without deleting what it marked.
func TestServeShutdownKeepsMail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	password := s.WaitStdout(t, `(?m)^\s*password:\s+(\S+)$`)[1]
	addr := s.POP3
	mustPostie(t, 0, "Subject: keep me\n\nx\n", dev(dir, "deliver", "demo")...)

	p := dialPOP3(t, addr)
	p.login("demo", password)
	p.cmd("+OK", "DELE 1")
	s.Stop(t, syscall.SIGTERM, 20*time.Second)
	s.WaitLog(t, `msg="shutting down"`)
	if _, err := p.br.ReadString('\n'); err == nil {
		t.Errorf("the session was not closed by the shutdown")
	}
	if n := len(maildirFiles(t, filepath.Join(dir, "mail", "demo"))); n != 1 {
		t.Errorf("%d messages left after a shutdown without QUIT, want 1", n)
	}
}

// peer returns the path of a peer program, skipping the test when it is
// missing (failing under POSTIE_REQUIRE_PEERS=1).
func peer(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("POSTIE_REQUIRE_PEERS") == "1" {
			t.Fatalf("peer %s is missing and POSTIE_REQUIRE_PEERS=1", name)
		}
		t.Skipf("peer %s is missing", name)
	}
	return p
}

// TestTourWithPeers follows the README tour: deliver, then read the message
// with curl and with Python's poplib, as a newcomer would.
func TestTourWithPeers(t *testing.T) {
	t.Parallel()
	curl := peer(t, "curl")
	python := peer(t, "python3")
	dir := t.TempDir()
	s := startServe(t, dir)
	password := s.WaitStdout(t, `(?m)^\s*password:\s+(\S+)$`)[1]
	addr := s.POP3
	mustPostie(t, 0, testMessage, dev(dir, "deliver", "demo")...)
	want := wireForm(storedMessage(t, filepath.Join(dir, "mail", "demo"), "demo", testMessage))

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, curl, "-sS", "-u", "demo:"+password, "pop3://"+addr+"/1").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	if string(out) != want {
		t.Errorf("curl pop3://%s/1:\n got %q\nwant %q", addr, out, want)
	}
	out, err = exec.CommandContext(ctx, curl, "-sS", "-u", "demo:"+password, "pop3://"+addr+"/").Output()
	if err != nil || string(out) != fmt.Sprintf("1 %d\r\n", len(want)) {
		t.Errorf("curl listing = %q, %v", out, err)
	}

	host, port, _ := net.SplitHostPort(addr)
	script := `import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]))
p.user("demo")
p.pass_(sys.argv[3])
count, size = p.stat()
resp, lines, octets = p.retr(1)
p.quit()
sys.stdout.buffer.write(b"%d %d %d\n" % (count, size, octets) + b"".join(l + b"\r\n" for l in lines))
`
	out, err = exec.CommandContext(ctx, python, "-c", script, host, port, password).Output()
	if err != nil {
		t.Fatalf("python3 poplib: %v", err)
	}
	head, body, _ := strings.Cut(string(out), "\n")
	if body != want {
		t.Errorf("poplib RETR 1:\n got %q\nwant %q", body, want)
	}
	// poplib's octets count the lines as received, stuffing and CRLFs
	// included; STAT's size is the message's.
	if !strings.HasPrefix(head, fmt.Sprintf("1 %d ", len(want))) {
		t.Errorf("poplib STAT/RETR = %q, want 1 message of %d octets", head, len(want))
	}
}

// TestDevDefaultDataDir: without --data-dir, --dev keeps its state in
// ./postie-dev.
func TestDevDefaultDataDir(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cmd := testenv.PostieCommand(t, "user", "add", "--dev", "--password-stdin", "--scheme", "SHA512-CRYPT", "erin")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("pw\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("user add --dev: %v\n%s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "postie-dev", "passwd"))
	if err != nil || !strings.HasPrefix(string(data), "erin:") {
		t.Errorf("postie-dev/passwd: %q, %v", data, err)
	}
}
