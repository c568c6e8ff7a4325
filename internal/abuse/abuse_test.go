package abuse

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSlowloris: clients that send a partial line one byte a second hold
// neither connections nor memory: the pre-login timeout closes them (the
// deadline is per line, not per byte), the per-address cap refuses more
// of them, and meanwhile a normal client logs in and retrieves its mail.
// Clients that send a whole command every second but never log in are
// closed by login_timeout.
func TestSlowloris(t *testing.T) {
	const perIP, addrs = 20, 5
	s := startServer(t, setup{pop3: map[string]string{
		"auth_timeout":           `"3s"`,
		"login_timeout":          `"5s"`,
		"max_connections_per_ip": fmt.Sprint(perIP),
	}})
	s.deliver(t, "alice", smallMessage)
	var keepalive []*conn
	for range perIP {
		keepalive = append(keepalive, dial(t, "127.0.2.100", s.POP3))
	}
	var slow []*conn
	for i := range perIP * addrs {
		slow = append(slow, dial(t, fmt.Sprintf("127.0.2.%d", 1+i%addrs), s.POP3))
	}
	// One more from a full address is refused at once.
	c, err := dialFrom(t, "127.0.2.1", s.POP3)
	if err != nil {
		t.Fatal(err)
	}
	newConn(t, c).expectEOF("-ERR [SYS/TEMP] too many connections from your address\r\n", 10*time.Second)

	// Drip one byte a second to every slow client, never a line end.
	stop := make(chan struct{})
	var dripped atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			for _, p := range slow {
				if _, err := p.c.Write([]byte("U")); err == nil {
					dripped.Add(1)
				}
			}
			for _, p := range keepalive {
				p.c.Write([]byte("CAPA\r\n"))
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	// A normal client is served meanwhile.
	start := time.Now()
	p := dial(t, "", s.POP3)
	p.login("alice", 1)
	p.retr(s, "alice", 1, "small-marker")
	p.cmd("QUIT", "+OK bye, 0 messages deleted")
	t.Logf("normal login and RETR during the slowloris: %v", time.Since(start).Round(time.Millisecond))

	// Every slow client is logged out by the pre-login timeout although
	// it kept sending.
	for _, sp := range slow {
		sp.expectEOF("-ERR autologout: idle for too long\r\n", 10*time.Second)
	}
	// The busy ones by login_timeout.
	for _, kp := range keepalive {
		kp.c.SetReadDeadline(time.Now().Add(15 * time.Second))
		out, err := readAll(kp.br)
		if err != nil {
			t.Fatalf("client sending CAPA every second not closed: %v", err)
		}
		if n := strings.Count(string(out), "+OK capability list follows\r\n"); n < 3 || !strings.HasSuffix(string(out), ".\r\n-ERR autologout: no login in time\r\n") {
			t.Fatalf("client sending CAPA every second: %d CAPA replies, then %q", n, out[max(0, len(out)-60):])
		}
	}
	t.Logf("%d clients sending CAPA every second closed by login_timeout after %v", len(keepalive), time.Since(start).Round(time.Millisecond))
	close(stop)
	wg.Wait()
	t.Logf("%d slow clients dripped %d bytes before the server closed them", len(slow), dripped.Load())
	if dripped.Load() < int64(2*len(slow)) {
		t.Errorf("only %d bytes dripped: the test did not keep the clients busy", dripped.Load())
	}
	// The address is free again.
	dial(t, "127.0.2.1", s.POP3).cmd("QUIT", "+OK bye")
	s.checkMemory(t, "slowloris", 256<<20)
}

// TestPasswordFlood: one address guesses alice's password on many
// connections at once while another address logs in as alice again and
// again. The guesser is slowed and then banned; the other address is
// never refused.
func TestPasswordFlood(t *testing.T) {
	// At most auth_checks_per_ip (2) guesses are answered per failure
	// delay (up to 200 ms): the ban must come within the short run.
	const banAfter = 10
	s := startServer(t, setup{pop3: map[string]string{
		"trusted_networks":    `["192.0.2.0/24"]`, // loopback gets no favours
		"allow_cleartext":     "true",
		"auth_fail_delay":     `"20ms"`,
		"auth_fail_max_delay": `"200ms"`,
		"ban_after":           fmt.Sprint(banAfter),
		"ban_duration":        `"1m"`,
	}})
	s.deliver(t, "alice", smallMessage)
	dur := 3 * time.Second
	if long() {
		dur = 30 * time.Second
	}
	end := time.Now().Add(dur)
	var failed, banned, busy, guesses atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) {
				c, err := dialFrom(t, "127.0.3.1", s.POP3)
				if err != nil {
					continue
				}
				p := &conn{t: t, c: c, br: bufio.NewReader(c)}
				c.SetDeadline(time.Now().Add(30 * time.Second))
				switch g, _ := p.line(); g {
				case greeting:
				case "-ERR [SYS/TEMP] too many failed logins from your address, try again later":
					banned.Add(1)
					c.Close()
					time.Sleep(20 * time.Millisecond)
					continue
				default:
					c.Close()
					continue
				}
				for i := 0; i < 3; i++ {
					c.Write([]byte("USER alice\r\nPASS guess" + fmt.Sprint(i) + "\r\n"))
					p.line()
					l, err := p.line()
					if err != nil {
						break
					}
					guesses.Add(1)
					switch l {
					case "-ERR [AUTH] invalid user name or password":
						failed.Add(1)
					case "-ERR [SYS/TEMP] too many logins in progress from your address, try again later":
						busy.Add(1)
					}
				}
				c.Close()
			}
		}()
	}
	var logins int
	var worst time.Duration
	for time.Now().Before(end) {
		start := time.Now()
		p := dial(t, "127.0.3.2", s.POP3)
		p.login("alice", 1)
		p.cmd("QUIT", "+OK bye, 0 messages deleted")
		p.c.Close()
		worst = max(worst, time.Since(start))
		logins++
	}
	wg.Wait()
	t.Logf("flood: %d guesses, %d failed replies, %d refused unchecked (checks in flight), %d connections refused by the ban; other address: %d logins, slowest %v",
		guesses.Load(), failed.Load(), busy.Load(), banned.Load(), logins, worst.Round(time.Millisecond))
	if failed.Load() == 0 || banned.Load() == 0 || busy.Load() == 0 {
		t.Errorf("the flood was not answered, bounded and banned (failed %d, refused unchecked %d, banned %d)", failed.Load(), busy.Load(), banned.Load())
	}
	// The ban ends the guessing: after ban_after failures only the
	// connections already open (16, three guesses each) may go on.
	if limit := int64(banAfter + 16*3); failed.Load() > limit {
		t.Errorf("%d guesses answered, more than ban_after allows (%d)", failed.Load(), limit)
	}
	if logins < 3 {
		t.Errorf("only %d logins from the other address during the flood", logins)
	}
	if s.messages(t, "alice") != 1 {
		t.Error("alice's message is gone")
	}
	s.checkMemory(t, "password flood", 256<<20)
}

