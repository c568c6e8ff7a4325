package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3client"
)

// popServer is postie's POP3 engine on loopback over a Maildir store, in
// the test process (pop3test), for the postie fetch binary to fetch from,
// with an implicit-TLS listener too. Users are userN with password passN.
type popServer struct {
	*pop3test.Server
	addr, tlsAddr string
	root          string
	fingerprint   string
}

func startPOP(t *testing.T) *popServer {
	t.Helper()
	cert, _ := testenv.SelfSignedCert(t)
	s := pop3test.Start(t, pop3test.Options{})
	sum := sha256.Sum256(cert.Certificate[0])
	return &popServer{Server: s, addr: s.Addr, root: s.Root,
		tlsAddr:     s.ServeTLS(t, &tls.Config{Certificates: []tls.Certificate{cert}}),
		fingerprint: pop3client.Fingerprint(sum[:])}
}

func (p *popServer) deliver(t *testing.T, user, msg string) {
	t.Helper()
	p.Deliver(t, user, msg)
}

// fetchConfig writes a fetch configuration with one account for user1 at
// addr, plain POP3 on loopback, delivering into dir/Maildir; extra lines
// are added to the account.
func fetchConfig(t *testing.T, dir, addr string, extra ...string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg := fmt.Sprintf(`state_dir = "state"
[[account]]
name = "acct"
server = %q
port = %s
user = "user1"
password_file = "pass"
maildir = "Maildir"
%s
`, host, port, strings.Join(extra, "\n"))
	if !strings.Contains(cfg, "tls =") {
		cfg = strings.Replace(cfg, "[[account]]\n", "[[account]]\ntls = \"none\"\ninsecure = true\n", 1)
	}
	path := filepath.Join(dir, "fetch.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pass"), []byte("pass1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFetchCommand(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	p.deliver(t, "user1", testMessage)
	p.deliver(t, "user1", "Subject: two\n\nsecond\n")
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr)

	// --dry-run lists and changes nothing.
	r := mustPostie(t, 0, "", "fetch", "--dry-run", "--config", cfg)
	if !strings.Contains(r.stdout, "acct: fetch message 1 ") || !strings.Contains(r.stdout, "acct (dry run): would fetch 2 ") {
		t.Errorf("dry run printed:\n%s", r.stdout)
	}
	if files := maildirFiles(t, filepath.Join(dir, "Maildir")); len(files) != 0 {
		t.Errorf("dry run delivered %d messages", len(files))
	}

	r = mustPostie(t, 0, "", "fetch", "--once", "--config", cfg)
	octets := len(wireForm(testMessage)) + len(wireForm("Subject: two\n\nsecond\n"))
	if r.stdout != fmt.Sprintf("acct: fetched 2 (%d B), deleted 2, skipped 0, errors 0\n", octets) {
		t.Errorf("summary: %q (stderr %q)", r.stdout, r.stderr)
	}
	if r.stderr != "" {
		t.Errorf("stderr without a terminal: %q", r.stderr)
	}
	files := maildirFiles(t, filepath.Join(dir, "Maildir"))
	if len(files) != 2 {
		t.Fatalf("%d messages delivered", len(files))
	}
	want := strings.ReplaceAll(wireForm(testMessage), "\r\n", "\n")
	found := false
	for _, f := range files {
		if b, _ := os.ReadFile(f); string(b) == want {
			found = true
		}
	}
	if !found {
		t.Errorf("the test message was not delivered byte for byte")
	}
	r = mustPostie(t, 0, "", "fetch", "--once", "--config", cfg, "--account", "acct")
	if !strings.HasPrefix(r.stdout, "acct: fetched 0 (0 B), deleted 0") {
		t.Errorf("second run: %q", r.stdout)
	}
	mustPostie(t, 64, "", "fetch", "--once", "--config", cfg, "--account", "nosuch")
	mustPostie(t, 64, "", "fetch", "--once", "--dev", "--config", cfg)
}

// TestFetchExitCodes: each kind of failure has its documented exit code
// and a message that says what to do.
func TestFetchExitCodes(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	dead := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	tests := []struct {
		name  string
		addr  string
		extra []string
		pass  string
		code  int
		want  []string
	}{
		{"auth", p.addr, nil, "wrong", 77, []string{"authentication as \"user1\" refused", "-ERR [AUTH]"}},
		{"unreachable", dead, nil, "", 75, []string{"unreachable"}},
		{"tls", p.tlsAddr, []string{`tls = "implicit"`}, "", 76, []string{"TLS verification", fmt.Sprintf("pin_sha256 = %q", p.fingerprint)}},
		{"config", p.addr, []string{"colour = 1"}, "", 78, []string{"unknown key: account.colour"}},
		{"password file", p.addr, nil, "\n", 78, []string{"password_file"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := fetchConfig(t, dir, tc.addr, tc.extra...)
			if tc.pass != "" {
				os.WriteFile(filepath.Join(dir, "pass"), []byte(tc.pass), 0o600)
			}
			r := mustPostie(t, tc.code, "", "fetch", "--once", "--config", cfg)
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
		})
	}
	// With the pin, the TLS account works.
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.tlsAddr, `tls = "implicit"`, fmt.Sprintf("pin_sha256 = %q", p.fingerprint))
	mustPostie(t, 0, "", "fetch", "--once", "--config", cfg)
}

