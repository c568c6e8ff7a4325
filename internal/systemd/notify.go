// Package systemd speaks the two small protocols by which systemd runs a
// service: sd_notify(3) status messages (READY, RELOADING, STOPPING and
// the watchdog) over the unix datagram socket named by $NOTIFY_SOCKET,
// and socket activation (sd_listen_fds(3): $LISTEN_PID, $LISTEN_FDS and
// $LISTEN_FDNAMES). Outside systemd both do nothing.
//
// Both are written from the documented protocol (systemd's sd_notify(3),
// sd_listen_fds(3) and systemd.service(5) man pages); no library of
// systemd's is linked.
package systemd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// sendTimeout bounds the wait for room in the service manager's socket.
const sendTimeout = 5 * time.Second

// Notifier sends status messages to the service manager. A nil Notifier
// (no $NOTIFY_SOCKET) sends nothing; all its methods are safe on nil.
type Notifier struct {
	addr     *net.UnixAddr
	watchdog time.Duration // 0: no watchdog
}

// NewNotifier returns the Notifier of $NOTIFY_SOCKET and the watchdog
// of $WATCHDOG_USEC (for this process, per $WATCHDOG_PID), or nil when
// the process was not started by systemd as a Type=notify service. It
// removes the variables from the environment so that child processes do
// not talk to the service manager in the service's name.
func NewNotifier() (*Notifier, error) {
	path := os.Getenv("NOTIFY_SOCKET")
	wusec, wpid := os.Getenv("WATCHDOG_USEC"), os.Getenv("WATCHDOG_PID")
	os.Unsetenv("NOTIFY_SOCKET")
	os.Unsetenv("WATCHDOG_USEC")
	os.Unsetenv("WATCHDOG_PID")
	if path == "" {
		return nil, nil
	}
	// "@name" is a socket in the abstract namespace: Go's net package
	// reads a leading '@' so.
	if path[0] != '/' && path[0] != '@' {
		return nil, fmt.Errorf("NOTIFY_SOCKET %q: not an absolute path or an abstract socket name", path)
	}
	n := &Notifier{addr: &net.UnixAddr{Name: path, Net: "unixgram"}}
	if wusec != "" && (wpid == "" || wpid == strconv.Itoa(os.Getpid())) {
		us, err := strconv.ParseUint(wusec, 10, 63)
		if err != nil || us == 0 {
			return nil, fmt.Errorf("WATCHDOG_USEC %q: not a positive number", wusec)
		}
		n.watchdog = time.Duration(us) * time.Microsecond
	}
	return n, nil
}

// Send sends one message of "KEY=value" lines.
func (n *Notifier) Send(lines ...string) error {
	if n == nil {
		return nil
	}
	for _, l := range lines {
		if !strings.Contains(l, "=") || strings.Contains(l, "\n") {
			return fmt.Errorf("sd_notify: %q is not one KEY=value line", l)
		}
	}
	c, err := net.DialUnix("unixgram", nil, n.addr)
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	// A service manager that does not read must not hang the service.
	c.SetWriteDeadline(time.Now().Add(sendTimeout))
	msg := strings.Join(lines, "\n")
	w, err := c.Write([]byte(msg))
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	if w != len(msg) {
		return errors.New("sd_notify: short write")
	}
	return nil
}

// Ready says the service is up (READY=1), with a STATUS= line when status
// is not empty. It also ends a reload.
func (n *Notifier) Ready(status string) error {
	if status == "" {
		return n.Send("READY=1")
	}
	return n.Send("READY=1", "STATUS="+status)
}

// Reloading says a reload started (RELOADING=1), stamped with
// CLOCK_MONOTONIC as Type=notify-reload requires; Ready ends it.
func (n *Notifier) Reloading() error {
	if n == nil {
		return nil
	}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	usec := ts.Nano() / 1000
	return n.Send("RELOADING=1", "MONOTONIC_USEC="+strconv.FormatInt(usec, 10))
}

// Stopping says the service is shutting down (STOPPING=1).
func (n *Notifier) Stopping() error { return n.Send("STOPPING=1") }

// WatchdogInterval is the watchdog timeout systemd set (WatchdogSec=),
// 0 for none.
func (n *Notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog
}

// Watchdog pings the watchdog every half of its timeout, as sd_watchdog_enabled(3)
// recommends, until ctx ends. alive, when not nil, is asked first: a
// false answer skips the ping, so that systemd restarts a hung service.
// It returns at once without a watchdog.
func (n *Notifier) Watchdog(ctx context.Context, alive func() bool) {
	iv := n.WatchdogInterval()
	if iv == 0 {
		return
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if alive == nil || alive() {
				n.Send("WATCHDOG=1")
			}
		}
	}
}
