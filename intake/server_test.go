package intake

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// lhlo is the LHLO exchange of a server with MaxMessageSize 1 MiB.
const lhlo = `C: LHLO mx.example.org
S: 250-Hello mx.example.org
S: 250-PIPELINING
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-SIZE 1048576
S: 250 LIMITS RCPTMAX=1000`

// receivedRE finds the transaction id in a stored message.
var receivedRE = regexp.MustCompile(`with (?:LMTP|ESMTPS?) id ([0-9A-F]{16})`)

func idOf(t *testing.T, msg string) string {
	t.Helper()
	m := receivedRE.FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("no Received id in %q", msg)
	}
	return m[1]
}

// TestLMTPTranscript: one transaction with every per-recipient outcome,
// exact replies (RFC 2033 §4.2: one reply per accepted RCPT after DATA, in
// order), then the exact bytes stored.
func TestLMTPTranscript(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.MaxMessageSize = 1 << 20
		o.QuotaOverrides = map[string]Quota{
			"bob":   {Messages: 1}, // full before the transaction
			"carol": {Bytes: 300},  // fits the RCPT check, not the message
		}
	})
	alice, _ := e.d.Resolve("bob")
	if _, err := e.d.Deliver(t.Context(), Envelope{Proto: "local"}, alice, Message{Body: strings.NewReader("x\n"), Size: 2, EOL: "\n"}); err != nil {
		t.Fatal(err)
	}
	_, addr := e.serve(t, ServerOptions{LMTP: true})
	c := dial(t, "tcp", addr)
	c.script(`S: 220 mail.example.org LMTP Service Ready
` + lhlo + `
C: MAIL FROM:<sender@example.net> SIZE=250
S: 250 2.0.0 Roger, accepting mail from <sender@example.net>
C: RCPT TO:<nobody@example.org>
S: 550 5.1.1 No such user here
C: RCPT TO:<bob@example.org>
S: 552 5.2.2 Mailbox full
C: RCPT TO:<alice@example.com>
S: 550 5.1.2 Not a local domain
C: RCPT TO:<carol@example.org>
S: 250 2.0.0 I'll make sure <carol@example.org> gets this
C: RCPT TO:<Alice+Lists@EXAMPLE.org>
S: 250 2.0.0 I'll make sure <Alice+Lists@EXAMPLE.org> gets this
C: RCPT TO:<alice@example.net>
S: 250 2.0.0 I'll make sure <alice@example.net> gets this
C: DATA
S: 354 Go ahead. End your data with <CR><LF>.<CR><LF>
C: From: sender@example.net
C: Subject: mixed
C:
C: ..leading dot, stuffed
C: ` + strings.Repeat("b", 250) + `
C: .
S: 552 5.2.2 <carol@example.org> Mailbox full
S: 250 2.0.0 <Alice+Lists@EXAMPLE.org> Delivered
S: 250 2.0.0 <alice@example.net> Delivered
C: QUIT
S: 221 2.0.0 Bye
E:`)
	// One copy for alice's two addresses (issue 13, finding 4): its
	// trace fields name the first, its log line both.
	got := e.messages(t, "alice")
	if len(got) != 1 {
		t.Fatalf("alice has %d messages, want 1", len(got))
	}
	body := "From: sender@example.net\r\nSubject: mixed\r\n\r\n.leading dot, stuffed\r\n" + strings.Repeat("b", 250) + "\r\n"
	rcpt := "Alice+Lists@EXAMPLE.org"
	want := "Return-Path: <sender@example.net>\r\n" +
		"Delivered-To: " + rcpt + "\r\n" +
		"Received: from mx.example.org ([127.0.0.1])\r\n" +
		"\tby mail.example.org (postie) with LMTP id " + idOf(t, got[0]) + "\r\n" +
		"\tfor <" + rcpt + ">; Tue, 14 Jan 2025 10:00:00 +0100\r\n" + body
	if got[0] != want {
		t.Errorf("alice's message:\n got %q\nwant %q", got[0], want)
	}
	assertEmpty(t, e.root, "carol")
	if n := countFiles(t, e.root, "bob", "new"); n != 1 {
		t.Errorf("bob has %d messages, want the 1 from before", n)
	}
	// One log line per delivery, no bodies.
	logs := e.logs.String()
	for _, want := range []string{
		`msg=delivered proto=LMTP id=` + idOf(t, got[0]) + ` user=alice rcpts="[Alice+Lists@EXAMPLE.org alice@example.net]" result=ok size=`,
		`msg="delivery refused" proto=LMTP id=` + idOf(t, got[0]) + ` user=carol result=over_quota code=552`,
		`msg="recipient refused" proto=lmtp id=` + idOf(t, got[0]) + ` rcpt=nobody@example.org result=no_such_user`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs, "leading dot") {
		t.Errorf("the log holds message text:\n%s", logs)
	}
}

