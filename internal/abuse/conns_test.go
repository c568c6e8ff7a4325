package abuse

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// source returns the i-th of n loopback source addresses 127.0.<block>.x,
// so that many connections do not all share one address and its
// ephemeral ports.
func source(block, i int) string {
	return fmt.Sprintf("127.0.%d.%d", block, 1+i%250)
}

// openMany opens n connections to addr, each from source(block, i), with
// a few dialing goroutines (not one per connection: under -race the test
// process may not hold 10,000 goroutines), and reads each greeting. It
// returns the connections, left open.
func openMany(t *testing.T, addr string, block, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, len(greeting)+2)
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dialFrom(t, source(block, i), addr)
				if err != nil {
					errs <- fmt.Errorf("connection %d: %v", i, err)
					return
				}
				conns[i] = c
				c.SetReadDeadline(time.Now().Add(30 * time.Second))
				if _, err := readFull(c, buf); err != nil || string(buf) != greeting+"\r\n" {
					errs <- fmt.Errorf("connection %d: greeting %q, %v", i, buf, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return conns
}

func readFull(c net.Conn, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// TestConnectionFlood holds the connection cap: with max_connections
// sessions open (1,000; 10,000 with POSTIE_LONG=1), every further
// connection, plain or TLS, gets "-ERR [SYS/TEMP] too many connections"
// and is closed, and the server's memory stays bounded. Once some
// clients leave, a normal client logs in and retrieves its mail.
func TestConnectionFlood(t *testing.T) {
	n, limit := 1000, int64(512<<20)
	if long() {
		n, limit = 10000, 2<<30
	}
	s := startServer(t, setup{
		pop3: map[string]string{
			"max_connections":        strconv.Itoa(n),
			"max_connections_per_ip": strconv.Itoa(n),
		},
	})
	s.deliver(t, "alice", smallMessage)

	start := time.Now()
	conns := openMany(t, s.POP3, 1, n)
	t.Logf("%d connections open in %v", n, time.Since(start).Round(time.Millisecond))

	// Excess clients on the TLS port that never send a ClientHello must
	// be closed too, not left holding a descriptor (they were, before
	// the refusal got a read deadline).
	var silent []*conn
	for i := range 5 {
		c, err := dialFrom(t, source(9, 200+i), s.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		silent = append(silent, newConn(t, c))
	}
	const refused = "-ERR [SYS/TEMP] too many connections, try again later\r\n"
	for i := range 20 {
		c, err := dialFrom(t, source(9, i), s.POP3)
		if err != nil {
			t.Fatal(err)
		}
		newConn(t, c).expectEOF(refused, 10*time.Second)
	}
	// Over TLS the refusal comes after the handshake.
	for i := range 5 {
		c, err := dialFrom(t, source(9, 100+i), s.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		newConn(t, tls.Client(c, clientTLS())).expectEOF(refused, 10*time.Second)
	}
	for _, p := range silent {
		p.expectEOF("", 15*time.Second)
	}
	s.checkMemory(t, fmt.Sprintf("%d connections", n), limit)

	// Some clients leave; a normal one gets in.
	for _, c := range conns[:10] {
		c.Close()
	}
	var p *conn
	for deadline := time.Now().Add(20 * time.Second); ; {
		c, err := dialFrom(t, "", s.POP3)
		if err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(c)
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, _ := br.ReadString('\n')
		if l == greeting+"\r\n" {
			p = &conn{t: t, c: c, br: br}
			t.Cleanup(func() { c.Close() })
			break
		}
		c.Close()
		if l != refused || time.Now().After(deadline) {
			t.Fatalf("after clients left: %q", l)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.login("alice", 1)
	p.retr(s, "alice", 1, "small-marker")
	p.cmd("QUIT", "+OK bye, 0 messages deleted")
	// 25 refusals, logged at most once a second.
	if got := strings.Count(s.Log(), `msg="connection refused"`); got < 1 || got > 15 {
		t.Errorf("%d refusal lines logged for 25 refusals", got)
	}
}
