// Package testenv starts the real processes postie's tests talk to and
// stops them when the test ends: postie itself (Postie, the one home of
// the end-to-end tests: the binary built once per test binary, `postie
// serve` with a config in a temporary directory), and the peers (Dovecot,
// PostgreSQL, command-line POP3 clients). It decides whether a missing
// peer skips a test or fails it: under CI (CI=true) or with
// POSTIE_REQUIRE_PEERS=1 a missing peer is a failure, never a silent skip.
//
// Every process gets its own state in a temporary directory and listens
// on ports it chose itself, which the harness learns from it; nothing is
// left running after the test. The POP3 engine alone, in the test process,
// is package pop3test.
package testenv

import (
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Required reports whether missing peers must fail tests.
func Required() bool {
	return os.Getenv("CI") == "true" || os.Getenv("POSTIE_REQUIRE_PEERS") == "1"
}

// Missing skips the test, or fails it when peers are required.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if Required() {
		t.Fatalf("required peer missing: "+format, args...)
	}
	t.Skipf("peer missing: "+format, args...)
}

// LookPath finds a peer program or calls Missing.
func LookPath(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Missing(t, "%s not installed (./test.sh installs it)", name)
	}
	return p
}

// FreePort returns a loopback port that was free a moment ago, for peers
// whose configuration needs a port number rather than a listener.
//
// The port is taken below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), where a listener on port 0 would get
// one: every outgoing connection on the machine also takes its source
// port from that range, so a port found free there can be taken by any
// connect(2) before the peer binds it. Below the range only a listener
// can take it. Ports are tried at random, so that parallel tests and test
// binaries rarely try the same one.
func FreePort(t testing.TB) int {
	t.Helper()
	low := ephemeralLow()
	const first = 10000
	for range 200 {
		port := first + rand.IntN(low-first)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		ln.Close()
		return port
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// ephemeralLow is the first port of the kernel's ephemeral range, or
// Linux's default where it cannot be read (or leaves too little below).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				low = n
			}
		}
	}
	if low < 12000 {
		low = 32768
	}
	return low
}

// Itoa is strconv.Itoa, for test tables.
func Itoa(n int) string { return strconv.Itoa(n) }

// MountTmpfs mounts a tmpfs of size (e.g. "2m") on a fresh directory and
// unmounts it when the test ends. Without the privilege to mount (root) it
// calls Missing: the test skips, except under CI where it fails.
func MountTmpfs(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		Missing(t, "cannot mount a tmpfs (needs root): %v %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	return dir
}

// stopProcess asks p to end with sig and waits until exited is closed;
// after 10s it kills p and waits on.
func stopProcess(p *os.Process, sig os.Signal, exited <-chan struct{}) {
	p.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		p.Kill()
		<-exited
	}
}

// WireForm is what RFC 1939 says a client must get back from RETR for the
// stored message m, before dot-stuffing, computed independently of
// postie's own code: every bare LF becomes CRLF, and a message that does
// not end with a line end gets one (only the LF after a final CR).
func WireForm(m []byte) []byte {
	var out []byte
	for i, c := range m {
		if c == '\n' && (i == 0 || m[i-1] != '\r') {
			out = append(out, '\r')
		}
		out = append(out, c)
	}
	switch {
	case len(m) == 0 || m[len(m)-1] == '\n':
	case m[len(m)-1] == '\r':
		out = append(out, '\n')
	default:
		out = append(out, '\r', '\n')
	}
	return out
}