// TestLMTPTooBig: SIZE over the limit is refused at MAIL; a message that
// turns out too big gets 552 5.3.4 for every recipient and is stored for
// none.
func TestLMTPTooBig(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageSize = 1 << 20 })
	_, addr := e.serve(t, ServerOptions{LMTP: true})
	c := dial(t, "tcp", addr)
	big := strings.Repeat(strings.Repeat("z", 1000)+"\r\n", 1100)
	c.script(`S~ 220 
` + lhlo + `
C: MAIL FROM:<> SIZE=2000000
S: 552 5.3.4 Max message size exceeded
C: MAIL FROM:<>
S~ 250 
C: RCPT TO:<alice@example.org>
S~ 250 
C: RCPT TO:<bob@example.org>
S~ 250 
C: DATA
S~ 354 `)
	c.send(big + ".\r\n")
	c.script(`S: 552 5.3.4 <alice@example.org> Message too big
S: 552 5.3.4 <bob@example.org> Message too big
C: NOOP
S~ 250 `)
	assertEmpty(t, e.root, "alice")
	assertEmpty(t, e.root, "bob")
}

// TestLMTPDuringSession: a delivery while a POP3 session holds the
// maildrop lock succeeds at once and shows up in the next session only.
func TestLMTPDuringSession(t *testing.T) {
	e := newEnv(t, nil)
	_, addr := e.serve(t, ServerOptions{LMTP: true})
	send := func(subject string) {
		c := dial(t, "tcp", addr)
		c.script(`S~ 220 
C: LHLO mx
S* 250
C: MAIL FROM:<x@example.net>
C: RCPT TO:<alice@example.org>
C: DATA
S~ 250 
S~ 250 
S~ 354 
C: Subject: ` + subject + `
C: .
S: 250 2.0.0 <alice@example.org> Delivered
C: QUIT
S~ 221 `)
	}
	send("before")
	md, err := e.st.Open(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	send("during")
	if n := len(md.Messages()); n != 1 {
		t.Errorf("the open session sees %d messages, want 1", n)
	}
	md.Close()
	md, err = e.st.Open(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	if n := len(md.Messages()); n != 2 {
		t.Errorf("the next session sees %d messages, want 2", n)
	}
}

// TestSMTPIntake: local domains only (never a relay), STARTTLS, one reply
// after DATA, the Received field says ESMTPS after STARTTLS.
func TestSMTPIntake(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageSize = 1 << 20 })
	cfg, certPEM := testenv.ServerTLSConfig(t)
	_, addr := e.serve(t, ServerOptions{TLSConfig: cfg})
	c := dial(t, "tcp", addr)
	c.script(`S: 220 mail.example.org ESMTP Service Ready
C: EHLO client.example.net
S: 250-Hello client.example.net
S: 250-PIPELINING
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-STARTTLS
S: 250-SIZE 1048576
S: 250 LIMITS RCPTMAX=100
C: MAIL FROM:<spammer@example.com>
S~ 250 
C: RCPT TO:<victim@gmail.example>
S: 550 5.7.1 Relaying denied: not a local domain
C: RCPT TO:<alice@example.org@gmail.example>
S: 550 5.7.1 Relaying denied: not a local domain
C: RCPT TO:<nobody@example.org>
S: 550 5.1.1 No such user here
C: RSET
S~ 250 
C: STARTTLS
S: 220 2.0.0 Ready to start TLS`)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	tc := tls.Client(c.c, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c = &client{t: t, c: tc, br: bufio.NewReader(tc)}
	c.script(`C: EHLO client.example.net
S: 250-Hello client.example.net
S: 250-PIPELINING
S: 250-8BITMIME
S: 250-ENHANCEDSTATUSCODES
S: 250-CHUNKING
S: 250-SIZE 1048576
S: 250 LIMITS RCPTMAX=100
C: MAIL FROM:<friend@example.com>
S~ 250 
C: RCPT TO:<alice@example.org>
S~ 250 
C: RCPT TO:<bob+x@Example.NET>
S~ 250 
C: DATA
S~ 354 
C: Subject: hi
C:
C: over TLS
C: .
S: 250 2.0.0 Delivered
C: QUIT
S~ 221 `)
	for _, user := range []string{"alice", "bob"} {
		got := e.messages(t, user)
		if len(got) != 1 || !strings.Contains(got[0], "Received: from client.example.net ([127.0.0.1])\r\n\tby mail.example.org (postie) with ESMTPS id ") ||
			!strings.HasSuffix(got[0], "\r\nSubject: hi\r\n\r\nover TLS\r\n") {
			t.Errorf("%s's messages: %q", user, got)
		}
	}
}

// TestSMTPNeedsLocalDomains: an SMTP server without local domains would
// relay: it is refused.
func TestSMTPNeedsLocalDomains(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.LocalDomains = nil })
	if _, err := NewServer(ServerOptions{Deliverer: e.d}); err == nil {
		t.Error("NewServer accepted an SMTP server without local domains")
	}
	if _, err := NewServer(ServerOptions{Deliverer: e.d, LMTP: true}); err != nil {
		t.Errorf("LMTP without local domains: %v", err)
	}
}

