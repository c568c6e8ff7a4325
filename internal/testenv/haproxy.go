package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// HAProxy is a running haproxy, started by StartHAProxy; it is stopped
// when the test ends.
type HAProxy struct {
	Dir    string // its configuration and runtime files (the stats socket)
	Config string // the configuration file
	Ports  []int  // the ports handed to the configuration, on 127.0.0.1
	out    *SyncBuffer
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartHAProxy runs haproxy (calling Missing when it is not installed)
// with a configuration in a new t.TempDir: a global section with a stats
// socket, TCP-mode defaults, then what conf returns for n free ports on
// 127.0.0.1 (from FreePort: haproxy cannot bind port 0 and report it). It
// returns once haproxy answers on its stats socket, that is once every
// frontend is bound; if a port was taken meanwhile it tries new ones.
func StartHAProxy(t testing.TB, n int, conf func(ports []int) string) *HAProxy {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may lack.
		if _, serr := os.Stat("/usr/sbin/haproxy"); serr != nil {
			Missing(t, "haproxy not installed (./test.sh installs it)")
		}
		bin = "/usr/sbin/haproxy"
	}
	dir := t.TempDir()
	for try := 1; ; try++ {
		h := &HAProxy{Dir: dir, Config: filepath.Join(dir, "haproxy.cfg"), out: &SyncBuffer{}, exited: make(chan struct{})}
		for range n {
			h.Ports = append(h.Ports, FreePort(t))
		}
		text := fmt.Sprintf(`global
	stats socket %s mode 600 level admin
	log stderr format short local0 info

defaults
	mode tcp
	log global
	option tcplog
	timeout connect 10s
	timeout client 5m
	timeout server 5m

%s`, h.socket(), conf(h.Ports))
		if err := os.WriteFile(h.Config, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		// -db: stay in the foreground; logs and errors go to stderr.
		h.cmd = exec.Command(bin, "-db", "-f", h.Config)
		h.cmd.Dir = dir
		h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
		h.cmd.SysProcAttr = &syscall.SysProcAttr{}
		SetDeathSignal(h.cmd.SysProcAttr)
		if err := h.cmd.Start(); err != nil {
			t.Fatalf("starting haproxy: %v", err)
		}
		go func() { h.cmd.Wait(); close(h.exited) }()
		if h.waitReady() {
			t.Cleanup(func() {
				h.Stop()
				if t.Failed() {
					t.Logf("haproxy output:\n%s", tail(h.out.String(), 16<<10))
				}
			})
			return h
		}
		out := h.out.String()
		if try < 5 && strings.Contains(out, "cannot bind socket") {
			continue // a port was taken since FreePort found it free
		}
		t.Fatalf("haproxy exited at start:\n%s\nconfiguration:\n%s", out, text)
	}
}

func (h *HAProxy) socket() string { return filepath.Join(h.Dir, "admin.sock") }

// waitReady waits until haproxy answers on its stats socket (true) or
// exits (false).
func (h *HAProxy) waitReady() bool {
	for {
		select {
		case <-h.exited:
			return false
		default:
		}
		if info, err := h.Command("show info"); err == nil && strings.Contains(info, "Name: HAProxy") {
			return true
		}
		select {
		case <-h.exited:
			return false
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Command sends one command to haproxy's stats socket ("show info",
// "show stat", "disable server b/s") and returns the answer.
func (h *HAProxy) Command(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", h.socket(), time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	var b strings.Builder
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		b.WriteString(sc.Text())
		b.WriteByte('\n')
	}
	return b.String(), sc.Err()
}

// Addr is "127.0.0.1:port" of the i-th port.
func (h *HAProxy) Addr(i int) string { return fmt.Sprintf("127.0.0.1:%d", h.Ports[i]) }

// Output is what haproxy wrote so far (its log: one line per connection
// with option tcplog, and its warnings).
func (h *HAProxy) Output() string { return h.out.String() }

// Stop ends haproxy and waits for it (also done when the test ends).
func (h *HAProxy) Stop() {
	select {
	case <-h.exited:
		return
	default:
	}
	stopProcess(h.cmd.Process, syscall.SIGTERM, h.exited)
}
