//go:build linux

package maildir_test

// POP3 sessions over TCP against maildrops their users made hostile
// (issue 13, finding 1): a real server on 127.0.0.1:0 over a real Maildir,
// exact bytes.

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// popServer serves the Maildirs under a fresh root; alice logs in with
// password "pw". It returns the address and alice's Maildir, made.
func popServer(t *testing.T) (addr, dir string) {
	t.Helper()
	root := t.TempDir()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	st, err := maildir.New(maildir.Options{Root: root, Logger: logger, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pop3server.New(pop3server.Options{
		Logger: logger,
		Store:  st,
		Authenticator: pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
			return user, user == "alice" && pass == "pw", nil
		}),
		Limits: pop3server.Limits{AuthFailDelay: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	dir = filepath.Join(root, "alice")
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return ln.Addr().String(), dir
}

type popClient struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func popDial(t *testing.T, addr string) *popClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p := &popClient{t: t, c: c, br: bufio.NewReader(c)}
	p.expect("+OK postie POP3 server ready")
	return p
}

func (p *popClient) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.c, line+"\r\n"); err != nil {
		p.t.Fatalf("send %q: %v", line, err)
	}
}

func (p *popClient) line() string {
	p.t.Helper()
	l, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read: %v (after %q)", err, l)
	}
	return l
}

// expect reads one line, which must be want and CRLF.
func (p *popClient) expect(want string) {
	p.t.Helper()
	if got := p.line(); got != want+"\r\n" {
		p.t.Fatalf("got %q, want %q", got, want+"\r\n")
	}
}

func (p *popClient) cmd(line, want string) {
	p.t.Helper()
	p.send(line)
	p.expect(want)
}

// multi reads a multi-line response to its terminating ".".
func (p *popClient) multi() string {
	p.t.Helper()
	var b strings.Builder
	for {
		l := p.line()
		if l == ".\r\n" {
			return b.String()
		}
		b.WriteString(l)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestPOP3CurSymlinkNotServed: with cur/ a symbolic link to another
// directory (/etc, say, with postie running as root), the login is
// refused; no file of that directory is listed or served. postie at
// 05cd549 listed it and RETR served it.
func TestPOP3CurSymlinkNotServed(t *testing.T) {
	addr, dir := popServer(t)
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "shadow"), "root:SECRET-HASH:19000::::::\n")
	if err := os.Remove(filepath.Join(dir, "cur")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "cur")); err != nil {
		t.Fatal(err)
	}
	c := popDial(t, addr)
	c.cmd("USER alice", "+OK send PASS")
	c.send("PASS pw")
	if got := c.line(); got != "-ERR [SYS/TEMP] unable to open maildrop\r\n" {
		// Logged in: see what it serves.
		c.send("RETR 1")
		t.Errorf("login with cur/ a symbolic link: %q; RETR 1: %q", got, c.line())
	}
}

// TestPOP3FolderSwappedDuringSession: cur/ replaced by a symbolic link to
// another directory holding a file of the message's name, during the
// session: RETR serves the message, never that file, and DELE+QUIT
// removes the message, never that file. postie at 05cd549 served and
// removed the other file.
func TestPOP3FolderSwappedDuringSession(t *testing.T) {
	addr, dir := popServer(t)
	const name = "1700000000.M1P1.host,S=6,W=7:2,S"
	writeFile(t, filepath.Join(dir, "cur", name), "hello\n")
	c := popDial(t, addr)
	c.cmd("USER alice", "+OK send PASS")
	c.cmd("PASS pw", "+OK logged in, 1 messages (7 octets)")

	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, name), "OTHER\n") // same size
	if err := os.Rename(filepath.Join(dir, "cur"), filepath.Join(dir, "cur.real")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "cur")); err != nil {
		t.Fatal(err)
	}
	c.send("RETR 1")
	if got := c.line(); got == "+OK 7 octets\r\n" {
		if body := c.multi(); body != "hello\r\n" {
			t.Errorf("RETR 1 served %q, want the message (hello)", body)
		}
	} else if got != "-ERR [SYS/TEMP] unable to read message\r\n" {
		t.Errorf("RETR 1: %q", got)
	}
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.send("QUIT")
	got := c.line()
	if b, err := os.ReadFile(filepath.Join(outside, name)); err != nil || string(b) != "OTHER\n" {
		t.Errorf("QUIT (%q) removed or changed the file outside the maildrop: %q, %v", got, b, err)
	}
	// What the session opened is what it removed: the real message.
	if got == "+OK bye, 1 messages deleted\r\n" {
		if _, err := os.Lstat(filepath.Join(dir, "cur.real", name)); !os.IsNotExist(err) {
			t.Errorf("QUIT answered %q but the message is still there: %v", got, err)
		}
	}
}