// TestSMTPOverQuotaSome: SMTP has one reply for all recipients; when some
// are over quota and some not, all get the message (nothing dropped);
// when all are, the reply says so.
func TestSMTPOverQuotaSome(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.QuotaOverrides = map[string]Quota{"bob": {Bytes: 10}, "carol": {Bytes: 10}} })
	_, addr := e.serve(t, ServerOptions{})
	c := dial(t, "tcp", addr)
	c.script(`S~ 220 
C: HELO c
S~ 250 
C: MAIL FROM:<>
S~ 250 
C: RCPT TO:<bob@example.org>
S~ 250 
C: RCPT TO:<carol@example.org>
S~ 250 
C: DATA
S~ 354 
C: Subject: too big for both
C: .
S: 552 5.2.2 Mailbox full
C: MAIL FROM:<>
S~ 250 
C: RCPT TO:<bob@example.org>
S~ 250 
C: RCPT TO:<alice@example.org>
S~ 250 
C: DATA
S~ 354 
C: Subject: alice has room
C: .
S: 250 2.0.0 Delivered`)
	if len(e.messages(t, "alice")) != 1 || len(e.messages(t, "bob")) != 1 || len(e.messages(t, "carol")) != 0 {
		t.Errorf("alice %d, bob %d, carol %d messages; want 1, 1, 0", len(e.messages(t, "alice")), len(e.messages(t, "bob")), len(e.messages(t, "carol")))
	}
}

func TestSMTPRateLimit(t *testing.T) {
	e := newEnv(t, nil)
	_, addr := e.serve(t, ServerOptions{RatePerMinute: 1, RateBurst: 2})
	c := dial(t, "tcp", addr)
	c.script(`S~ 220 
C: HELO c
S~ 250 
C: MAIL FROM:<a@example.com>
S~ 250 
C: RSET
S~ 250 
C: MAIL FROM:<a@example.com>
S~ 250 
C: RSET
S~ 250 
C: MAIL FROM:<a@example.com>
S: 450 4.7.1 Too many messages from your address, try again later`)
}

