package pop3server_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// A client that keeps sending commands but never reads a reply holds its
// maildrop only until a write to it times out, however much input keeps
// coming. The input is cut so that no read of the server's 1 KiB line
// buffer ends on a line end — "UID", then "L\r\nUID" one at a time (each
// read stops 3 octets into a 6-octet line; a read of queued input,
// 1,024 octets from the last line end, stops 4 octets into one), so a
// server that looked at its failed writer only when its input ran dry
// would go on reading and answering UIDL into it for as long as the
// client sent (postie did until 2026-12-04).
func TestUnreadRepliesEndSession(t *testing.T) {
	root := t.TempDir()
	cur := filepath.Join(root, "user1", "cur")
	for _, d := range []string{cur, filepath.Join(root, "user1", "new"), filepath.Join(root, "user1", "tmp")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// 400 messages: each UIDL answer is about 20 KB.
	for i := range 400 {
		name := fmt.Sprintf("1700000000.M%dP1.test", i)
		if err := os.WriteFile(filepath.Join(cur, name), []byte("Subject: x\n\nx\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	st, err := maildir.New(maildir.Options{Root: root, Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuf
	s := startPostie(t, func(o *pop3server.Options) {
		o.Store = st
		o.Limits.WriteTimeout = time.Second
		o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})

	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	cl := &client{t: t, c: c, br: bufio.NewReader(c)}
	cl.expect("+OK postie POP3 server ready")
	cl.login("user1", "pass1")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		piece := []byte("L\r\nUID")
		if _, err := c.Write([]byte("UID")); err != nil {
			return
		}
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if _, err := c.Write(piece); err != nil {
				return // the server closed the connection
			}
		}
	}()
	defer func() { close(stop); <-done }()

	start := time.Now()
	for {
		q := dial(t, s.addr)
		q.cmd("USER user1", "+OK send PASS")
		q.send("PASS pass1")
		l, _ := q.line()
		q.c.Close()
		if strings.HasPrefix(l, "+OK logged in, 400 messages") {
			break
		}
		if l != "-ERR [IN-USE] maildrop already locked by another session" {
			t.Fatalf("login while the other session's client does not read: %q", l)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("maildrop still locked 20 s after its client stopped reading (write timeout 1 s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("maildrop free after %v", time.Since(start).Round(time.Millisecond))
	if !regexp.MustCompile(`msg="session end" .*user=user1 .*reason="write failed"`).MatchString(logs.String()) {
		t.Errorf("no session end of user1 with reason \"write failed\" logged:\n%s", logs.String())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Error("the server did not close the connection of the client that does not read")
	}
}
