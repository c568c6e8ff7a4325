package systemd

import (
	"context"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// listenNotify opens the service manager's end: a unix datagram socket at
// name (a path, or "@..." in the abstract namespace).
func listenNotify(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recv reads one datagram; the deadline only keeps a broken test from
// hanging.
func recv(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func monotonicUsec(t *testing.T) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return ts.Nano() / 1000
}

func TestNotify(t *testing.T) {
	for _, name := range []string{
		filepath.Join(t.TempDir(), "notify"),
		"@postie-test-" + rand.Text(), // abstract namespace
	} {
		t.Run(name[:1], func(t *testing.T) {
			srv := listenNotify(t, name)
			t.Setenv("NOTIFY_SOCKET", name)
			t.Setenv("WATCHDOG_USEC", "")
			n, err := NewNotifier()
			if err != nil || n == nil {
				t.Fatalf("NewNotifier() = %v, %v", n, err)
			}
			if v, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Errorf("NOTIFY_SOCKET=%q left in the environment", v)
			}
			if err := n.Ready("serving 2 listeners"); err != nil {
				t.Fatal(err)
			}
			if got, want := recv(t, srv), "READY=1\nSTATUS=serving 2 listeners"; got != want {
				t.Errorf("Ready sent %q, want %q", got, want)
			}
			before := monotonicUsec(t)
			if err := n.Reloading(); err != nil {
				t.Fatal(err)
			}
			after := monotonicUsec(t)
			m := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=(\d+)$`).FindStringSubmatch(recv(t, srv))
			if m == nil {
				t.Fatal("Reloading sent no RELOADING=1 with MONOTONIC_USEC")
			}
			if us, _ := strconv.ParseInt(m[1], 10, 64); us < before || us > after {
				t.Errorf("MONOTONIC_USEC=%d, not within [%d, %d]", us, before, after)
			}
			n.Ready("")
			if got := recv(t, srv); got != "READY=1" {
				t.Errorf("Ready(\"\") sent %q", got)
			}
			n.Stopping()
			if got := recv(t, srv); got != "STOPPING=1" {
				t.Errorf("Stopping sent %q", got)
			}
			if err := n.Send("READY=1\nMAINPID=1"); err == nil {
				t.Error("Send of a line with a newline: no error")
			}
			if err := n.Send("junk"); err == nil {
				t.Error("Send of a line without '=': no error")
			}
		})
	}
}

func TestWatchdog(t *testing.T) {
	name := filepath.Join(t.TempDir(), "notify")
	srv := listenNotify(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", strconv.Itoa(os.Getpid()))
	n, err := NewNotifier()
	if err != nil {
		t.Fatal(err)
	}
	if iv := n.WatchdogInterval(); iv != 20*time.Millisecond {
		t.Fatalf("WatchdogInterval() = %v, want 20ms", iv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	healthy := make(chan bool, 1)
	healthy <- false // the first tick: not alive, so no ping
	go func() {
		defer close(done)
		n.Watchdog(ctx, func() bool {
			select {
			case h := <-healthy:
				return h
			default:
				return true
			}
		})
	}()
	for range 2 {
		if got := recv(t, srv); got != "WATCHDOG=1" {
			t.Errorf("watchdog sent %q", got)
		}
	}
	cancel()
	<-done

	// A watchdog meant for another process (our parent) is not ours.
	t.Setenv("NOTIFY_SOCKET", name)
	t.Setenv("WATCHDOG_USEC", "20000")
	t.Setenv("WATCHDOG_PID", "1")
	other, err := NewNotifier()
	if err != nil || other.WatchdogInterval() != 0 {
		t.Errorf("watchdog of pid 1: %v, %v; want none", other.WatchdogInterval(), err)
	}
	other.Watchdog(context.Background(), nil) // returns at once
}

func TestNotifierOff(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	n, err := NewNotifier()
	if n != nil || err != nil {
		t.Fatalf("NewNotifier() without NOTIFY_SOCKET = %v, %v", n, err)
	}
	// A nil Notifier does nothing.
	if err := n.Ready("x"); err != nil {
		t.Error(err)
	}
	if err := n.Reloading(); err != nil {
		t.Error(err)
	}
	n.Watchdog(context.Background(), nil)

	for _, bad := range [][2]string{{"relative/path", ""}, {"/run/x", "abc"}, {"/run/x", "0"}, {"/run/x", "-5"}} {
		t.Setenv("NOTIFY_SOCKET", bad[0])
		t.Setenv("WATCHDOG_USEC", bad[1])
		t.Setenv("WATCHDOG_PID", "")
		if n, err := NewNotifier(); err == nil {
			t.Errorf("NOTIFY_SOCKET=%q WATCHDOG_USEC=%q: %+v, no error", bad[0], bad[1], n)
		}
	}
	// Nobody listening: an error, not a hang or a panic.
	t.Setenv("NOTIFY_SOCKET", filepath.Join(t.TempDir(), "none"))
	t.Setenv("WATCHDOG_USEC", "")
	n, err = NewNotifier()
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Ready(""); err == nil {
		t.Error("Ready with nobody listening: no error")
	}
}
