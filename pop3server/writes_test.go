package pop3server_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// recordingListener hands out connections that record every write.
type recordingListener struct {
	net.Listener
	mu     sync.Mutex
	writes [][]byte
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, l: l}, nil
}

// take returns the writes recorded since the last call.
func (l *recordingListener) take() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.writes
	l.writes = nil
	return w
}

type recordingConn struct {
	net.Conn
	l *recordingListener
}

// Write records p before it goes on the wire: once the client has read
// a byte, the write that carried it is in the record. (Recorded after the
// write returned, a reply the client had already read could land in the
// next window the test looks at.) A failed write fails the test anyway.
func (c *recordingConn) Write(p []byte) (int, error) {
	c.l.mu.Lock()
	c.l.writes = append(c.l.writes, bytes.Clone(p))
	c.l.mu.Unlock()
	return c.Conn.Write(p)
}

// TestRetrWrites pins how a message goes out: a message of ordinary size
// in one write with its status line and the replies of the commands
// pipelined before it; a big one in writes of three quarters of the big
// buffer (192 KiB) each but the last, and at most all of it (256 KiB).
func TestRetrWrites(t *testing.T) {
	st, err := maildir.New(maildir.Options{Root: t.TempDir(), Logger: quietLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pop3server.New(pop3server.Options{Logger: quietLogger(t), Store: st, Authenticator: users, Limits: pop3server.Limits{AuthFailDelay: -1}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := &recordingListener{Listener: ln}
	go srv.Serve(rl)
	t.Cleanup(func() { srv.Close() })

	message := func(n int) string {
		var b strings.Builder
		b.WriteString("Subject: writes\n\n")
		for i := 0; b.Len() < n; i++ {
			if i%7 == 0 {
				b.WriteString(".")
			}
			b.WriteString("a line of the body, long enough to look like mail text\n")
		}
		return b.String()
	}
	for _, n := range []int{90 << 10, 2 << 20} {
		if _, err := st.Deliver(context.Background(), "user1", strings.NewReader(message(n))); err != nil {
			t.Fatal(err)
		}
	}

	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReaderSize(c, 64<<10)
	line := func() string {
		l, err := wire.ReadLine(br, 512)
		if err != nil {
			t.Fatal(err)
		}
		return string(l)
	}
	line()
	io.WriteString(c, "USER user1\r\nPASS pass1\r\n")
	line()
	if l := line(); !strings.HasPrefix(l, "+OK") {
		t.Fatalf("PASS: %q", l)
	}
	// What the client reads of a RETR, raw.
	retr := func(cmds string) []byte {
		var got bytes.Buffer
		io.WriteString(c, cmds)
		for {
			l, err := br.ReadSlice('\n')
			got.Write(l)
			if err != nil {
				t.Fatal(err)
			}
			if string(l) == ".\r\n" {
				return got.Bytes()
			}
		}
	}
	rl.take()

	got := retr("NOOP\r\nRETR 1\r\n")
	writes := rl.take()
	if len(writes) == 2 && string(writes[0]) == "+OK\r\n" {
		// The two commands reached the server in two reads: NOOP
		// was answered before RETR was seen.
		writes = writes[1:]
		got = got[len("+OK\r\n"):]
	}
	if len(writes) != 1 || !bytes.Equal(writes[0], got) {
		t.Fatalf("a 90 KiB message: %d writes of %v octets; want one of %d", len(writes), sizes(writes), len(got))
	}

	got = retr("RETR 2\r\n")
	writes = rl.take()
	if !bytes.Equal(bytes.Join(writes, nil), got) {
		t.Fatalf("a 2 MiB message: the writes are not what the client read")
	}
	for i, w := range writes {
		if len(w) > 256<<10 || i < len(writes)-1 && len(w) < 192<<10 {
			t.Fatalf("a 2 MiB message: writes of %v octets", sizes(writes))
		}
	}
	io.WriteString(c, "QUIT\r\n")
	line()
}

func sizes(writes [][]byte) []int {
	var s []int
	for _, w := range writes {
		s = append(s, len(w))
	}
	return s
}
