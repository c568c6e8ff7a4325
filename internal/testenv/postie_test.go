package testenv_test

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// greeting dials addr and returns the first line it sends.
func greeting(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("greeting from %s: %v (%q)", addr, err, l)
	}
	return l
}

// A config given as a struct: every listener on a port of its own, the
// addresses learnt from the log, SIGTERM ends the process with code 0.
func TestPostieConfigStruct(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := config.Default()
	c.DataDir = dir
	c.POP3.Listen = []string{"127.0.0.1:0", "127.0.0.2:0"}
	c.POP3.Hostname = "structured"
	c.LMTP.Listen = []string{"127.0.0.1:0"}
	c.SMTP.Listen = []string{"127.0.0.1:0"}
	c.Intake.LocalDomains = []string{"example.org"}
	c.Admin.Listen = "127.0.0.1:0"
	p := testenv.StartPostie(t, testenv.PostieOptions{Dir: dir, Config: c})

	for _, a := range []string{p.POP3, p.LMTP, p.SMTP, p.Admin} {
		if a == "" || strings.HasSuffix(a, ":0") || !strings.HasPrefix(a, "127.0.0.") {
			t.Errorf("address %q: want a bound loopback port", a)
		}
	}
	if p.POP3S != "" {
		t.Errorf("POP3S = %q without a TLS listener", p.POP3S)
	}
	pop3 := p.Addrs("pop3")
	if len(pop3) != 2 || pop3[0] != p.POP3 || pop3[0] == pop3[1] {
		t.Errorf("Addrs(pop3) = %q, want two ports, the first %s", pop3, p.POP3)
	}
	for _, a := range pop3 {
		if g := greeting(t, a); g != "+OK structured POP3 server ready\r\n" {
			t.Errorf("greeting on %s: %q", a, g)
		}
	}
	if g := greeting(t, p.LMTP); !strings.HasPrefix(g, "220 ") {
		t.Errorf("LMTP greeting %q", g)
	}
	if !strings.Contains(p.Log(), `msg="postie started"`) {
		t.Errorf("ready before the start was logged:\n%s", p.Log())
	}
	p.Stop(t, syscall.SIGTERM, time.Minute)
	p.WaitLog(t, `msg=stopped`)
}

// A server killed and started again keeps its state, gets new ports, and
// Log is the new run's. A command run with the server's config sees the
// same state.
func TestPostieRestart(t *testing.T) {
	t.Parallel()
	p := testenv.NewPostie(t, testenv.PostieOptions{Config: `[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[lmtp]
listen = []
[auth]
default_scheme = "SHA512-CRYPT"
`})
	if p.Log() != "" {
		t.Errorf("Log before the first start: %q", p.Log())
	}
	if !strings.HasPrefix(p.Config, p.Dir+string(filepath.Separator)) {
		t.Errorf("config %s is not in %s", p.Config, p.Dir)
	}
	p.MustRun(t, "pw\n", "user", "add", "--password-stdin", "alice")
	p.Start(t)
	first := p.POP3
	if p.LMTP != "" {
		t.Errorf("LMTP = %q with lmtp.listen = []", p.LMTP)
	}
	p.Kill(t)
	select {
	case <-p.Done():
	default:
		t.Fatal("Done not closed after Kill")
	}
	p.Start(t)
	if p.POP3 == first {
		t.Logf("the same port %s again (possible, unlikely)", first)
	}
	if strings.Count(p.Log(), `msg="postie started"`) != 1 {
		t.Errorf("Log holds more than the current run:\n%s", p.Log())
	}
	if r := p.MustRun(t, "", "user", "list"); r.Stdout != "alice\n" {
		t.Errorf("user list after the restart: %q", r.Stdout)
	}
	if _, err := os.Stat(filepath.Join(p.Dir, "passwd")); err != nil {
		t.Errorf("the state is not in Dir: %v", err)
	}
}

// After a test, its server is gone: Cleanup killed it.
func TestPostieStoppedAtCleanup(t *testing.T) {
	t.Parallel()
	var pid int
	t.Run("server", func(t *testing.T) {
		p := testenv.StartPostie(t, testenv.PostieOptions{Dev: true})
		pid = p.Pid()
		if g := greeting(t, p.POP3); !strings.HasPrefix(g, "+OK") {
			t.Errorf("greeting %q", g)
		}
		if p.POP3S == "" || p.LMTP == "" {
			t.Errorf("--dev: POP3S %q, LMTP %q: want both on free ports", p.POP3S, p.LMTP)
		}
		p.WaitStdout(t, `(?m)^\s*password:\s+\S+$`)
	})
	// The process was waited for, so the pid is no longer ours: signal 0
	// finds no such process (or, if the pid was reused, not our child).
	if err := syscall.Kill(pid, 0); err == nil {
		if data, _ := os.ReadFile(filepath.Join("/proc", itoa(pid), "cmdline")); strings.Contains(string(data), "postie") {
			t.Errorf("postie serve (pid %d) still runs after its test ended", pid)
		}
	}
}

func itoa(n int) string { return testenv.Itoa(n) }