// TestHugeLinesAndGarbage: lines of megabytes before and after login and
// in an AUTH continuation, NUL bytes and binary garbage get -ERR; the
// session survives or ends cleanly; memory stays bounded.
func TestHugeLinesAndGarbage(t *testing.T) {
	s := startServer(t, setup{pop3: map[string]string{"auth_timeout": `"3s"`}})
	s.deliver(t, "alice", smallMessage)
	huge := strings.Repeat("A", 4<<20)

	p := dial(t, "", s.POP3)
	p.cmd(huge, "-ERR line too long")
	p.cmd("\x00\x00\x00", "-ERR unknown command")
	p.cmd("USER \x00alice", "+OK send PASS") // the user simply does not exist
	p.cmd("PASS x", "-ERR [AUTH] invalid user name or password")
	p.cmd("AUTH PLAIN", "+ ")
	p.cmd(huge, "-ERR authentication response too long")
	p.cmd("AUTH PLAIN "+huge, "-ERR line too long")
	p.login("alice", 1)
	p.cmd(huge, "-ERR line too long")
	garbage := make([]byte, 1<<20)
	for i := range garbage {
		garbage[i] = byte(rand.IntN(256))
		if garbage[i] == '\n' {
			garbage[i] = 0
		}
	}
	p.cmd(string(garbage), "-ERR line too long")
	p.cmd("STAT\x00", "-ERR unknown command")
	p.retr(s, "alice", 1, "small-marker")
	p.cmd("QUIT", "+OK bye, 0 messages deleted")
	t.Logf("after 4 MiB lines (before and after login, AUTH): peak %.1f MiB", float64(s.peakMemory(t))/(1<<20))

	// Binary garbage lines get -ERR, and the session lives on until the
	// bad-command limit (10 in a row before login) closes it cleanly.
	p = dial(t, "", s.POP3)
	for i := range 13 {
		line := make([]byte, 200)
		for j := range line {
			if line[j] = byte(rand.IntN(256)); line[j] == '\n' || line[j] == '\r' {
				line[j] = 0
			}
		}
		line[0] = byte(i % 9) // a control character (not CR or LF): never a keyword
		if i == 3 {
			p.send("CAPA\r\n") // still served (and the count starts again)
			p.expect("+OK capability list follows")
			p.multi()
		}
		p.send(string(line) + "\r\n")
		if l, err := p.line(); err != nil || l != "-ERR unknown command" {
			t.Fatalf("garbage line %d %q: reply %q, %v", i, line, l, err)
		}
	}
	p.expectEOF("-ERR too many bad commands, closing connection\r\n", 10*time.Second)

	// Megabytes of random bytes as fast as they go: the server answers
	// or drops the connection, never anything else, and lives on. (What
	// it answered may be lost to the reset when it closes on unread
	// input.)
	// The writer gets its own connection, not the variable p: p is
	// dialled again below, and a writer that had not started yet (a
	// loaded machine) sent its junk to the next session.
	p = dial(t, "", s.POP3)
	junkConn, junkDone := p.c, make(chan struct{})
	go func() {
		defer close(junkDone)
		junk := make([]byte, 16<<20)
		for i := range junk {
			junk[i] = byte(rand.IntN(256))
		}
		junkConn.Write(junk)
	}()
	p.c.SetReadDeadline(time.Now().Add(30 * time.Second))
	out, err := readAll(p.br)
	junkConn.Close() // ends a write the server's close has not failed yet
	<-junkDone
	if err != nil {
		t.Fatalf("garbage session did not end: %v", err)
	}
	for _, l := range strings.SplitAfter(string(out), "\r\n") {
		if l != "" && !strings.HasPrefix(l, "-ERR ") {
			t.Fatalf("reply to garbage %q", l)
		}
	}
	s.alive(t)
	t.Logf("after 16 MiB of random bytes: peak %.1f MiB", float64(s.peakMemory(t))/(1<<20))

	// A line that never ends, sent as fast as the server takes it, is
	// cut off by the pre-login timeout: bytes do not extend it.
	p = dial(t, "", s.POP3)
	var sent atomic.Int64
	go func() {
		chunk := bytes.Repeat([]byte("B"), 64<<10)
		for {
			n, err := p.c.Write(chunk)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}()
	start := time.Now()
	p.expectEOF("-ERR autologout: idle for too long\r\n", 20*time.Second)
	t.Logf("endless line: %d MiB taken in %v, then the session was closed", sent.Load()>>20, time.Since(start).Round(time.Millisecond))
	s.checkMemory(t, "huge lines and garbage", 256<<20)
}

// TestUnreadRETR: a client that asks for a big message and never reads it
// costs at most write_timeout; the connection is then closed, the
// maildrop lock released, and nothing deleted (the session did not QUIT).
func TestUnreadRETR(t *testing.T) {
	s := startServer(t, setup{pop3: map[string]string{"write_timeout": `"2s"`}})
	big := "Subject: big\n\nbig-marker\n" + strings.Repeat(strings.Repeat("x", 76)+"\n", 40<<20/77)
	s.deliver(t, "alice", big)
	s.deliver(t, "alice", smallMessage)

	c, err := dialFrom(t, "", s.POP3)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4096)
	p := newConn(t, c)
	p.expect(greeting)
	p.login("alice", 2)
	p.send("DELE 2\r\nRETR 1\r\n")
	p.expect("+OK message 2 deleted")
	start := time.Now()
	// Do not read. The server must give up and release alice's maildrop.
	for {
		q := dial(t, "", s.POP3)
		q.cmd("USER alice", "+OK send PASS")
		q.send("PASS " + passwords["alice"] + "\r\n")
		l, _ := q.line()
		if strings.HasPrefix(l, "+OK logged in, 2 messages (") {
			q.retr(s, "alice", 2, "small-marker")
			q.cmd("QUIT", "+OK bye, 0 messages deleted")
			break
		}
		if l != "-ERR [IN-USE] maildrop already locked by another session" {
			t.Fatalf("login while the reader stalls: %q", l)
		}
		q.c.Close()
		if time.Since(start) > 30*time.Second {
			t.Fatal("maildrop still locked 30s after the client stopped reading")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("maildrop free %v after a client stopped reading a %d MiB RETR (write_timeout 2s)", time.Since(start).Round(time.Millisecond), len(big)>>20)
	s.WaitLog(t, `msg="session end" session=\S+ remote=\S+ user=alice .*reason="write failed"`)
	if n := s.messages(t, "alice"); n != 2 {
		t.Fatalf("%d messages left, want 2", n)
	}

	// The same with replies instead of a message: a client that sends
	// NOOPs without end and never reads a reply. Once a write has timed
	// out the session must end, however much input keeps coming. The
	// stream is cut so that no read of the server's 1 KiB buffer ends
	// on a line end ("NO" first, then 1,020-octet pieces of "OP\r\nNO":
	// every read stops 2 or 4 octets into a 6-octet line), so a server
	// that only looked at its writer when its input ran dry would go on
	// answering into a failed writer, holding the lock, for as long as
	// the client kept sending (postie did until 2026-12-04).
	c, err = dialFrom(t, "", s.POP3)
	if err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).SetReadBuffer(4096)
	p = newConn(t, c)
	p.expect(greeting)
	p.login("alice", 2)
	stop := make(chan struct{})
	go func() {
		piece := []byte(strings.Repeat("OP\r\nNO", 170))
		buf := []byte("NO")
		for {
			select {
			case <-stop:
				return
			default:
			}
			c.SetWriteDeadline(time.Now().Add(time.Second))
			k, err := c.Write(buf)
			if buf = buf[k:]; len(buf) == 0 {
				buf = piece
			}
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return // the server closed the connection
			}
		}
	}()
	defer close(stop)
	start = time.Now()
	for {
		q := dial(t, "", s.POP3)
		q.cmd("USER alice", "+OK send PASS")
		q.send("PASS " + passwords["alice"] + "\r\n")
		l, _ := q.line()
		q.c.Close()
		if strings.HasPrefix(l, "+OK logged in, 2 messages (") {
			break
		}
		if l != "-ERR [IN-USE] maildrop already locked by another session" {
			t.Fatalf("login while the reader stalls: %q", l)
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("maildrop still locked 30s after a client stopped reading its replies")
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("maildrop free %v after a client stopped reading the replies of the commands it kept sending", time.Since(start).Round(time.Millisecond))
	if n := s.messages(t, "alice"); n != 2 {
		t.Fatalf("%d messages left, want 2", n)
	}
	s.checkMemory(t, "unread RETR of 40 MiB", 256<<20)
}

// TestTLSFloods: full handshakes by the hundred, half-open handshakes,
// plaintext and garbage on the implicit-TLS port, silent clients over the
// per-address cap there, and STLS followed by half a handshake or garbage,
// while a normal TLS client logs in and retrieves its mail.
func TestTLSFloods(t *testing.T) {
	const perIP = 30
	s := startServer(t, setup{pop3: map[string]string{
		"auth_timeout":           `"3s"`,
		"max_connections_per_ip": fmt.Sprint(perIP),
	}})
	s.deliver(t, "alice", smallMessage)
	hello := clientHello(t)

	// Half-open: part of a ClientHello, then nothing.
	var half []*conn
	for range perIP {
		c, err := dialFrom(t, "127.0.4.1", s.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		p := newConn(t, c)
		p.send(string(hello[:len(hello)/2]))
		half = append(half, p)
	}
	// Over the cap from that address: silent clients, closed anyway.
	var over []*conn
	for range 10 {
		c, err := dialFrom(t, "127.0.4.1", s.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		over = append(over, newConn(t, c))
	}
	// Plaintext and garbage on the TLS port.
	var junk []*conn
	for i := range 20 {
		c, err := dialFrom(t, "127.0.4.2", s.POP3S)
		if err != nil {
			t.Fatal(err)
		}
		p := newConn(t, c)
		if i%2 == 0 {
			p.send("USER alice\r\nPASS alice-pw\r\n")
		} else {
			b := make([]byte, 4096)
			for j := range b {
				b[j] = byte(rand.IntN(256))
			}
			p.send(string(b))
		}
		junk = append(junk, p)
	}
	// STLS on the plain port, then half a ClientHello or garbage.
	var stls []*conn
	for i := range 10 {
		p := dial(t, "127.0.4.3", s.POP3)
		p.cmd("STLS", "+OK begin TLS negotiation")
		if i%2 == 0 {
			p.send(string(hello[:len(hello)/2]))
		} else {
			p.send("USER alice\r\n\x00\xff garbage\r\n")
		}
		stls = append(stls, p)
	}
	// Handshake flood: many full handshakes from several addresses.
	n := 300
	if long() {
		n = 3000
	}
	var ok, bad atomic.Int64
	var wg sync.WaitGroup
	var next atomic.Int64
	start := time.Now()
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := dialFrom(t, source(5, i%20), s.POP3S)
				if err != nil {
					bad.Add(1)
					continue
				}
				tc := tls.Client(c, clientTLS())
				tc.SetDeadline(time.Now().Add(30 * time.Second))
				buf := make([]byte, len(greeting)+2)
				if _, err := io.ReadFull(tc, buf); err == nil && string(buf) == greeting+"\r\n" {
					ok.Add(1)
				} else {
					bad.Add(1)
				}
				tc.Close()
			}
		}()
	}
	// Meanwhile a normal TLS client logs in.
	p := dialTLS(t, "", s.POP3S)
	p.login("alice", 1)
	p.retr(s, "alice", 1, "small-marker")
	p.cmd("QUIT", "+OK bye, 0 messages deleted")
	wg.Wait()
	t.Logf("%d full handshakes in %v (%d failed)", ok.Load(), time.Since(start).Round(time.Millisecond), bad.Load())
	if ok.Load() != int64(n) {
		t.Errorf("%d of %d handshakes failed", bad.Load(), n)
	}
	// Garbage gets at most a TLS alert, never a POP3 reply.
	for _, jp := range junk {
		jp.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := readAll(jp.br)
		if err != nil {
			t.Fatalf("garbage on the TLS port: connection not closed: %v", err)
		}
		if bytes.Contains(out, []byte("+OK")) || bytes.Contains(out, []byte("-ERR")) {
			t.Fatalf("garbage on the TLS port got %q", out)
		}
	}
	for _, hp := range half {
		hp.expectEOF("", 10*time.Second)
	}
	for _, sp := range stls {
		sp.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := readAll(sp.br)
		if err != nil {
			t.Fatalf("STLS, then half a handshake or garbage: connection not closed: %v", err)
		}
		if bytes.Contains(out, []byte("+OK")) || bytes.Contains(out, []byte("-ERR")) {
			t.Fatalf("STLS, then half a handshake or garbage: got %q", out)
		}
	}
	for _, op := range over {
		op.expectEOF("", 10*time.Second)
	}
	// The address is served again.
	dialTLS(t, "127.0.4.1", s.POP3S).cmd("QUIT", "+OK bye")
	if !strings.Contains(s.Log(), `msg="tls handshake failed"`) {
		t.Error("failed handshakes are not logged")
	}
	s.checkMemory(t, "TLS floods", 256<<20)
}

// clientHello returns the first flight of a TLS client.
func clientHello(t *testing.T) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		tc := tls.Client(c, clientTLS())
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		tc.Handshake()
		tc.Close()
	}()
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil || n < 50 || buf[0] != 0x16 {
		t.Fatalf("no ClientHello: %d bytes, %v", n, err)
	}
	return buf[:n]
}
