package pop3server

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// tcpPair returns both ends of a loopback TCP connection.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// connWriter queues replies and writes them in order; a loan sends
// straight through and gives the replies back untouched when restored;
// the first error of the connection stays.
func TestConnWriter(t *testing.T) {
	server, client := tcpPair(t)
	w := newConnWriter(server, 10*time.Second, 16)

	// Queued until Flush; what does not fit pushes the buffer out first.
	w.WriteString("+OK one\r\n")
	w.WriteString("+OK two\r\n")
	if w.sent != 16 || w.Buffered() != 2 { // the buffer filled, sent, then the rest queued
		t.Fatalf("buffered %d, sent %d", w.Buffered(), w.sent)
	}
	big := strings.Repeat("x", 40)
	w.Write([]byte(big))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "+OK one\r\n+OK two\r\n" + big
	if got := readN(t, client, len(want)); got != want {
		t.Fatalf("read %q, want %q", got, want)
	}

	// A loan: the replies go with the message; restored, they are
	// still queued, in order, and go out on the next Flush.
	w.WriteString("+OK\r\n")
	lent := w.lend()
	if string(lent) != "+OK\r\n" {
		t.Fatalf("lent %q", lent)
	}
	w.Write([]byte("straight"))
	if got := readN(t, client, len("straight")); got != "straight" {
		t.Fatalf("during a loan, read %q", got)
	}
	w.restore()
	w.WriteString("-ERR gone\r\n")
	w.Flush()
	if got := readN(t, client, len("+OK\r\n-ERR gone\r\n")); got != "+OK\r\n-ERR gone\r\n" {
		t.Fatalf("after restore, read %q", got)
	}
	w.WriteString("+OK\r\n")
	w.lend()
	w.settle()
	if w.Buffered() != 0 {
		t.Fatalf("after settle, %d octets queued", w.Buffered())
	}

	// The first error stays: later writes and flushes return it.
	client.Close()
	var err error
	for i := 0; i < 100 && err == nil; i++ {
		_, err = w.Write(bytes.Repeat([]byte("y"), 64<<10))
	}
	if err == nil || w.err != err {
		t.Fatalf("write to a closed peer: %v (kept %v)", err, w.err)
	}
	w.WriteString("+OK\r\n")
	if w.Flush() != err {
		t.Fatal("Flush after a failed write did not return the first error")
	}
}