// fifoWatch plays the other end of the FIFO at path until stop is closed:
// it opens it for writing whenever a reader has it open, and writes one
// octet. It reports whether a reader ever read one: a session that opened
// the FIFO without O_NONBLOCK, and then read it, waits there for as long
// as no writer comes (in real life, for ever, with the maildrop locked).
// No clock bounds anything: a session that does not wait answers, and
// stop is closed; one that waits is released by the octet and the close.
func fifoWatch(path string, stop <-chan struct{}) (read <-chan bool) {
	res := make(chan bool, 1)
	go func() {
		consumed := false
		defer func() { res <- consumed }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
			if err != nil {
				// ENXIO: no reader. Look again soon.
				time.Sleep(time.Millisecond)
				continue
			}
			if _, err := w.Write([]byte{'x'}); err == nil {
				for !consumed {
					// TIOCINQ is FIONREAD: the octets not yet read.
					n, err := unix.IoctlGetInt(int(w.Fd()), unix.TIOCINQ)
					if err != nil {
						break
					}
					if n == 0 {
						consumed = true
						break
					}
					select {
					case <-stop:
						w.Close()
						return
					default:
						time.Sleep(time.Millisecond)
					}
				}
			}
			w.Close()
		}
	}()
	return res
}

// TestPOP3FIFOs: a FIFO in place of each of postie's files (postie-sizes,
// postie-update, postie-index) never makes a session wait: it logs in,
// and its QUIT releases the maildrop for the next one. In place of the
// lock file, the login is refused, at once. A FIFO named as a message is
// not listed. postie at 05cd549 waited on postie-sizes, postie-update and
// postie-index, holding the lock.
func TestPOP3FIFOs(t *testing.T) {
	for _, tt := range []struct{ file, login string }{
		{"postie-sizes", "+OK logged in, 1 messages (3 octets)"},
		{"postie-update", "+OK logged in, 1 messages (3 octets)"},
		{"postie-index", "+OK logged in, 1 messages (3 octets)"},
		{"postie.lock", "-ERR [SYS/TEMP] unable to open maildrop"},
		{"new/1700000001.M2P1.host", "+OK logged in, 1 messages (3 octets)"},
	} {
		t.Run(strings.ReplaceAll(tt.file, "/", "_"), func(t *testing.T) {
			addr, dir := popServer(t)
			// No W=: postie-sizes is needed.
			writeFile(t, filepath.Join(dir, "new", "1700000000.M1P1.host"), "x\n")
			fifo := filepath.Join(dir, tt.file)
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			stop := make(chan struct{})
			read := fifoWatch(fifo, stop)
			c := popDial(t, addr)
			c.cmd("USER alice", "+OK send PASS")
			c.send("PASS pw")
			got := c.line()
			close(stop)
			if <-read {
				t.Errorf("the login opened %s and waited on it for a writer", tt.file)
			}
			if got != tt.login+"\r\n" {
				t.Fatalf("login: %q, want %q", got, tt.login+"\r\n")
			}
			if strings.HasPrefix(got, "-ERR") {
				return
			}
			c.send("LIST")
			if l := c.line(); l != "+OK 1 messages (3 octets)\r\n" {
				t.Errorf("LIST: %q", l)
			}
			if body := c.multi(); body != "1 3\r\n" {
				t.Errorf("LIST: %q", body)
			}
			c.cmd("QUIT", "+OK bye, 0 messages deleted")
			// The lock went with the session.
			c = popDial(t, addr)
			c.cmd("USER alice", "+OK send PASS")
			c.cmd("PASS pw", "+OK logged in, 1 messages (3 octets)")
			c.cmd("QUIT", "+OK bye, 0 messages deleted")
		})
	}
}