func TestFetchProbe(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	// The whole report, then exit 76: the certificate does not verify.
	r := mustPostie(t, 76, "", "fetch", "probe", "--tls", "implicit", p.tlsAddr)
	for _, w := range []string{"TLS 1.3", "SHA-256 " + p.fingerprint, "verify  FAILED", "UIDL"} {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("probe output lacks %q:\n%s", w, r.stdout)
		}
	}
	if !strings.HasPrefix(r.stderr, "postie: fetch probe: ") || !strings.Contains(r.stderr, "the certificate does not verify: ") {
		t.Errorf("probe stderr %q", r.stderr)
	}
	mustPostie(t, 75, "", "fetch", "probe", "127.0.0.1:"+strconv.Itoa(testenv.FreePort(t)))
	mustPostie(t, 64, "", "fetch", "probe")
}

// TestFetchDaemon runs postie fetch without --once: it polls, fetches mail
// that arrives later, and exits 0 on SIGTERM.
func TestFetchDaemon(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	p.deliver(t, "user1", "Subject: one\n\nfirst\n")
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr)
	cmd := testenv.PostieCommand(t, "fetch", "--config", cfg, "--interval", "200ms")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	waitFor := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for len(maildirFiles(t, filepath.Join(dir, "Maildir"))) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %d messages after 30s\nstdout: %s\nstderr: %s", n, stdout.String(), stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitFor(1)
	p.deliver(t, "user1", "Subject: two\n\nsecond\n")
	waitFor(2)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v\nstderr: %s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("postie fetch did not stop on SIGTERM")
	}
	if !strings.Contains(stdout.String(), "acct: fetched 1 ") {
		t.Errorf("stdout: %s", stdout.String())
	}
}

// TestFetchKilled kills the real binary with SIGKILL at moments during a
// run over a large mailbox, then lets it finish: every message must end
// up in the Maildir exactly once, and the server empty. (The fetch
// package's crash tests stop at exact points; this one holds the binary
// to the same promise at whatever points the kills land.)
func TestFetchKilled(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	const n = 3000
	md := filepath.Join(p.root, "user1")
	for _, sub := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, sub), 0o700)
	}
	want := map[string]bool{}
	for i := range n {
		msg := fmt.Sprintf("Subject: killed %d\n\nbody %d\n", i, i)
		want[msg] = true
		name := fmt.Sprintf("%d.M%06dP1Q%d.gen,S=%d,W=%d", 1700000000+i/1000, i%1000, i, len(msg), len(msg)+3)
		if err := os.WriteFile(filepath.Join(md, "new", name), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr)
	kills := 0
	for _, after := range []time.Duration{150 * time.Millisecond, 400 * time.Millisecond, 700 * time.Millisecond} {
		cmd := testenv.PostieCommand(t, "fetch", "--once", "--config", cfg)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(after, func() { cmd.Process.Signal(syscall.SIGKILL) })
		if err := cmd.Wait(); err != nil {
			kills++
		}
		// Nothing lost so far: every message is on the server or in
		// the Maildir.
		have := map[string]bool{}
		for _, f := range append(maildirFiles(t, filepath.Join(dir, "Maildir")), maildirFiles(t, md)...) {
			b, _ := os.ReadFile(f)
			have[strings.ReplaceAll(string(b), "\r\n", "\n")] = true
		}
		for m := range want {
			if !have[m] {
				t.Fatalf("after a kill at %v: %q is neither on the server nor delivered", after, m)
			}
		}
	}
	if kills == 0 {
		t.Log("no run was killed before it ended")
	}
	for range 50 {
		r := postie(t, nil, "", "fetch", "--once", "--config", cfg)
		if r.code == 0 {
			break
		}
		if r.code != 75 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		time.Sleep(100 * time.Millisecond) // [IN-USE] while the server drops the killed session
	}
	got := map[string]int{}
	for _, f := range maildirFiles(t, filepath.Join(dir, "Maildir")) {
		b, _ := os.ReadFile(f)
		got[string(b)]++
	}
	for m := range want {
		if got[m] != 1 {
			t.Errorf("%q delivered %d times", m, got[m])
		}
	}
	if len(got) != n {
		t.Errorf("%d distinct messages delivered, want %d", len(got), n)
	}
	if left := maildirFiles(t, md); len(left) != 0 {
		t.Errorf("server still has %d messages", len(left))
	}
	t.Logf("%d of 3 runs killed", kills)
}
