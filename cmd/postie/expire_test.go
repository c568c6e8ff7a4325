package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// postie serve with pop3.expire = "30" and alice's own "0"
// (pop3.expire_users): CAPA says EXPIRE 30 USER before login, EXPIRE 0
// after alice's, and a message she retrieved (RETR) is gone after QUIT
// though she never sent DELE, from the Maildir on disk too; one only
// listed stays.
func TestServeExpireZero(t *testing.T) {
	t.Parallel()
	python := testenv.LookPath(t, "python3")
	s := startTLSConfig(t, tlsConfig{pop3: "expire = \"30\"\nexpire_users = { alice = \"0\" }", passwd: "alice:{PLAIN}alicepw\n"})
	want := s.deliver(t, "alice", testMessage)
	s.deliver(t, "alice", "Subject: second\n\nkept\n")
	_, port, _ := net.SplitHostPort(s.POP3S)
	script := `import poplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
p = poplib.POP3_SSL("127.0.0.1", port, context=ctx)
assert p.capa()["EXPIRE"] == ["30", "USER"], p.capa()
p.user("alice"); p.pass_("alicepw")
assert p.capa()["EXPIRE"] == ["0"], p.capa()
resp, lines, octets = p.retr(1)
sys.stdout.buffer.write(b"".join(l + b"\r\n" for l in lines))
r = p.quit()
assert r == b"+OK bye, 1 messages deleted", r
p = poplib.POP3_SSL("127.0.0.1", port, context=ctx)
p.user("alice"); p.pass_("alicepw")
assert p.stat()[0] == 1, p.stat()
resp, lines, octets = p.retr(1)
assert lines[-3:] == [b"Subject: second", b"", b"kept"], lines
p.quit()
`
	if got := string(run(t, nil, python, "-c", script, port, s.caFile)); got != want {
		t.Errorf("retrieved %q, want %q", got, want)
	}
	// The second session retrieved the other message: gone too.
	files := maildirFiles(t, filepath.Join(s.Dir, "mail", "alice"))
	if len(files) != 0 {
		t.Errorf("left in the Maildir: %q", files)
	}
}

// expireFetch is a `postie serve` that announces and enforces EXPIRE 0
// for alice, with three messages for her, and a fetch account for them
// delivering to dest (the account's destination lines).
type expireFetch struct {
	srv      *tlsServer
	drop     string // alice's Maildir on the server
	dir, cfg string // the fetch side
}