func TestMaxConnections(t *testing.T) {
	e := newEnv(t, nil)
	_, addr := e.serve(t, ServerOptions{LMTP: true, MaxConnections: 1})
	c1 := dial(t, "tcp", addr)
	c1.script(`S~ 220 `)
	c2 := dial(t, "tcp", addr)
	c2.script(`S: 421 4.3.2 Too many connections, try again later
E:`)
	c1.script(`C: QUIT
S~ 221 
E:`)
	// The slot is free again once the first connection is gone.
	deadline := time.Now().Add(5 * time.Second)
	for {
		c3 := dial(t, "tcp", addr)
		line, _ := c3.br.ReadString('\n')
		if strings.HasPrefix(line, "220 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("third connection: %q", line)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestShutdown: idle connections are closed at once, a transaction under
// way finishes with its 250 before its connection is closed; past the
// grace period a transaction is cut and nothing of it is stored.
func TestShutdown(t *testing.T) {
	e := newEnv(t, nil)
	s, addr := e.serve(t, ServerOptions{LMTP: true})
	idle := dial(t, "tcp", addr)
	idle.script(`S~ 220 
C: LHLO idle
S* 250`)
	fresh := dial(t, "tcp", addr) // not even LHLO yet
	fresh.script(`S~ 220 `)
	busy := dial(t, "tcp", addr)
	busy.script(`S~ 220 
C: LHLO busy
S* 250
C: MAIL FROM:<>
C: RCPT TO:<alice@example.org>
C: DATA
S~ 250 
S~ 250 
S~ 354 
C: Subject: in flight`)
	waitFor(t, func() bool { return s.Sessions() == 3 })
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		done <- s.Shutdown(ctx)
	}()
	idle.script(`E:`)
	fresh.script(`E:`)
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		// The listener may take a moment to go.
		waitFor(t, func() bool { _, err := net.DialTimeout("tcp", addr, time.Second); return err != nil })
	}
	busy.script(`C: .
S: 250 2.0.0 <alice@example.org> Delivered
E:`)
	if err := <-done; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if n := len(e.messages(t, "alice")); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}

	// Past the grace period.
	e2 := newEnv(t, nil)
	s2, addr2 := e2.serve(t, ServerOptions{LMTP: true})
	stuck := dial(t, "tcp", addr2)
	stuck.script(`S~ 220 
C: LHLO stuck
S* 250
C: MAIL FROM:<>
C: RCPT TO:<alice@example.org>
C: DATA
S~ 250 
S~ 250 
S~ 354 
C: Subject: never finished`)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := s2.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Errorf("Shutdown past the grace period: %v", err)
	}
	if b, _ := io.ReadAll(stuck.br); strings.Contains(string(b), "250") {
		t.Errorf("a cut transaction got %q", b)
	}
	assertEmpty(t, e2.root, "alice")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestListenUnix: a unix socket replaces a stale one, refuses to steal a
// live one, and is open to its owner and group only (mode 0660).
func TestListenUnix(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "lmtp")
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:" + path); err == nil {
		t.Error("a second Listen took a live socket")
	}
	fi, err := osStat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, %v", fi.Mode(), err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // leaves the file: a stale socket
	ln, err = Listen("unix:" + path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln.Close()
}