func startExpireFetch(t *testing.T, dest string) *expireFetch {
	t.Helper()
	s := startTLSConfig(t, tlsConfig{pop3: "expire = \"0\"\nallow_cleartext = true", passwd: "alice:{PLAIN}alicepw\n"})
	for _, subj := range []string{"one", "two", "three"} {
		s.deliver(t, "alice", "Subject: "+subj+"\n\nbody of "+subj+"\n")
	}
	e := &expireFetch{srv: s, drop: filepath.Join(s.Dir, "mail", "alice"), dir: t.TempDir()}
	host, port, _ := net.SplitHostPort(s.POP3)
	cfg := fmt.Sprintf(`state_dir = "state"
[[account]]
name = "acct"
server = %q
port = %s
tls = "none"
insecure = true
user = "alice"
password_file = "pass"
%s
`, host, port, dest)
	e.cfg = filepath.Join(e.dir, "fetch.toml")
	if err := os.WriteFile(e.cfg, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, "pass"), []byte("alicepw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// onServer returns the subjects of the messages left in alice's Maildir.
func (e *expireFetch) onServer(t *testing.T) []string {
	t.Helper()
	var subjects []string
	for _, f := range maildirFiles(t, e.drop) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for l := range strings.Lines(string(b)) {
			if s, ok := strings.CutPrefix(l, "Subject: "); ok {
				subjects = append(subjects, strings.TrimSpace(s))
			}
		}
	}
	slices.Sort(subjects)
	return subjects
}

// mdaScript writes an MDA that appends each message's Subject line to
// delivered in dir, and refuses (exit 1) the message "two" while dir has
// no file "fixed".
func mdaScript(t *testing.T, dir string) string {
	t.Helper()
	script := `#!/bin/sh
cd "$(dirname "$0")" || exit 75
cat > msg.tmp || exit 75
if grep -q '^Subject: two' msg.tmp && [ ! -e fixed ]; then
	echo "no room for two" >&2
	exit 1
fi
grep '^Subject:' msg.tmp >> delivered
`
	path := filepath.Join(dir, "mda.sh")
	if err := os.WriteFile(path, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func readDelivered(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "delivered"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

// sessions waits for the server to log the end of its session n and
// returns, for each session so far, "retr=R top=T dele=D reason".
func (e *expireFetch) sessions(t *testing.T, n int) []string {
	t.Helper()
	e.srv.WaitLog(t, `msg="session end" session=`+strconv.Itoa(n)+` `)
	re := regexp.MustCompile(`msg="session end" session=\d+ .* retr=(\d+) retr_bytes=\d+ top=(\d+) dele=(\d+) duration=\S+ reason=("[^"]*"|\S+)`)
	var out []string
	for _, m := range re.FindAllStringSubmatch(e.srv.Log(), -1) {
		out = append(out, fmt.Sprintf("retr=%s top=%s dele=%s %s", m[1], m[2], m[3], strings.Trim(m[4], `"`)))
	}
	return out
}

// TestFetchExpireZeroDeliveryFails: postie fetch against a postie serve
// that deletes at QUIT every message it sent (EXPIRE 0), with an MDA that
// refuses the second of three messages for good (exit 1). The first run
// delivers one and three and ends that session without QUIT, so that the
// server keeps two; then, in a second session that retrieves nothing, it
// deletes one and three by UIDL and QUITs. The next run, the MDA still
// refusing, retrieves two only and has nothing to delete (no second
// session); the run after it, the MDA fixed, delivers two and leaves the
// server empty. Each message is delivered once.
func TestFetchExpireZeroDeliveryFails(t *testing.T) {
	t.Parallel()
	mdaDir := t.TempDir()
	e := startExpireFetch(t, fmt.Sprintf("mda = %q", mdaScript(t, mdaDir)))

	r := postie(t, nil, "", "fetch", "--once", "--config", e.cfg)
	if want := "acct: fetched 2 (346 B), deleted 2, skipped 0, errors 1\n"; r.code != 1 || r.stdout != want {
		t.Errorf("first run: exit %d, stdout %q, want exit 1, %q", r.code, r.stdout, want)
	}
	if !strings.Contains(r.stderr, "without QUIT") {
		t.Errorf("first run: no warning of the session ended without QUIT: %q", r.stderr)
	}
	if got := readDelivered(t, mdaDir); got != "Subject: one\nSubject: three\n" {
		t.Errorf("first run delivered %q", got)
	}
	if got, want := e.onServer(t), []string{"two"}; !slices.Equal(got, want) {
		t.Fatalf("on the server after the first run: %q, want %q", got, want)
	}
	want := []string{"retr=3 top=0 dele=0 client disconnected", "retr=0 top=0 dele=2 quit"}
	if got := e.sessions(t, 2); !slices.Equal(got, want) {
		t.Errorf("first run's sessions:\n%q\nwant\n%q", got, want)
	}

	// Still refused: retrieved again, the others not.
	r = postie(t, nil, "", "fetch", "--once", "--config", e.cfg)
	if want := "acct: fetched 0 (0 B), deleted 0, skipped 0, errors 1\n"; r.code != 1 || r.stdout != want {
		t.Errorf("second run: exit %d, stdout %q, want exit 1, %q", r.code, r.stdout, want)
	}
	if got := readDelivered(t, mdaDir); got != "Subject: one\nSubject: three\n" {
		t.Errorf("after the second run, delivered %q", got)
	}
	if got, want := e.onServer(t), []string{"two"}; !slices.Equal(got, want) {
		t.Fatalf("on the server after the second run: %q, want %q", got, want)
	}

	if err := os.WriteFile(filepath.Join(mdaDir, "fixed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustPostie(t, 0, "", "fetch", "--once", "--config", e.cfg)
	if want := "acct: fetched 1 (171 B), deleted 1, skipped 0, errors 0\n"; r.stdout != want {
		t.Errorf("third run: stdout %q, want %q", r.stdout, want)
	}
	if got := readDelivered(t, mdaDir); got != "Subject: one\nSubject: three\nSubject: two\n" {
		t.Errorf("after the third run, delivered %q", got)
	}
	if got := e.onServer(t); len(got) != 0 {
		t.Errorf("on the server after the third run: %q", got)
	}
	// Session 3 is the second run's only one: no second session when
	// nothing is to be deleted.
	want = append(want, "retr=1 top=0 dele=0 client disconnected", "retr=1 top=0 dele=1 quit")
	if got := e.sessions(t, 4); !slices.Equal(got, want) {
		t.Errorf("sessions:\n%q\nwant\n%q", got, want)
	}
}

// TestFetchExpireZeroDestinationDown: with EXPIRE 0 and an LMTP
// destination that nothing listens on, the run stops at the first
// message it retrieved, and the server keeps all three.
func TestFetchExpireZeroDestinationDown(t *testing.T) {
	t.Parallel()
	dead := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	e := startExpireFetch(t, fmt.Sprintf("lmtp = %q\nlmtp_recipient = \"alice@example.org\"", dead))
	r := postie(t, nil, "", "fetch", "--once", "--config", e.cfg)
	if r.code == 0 || !strings.Contains(r.stdout, "acct: fetched 0 ") {
		t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if got, want := e.onServer(t), []string{"one", "three", "two"}; !slices.Equal(got, want) {
		t.Errorf("on the server: %q, want %q", got, want)
	}
}

// TestFetchExpireZeroSIGTERM: postie fetch gets SIGTERM while the MDA
// holds the second message (the MDA tells the test through a FIFO that
// it has started, and waits); nothing it did not deliver is deleted, and
// the next run delivers two and three, each once.
func TestFetchExpireZeroSIGTERM(t *testing.T) {
	t.Parallel()
	mdaDir := t.TempDir()
	started, release := filepath.Join(mdaDir, "started"), filepath.Join(mdaDir, "release")
	for _, p := range []string{started, release} {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script := `#!/bin/sh
cd "$(dirname "$0")" || exit 75
cat > msg.tmp || exit 75
if grep -q '^Subject: two' msg.tmp && [ ! -e fixed ]; then
	echo two > started
	read x < release
fi
grep '^Subject:' msg.tmp >> delivered
`
	mda := filepath.Join(mdaDir, "mda.sh")
	if err := os.WriteFile(mda, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	e := startExpireFetch(t, fmt.Sprintf("mda = %q", mda))

	cmd := testenv.PostieCommand(t, "fetch", "--once", "--config", e.cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Opening the FIFO waits for the MDA to open it: message two is
	// being delivered.
	f, err := os.Open(started)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(f)
	f.Close()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = <-done
	if err == nil {
		t.Errorf("stopped fetch exited 0: stdout %q", stdout.String())
	}
	if got := readDelivered(t, mdaDir); got != "Subject: one\n" {
		t.Errorf("delivered %q before SIGTERM", got)
	}
	// One may be gone: it was delivered and recorded.
	got := e.onServer(t)
	if !slices.Contains(got, "two") || !slices.Contains(got, "three") {
		t.Fatalf("on the server after SIGTERM: %q (stderr %q)", got, stderr.String())
	}

	if err := os.WriteFile(filepath.Join(mdaDir, "fixed"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	mustPostie(t, 0, "", "fetch", "--once", "--config", e.cfg)
	if got := readDelivered(t, mdaDir); got != "Subject: one\nSubject: three\nSubject: two\n" && got != "Subject: one\nSubject: two\nSubject: three\n" {
		t.Errorf("after the second run, delivered %q", got)
	}
	if got := e.onServer(t); len(got) != 0 {
		t.Errorf("on the server after the second run: %q", got)
	}
}