// Issue 13, finding 6: the socket's directory, when Listen makes it, is
// 0750 whatever the umask, and the socket has the configured mode and
// group (0660 and the process's group by default), so that local users
// outside the group cannot deliver mail with a forged sender. An existing
// directory keeps its mode; a group that does not exist is an error.
func TestListenSocketModeAndGroup(t *testing.T) {
	group := ""
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		// Root may give the socket any group: pick one it is not in.
		for _, name := range []string{"nogroup", "daemon", "nobody"} {
			if g, err := user.LookupGroup(name); err == nil {
				group = name
				gid, _ = strconv.Atoi(g.Gid)
				break
			}
		}
	}
	for _, tc := range []struct {
		name  string
		so    SocketOptions
		mode  os.FileMode
		group int
	}{
		{"default", SocketOptions{}, 0o660, os.Getgid()},
		{"owner only", SocketOptions{Mode: 0o600}, 0o600, os.Getgid()},
		{"group by name", SocketOptions{Group: group}, 0o660, gid},
		{"group by id", SocketOptions{Mode: 0o640, Group: strconv.Itoa(gid)}, 0o640, gid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run", "postie")
			path := filepath.Join(dir, "lmtp")
			ln, err := ListenSocket("unix:"+path, tc.so)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			for _, c := range []struct {
				path  string
				mode  os.FileMode
				group int
			}{{dir, 0o750, tc.group}, {path, tc.mode, tc.group}} {
				fi, err := os.Lstat(c.path)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != c.mode || int(fi.Sys().(*syscall.Stat_t).Gid) != c.group {
					t.Errorf("%s: mode %v group %d, want %v group %d", c.path, fi.Mode().Perm(), fi.Sys().(*syscall.Stat_t).Gid, c.mode, c.group)
				}
			}
			// The socket answers its owner.
			c, err := net.Dial("unix", path)
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
		})
	}
	// An existing directory is the operator's: left as it is.
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o711); err != nil {
		t.Fatal(err)
	}
	ln, err := ListenSocket("unix:"+filepath.Join(dir, "lmtp"), SocketOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Errorf("existing directory changed: %v %v", fi.Mode(), err)
	}
	if _, err := ListenSocket("unix:"+filepath.Join(t.TempDir(), "lmtp"), SocketOptions{Group: "no-such-group-here"}); err == nil || !strings.Contains(err.Error(), `socket group "no-such-group-here"`) {
		t.Errorf("unknown group: %v", err)
	}
}

// dialFromAddr dials addr from the loopback address local.
func dialFromAddr(t *testing.T, local, addr string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// Issue 13, finding 5: one address holding many idle SMTP connections
// gets no more than MaxConnectionsPerIP of them (the next is refused with
// 421 4.7.0), the server-wide cap is not used up, and another address is
// served in full meanwhile.
func TestSMTPConnectionsPerAddress(t *testing.T) {
	e := newEnv(t, nil)
	const perIP = 5
	srv, addr := e.serve(t, ServerOptions{MaxConnections: 2 * perIP, MaxConnectionsPerIP: perIP, IdleTimeout: time.Hour})
	for range perIP {
		dialFromAddr(t, "127.0.0.2", addr).script(`S~ 220 `)
	}
	for range 3 * perIP {
		dialFromAddr(t, "127.0.0.2", addr).script(`S: 421 4.7.0 Too many connections from your address, try again later
E:`)
	}
	if n := srv.Sessions(); n != perIP {
		t.Errorf("%d connections open, want %d", n, perIP)
	}
	dialFromAddr(t, "127.0.0.3", addr).script(`S~ 220 
C: HELO other
S~ 250 
C: MAIL FROM:<a@example.com>
S~ 250 
C: RCPT TO:<alice@example.org>
S~ 250 
C: DATA
S~ 354 
C: Subject: served
C: .
S: 250 2.0.0 Delivered
C: QUIT
S~ 221 `)
	if got := e.messages(t, "alice"); len(got) != 1 {
		t.Errorf("alice has %d messages, want 1", len(got))
	}
}

// A connection idle before MAIL is closed after IdleTimeout (421 4.4.2);
// one that was in a transaction before it and idle for longer is not.
func TestSMTPIdleBeforeMail(t *testing.T) {
	e := newEnv(t, nil)
	_, addr := e.serve(t, ServerOptions{IdleTimeout: time.Second})
	busy := dial(t, "tcp", addr)
	busy.script(`S~ 220 
C: HELO busy
C: MAIL FROM:<a@example.com>
S~ 250 
S~ 250 `)
	// Opened after busy went idle in its transaction: closed first.
	idle := dial(t, "tcp", addr)
	idle.script(`S~ 220 
S: 421 4.4.2 Idle timeout, bye bye
E:`)
	busy.script(`C: RCPT TO:<alice@example.org>
S~ 250 
C: DATA
S~ 354 
C: Subject: slow
C: .
S: 250 2.0.0 Delivered
C: QUIT
S~ 221 `)
}
