package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// pgNode prepares (does not start) a node of the PostgreSQL store: its
// own data_dir (the user database is a file per node, the same users),
// the shared database, a 1s lease, LMTP on a free port.
func pgNode(t *testing.T, dir, dsnKey string) *testenv.Postie {
	t.Helper()
	n := testenv.NewPostie(t, testenv.PostieOptions{Dir: dir, Config: fmt.Sprintf(`[log]
level = "debug"
[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[lmtp]
listen = ["127.0.0.1:0"]
[storage]
backend = "postgres"
%s
postgres_lease = "1s"
postgres_timeout = "5s"
`, dsnKey)})
	mustPostie(t, 0, "pw\n", "user", "add", "--config", n.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	return n
}

// TestServePostgres runs two `postie serve` nodes on one PostgreSQL
// database: `postie deliver` and LMTP deliver into it, POP3 (our raw
// client, curl, Python's poplib) reads back exact bytes, the maildrop lock
// holds across nodes, and a killed node's lock expires.
func TestServePostgres(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)

	dir1, dir2 := t.TempDir(), t.TempDir()
	// Node 1 reads the DSN from a file, node 2 from the config.
	dsnFile := filepath.Join(dir1, "dsn")
	if err := os.WriteFile(dsnFile, []byte(dsn+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n1 := pgNode(t, dir1, `postgres_dsn_file = "dsn"`)
	n2 := pgNode(t, dir2, fmt.Sprintf("postgres_dsn = %q", dsn))
	cfg2 := n2.Config

	// deliver before any node runs: it makes the schema itself.
	mustPostie(t, 0, testMessage, "deliver", "--config", n1.Config, "alice")

	n1.Start(t)
	addr1 := n1.POP3
	lmtp1 := n1.LMTP
	n1.WaitLog(t, `msg="postie started".* storage=postgres`)
	if strings.Contains(n1.Log(), dsn) {
		t.Errorf("the log shows the DSN")
	}
	n2.Start(t)
	addr2 := n2.POP3
	lmtp2 := n2.LMTP
	n2.WaitLog(t, `msg="postie started"`)

	lmtpBody := "Subject: lmtp\r\n\r\n..dot-stuffed line\r\nend\r\n"
	lmtpDeliver(t, lmtp1, "alice@example.org", lmtpBody)

	// Node 2 sees what came through node 1, exact bytes.
	p := dialPOP3(t, addr2)
	p.login("alice", "pw")
	var want [2]string
	{
		got := retr(p, 1)
		trace := traceRE.FindString(strings.ReplaceAll(got, "\r\n", "\n"))
		if trace == "" {
			t.Fatalf("message 1 lacks deliver's trace fields: %q", got)
		}
		want[0] = wireForm(trace + testMessage)
		if got != want[0] {
			t.Errorf("RETR 1 = %q\nwant %q", got, want[0])
		}
		got = retr(p, 2)
		body := strings.Replace(lmtpBody, "..dot", ".dot", 1)
		if !strings.HasSuffix(got, body) || !lmtpTraceRE.MatchString(strings.TrimSuffix(got, body)) {
			t.Errorf("RETR 2 = %q, want the LMTP trace fields then %q", got, body)
		}
		want[1] = got
	}
	if r, w := p.cmd("+OK", "STAT"), fmt.Sprintf("+OK 2 %d", len(want[0])+len(want[1])); r != w {
		t.Errorf("STAT = %q, want %q", r, w)
	}
	p.cmd("+OK", "LIST")
	if got, w := p.multi(), fmt.Sprintf("1 %d\r\n2 %d\r\n", len(want[0]), len(want[1])); got != w {
		t.Errorf("LIST = %q, want %q", got, w)
	}
	p.cmd("+OK", "UIDL")
	uidl := p.multi()
	if !regexp.MustCompile(`^1 [0-9a-f]{8}\.\d+\r\n2 [0-9a-f]{8}\.\d+\r\n$`).MatchString(uidl) {
		t.Errorf("UIDL = %q", uidl)
	}

	// The session on node 2 locks the maildrop on node 1 too.
	q := dialPOP3(t, addr1)
	q.cmd("+OK", "USER alice")
	if r := q.cmd("-ERR", "PASS pw"); r != "-ERR [IN-USE] maildrop already locked by another session" {
		t.Errorf("login on node 1 during node 2's session: %q", r)
	}
	q.c.Close()
	p.cmd("+OK", "QUIT")

	// Real clients read the same bytes.
	t.Run("curl", func(t *testing.T) {
		curl := testenv.LookPath(t, "curl")
		for i, w := range want {
			out, err := exec.Command(curl, "-sS", "--max-time", "30", fmt.Sprintf("pop3://alice:pw@%s/%d", addr1, i+1)).Output()
			if err != nil {
				t.Fatalf("curl: %v", err)
			}
			if string(out) != w {
				t.Errorf("curl message %d = %q\nwant %q", i+1, out, w)
			}
		}
	})
	t.Run("poplib", func(t *testing.T) {
		py := testenv.LookPath(t, "python3")
		host, port, _ := net.SplitHostPort(addr2)
		script := `import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=30)
p.user("alice"); p.pass_("pw")
for i in (1, 2):
    resp, lines, octets = p.retr(i)
    sys.stdout.buffer.write(b"".join(l + b"\r\n" for l in lines))
    sys.stdout.buffer.write(b"%d\n" % octets)
p.quit()
`
		out, err := exec.Command(py, "-c", script, host, port).Output()
		if err != nil {
			t.Fatalf("poplib: %v", err)
		}
		// poplib counts the octets of the lines, unstuffed, with their
		// line ends: the size LIST gave.
		w := want[0] + fmt.Sprintf("%d\n", len(want[0])) + want[1] + fmt.Sprintf("%d\n", len(want[1]))
		if string(out) != w {
			t.Errorf("poplib read %q\nwant %q", out, w)
		}
	})

	// A node killed in a session: its lock expires (1s lease), then node
	// 2 gets in and deletes.
	q = dialPOP3(t, addr1)
	q.login("alice", "pw")
	r := dialPOP3(t, addr2)
	r.cmd("+OK", "USER alice")
	if got := r.cmd("-ERR", "PASS pw"); !strings.Contains(got, "[IN-USE]") {
		t.Errorf("login on node 2 during node 1's session: %q", got)
	}
	r.c.Close()
	n1.Kill(t)
	for start := time.Now(); ; time.Sleep(200 * time.Millisecond) {
		r = dialPOP3(t, addr2)
		r.cmd("+OK", "USER alice")
		r.c.Write([]byte("PASS pw\r\n"))
		got := r.line()
		if strings.HasPrefix(got, "+OK") {
			break
		}
		r.c.Close()
		if !strings.Contains(got, "[IN-USE]") || time.Since(start) > 30*time.Second {
			t.Fatalf("login on node 2 after node 1 was killed: %q after %v", got, time.Since(start))
		}
	}
	r.cmd("+OK", "DELE 1")
	r.cmd("+OK", "QUIT")
	r = dialPOP3(t, addr2)
	r.login("alice", "pw")
	if got, w := r.cmd("+OK", "STAT"), "+OK 1 "+strconv.Itoa(len(want[1])); got != w {
		t.Errorf("STAT after DELE 1 = %q, want %q", got, w)
	}
	r.cmd("+OK", "QUIT")

	// The database goes away: temporary failures, no hang.
	pg.Stop()
	r = dialPOP3(t, addr2)
	r.cmd("+OK", "USER alice")
	if got := r.cmd("-ERR", "PASS pw"); got != "-ERR [SYS/TEMP] unable to open maildrop" {
		t.Errorf("login with the database down: %q", got)
	}
	r.c.Close()
	if res := postie(t, nil, "Subject: x\n\nx\n", "deliver", "--config", cfg2, "alice"); res.code != 75 {
		t.Errorf("deliver with the database down: exit %d, want 75 (temporary)\n%s", res.code, res.stderr)
	}
	lmtpTempFail(t, lmtp2, "alice@example.org")
	n2.Stop(t, syscall.SIGTERM, 30*time.Second)
}

// lmtpTempFail expects a 4xx for rcpt's delivery (after RCPT or DATA).
func lmtpTempFail(t *testing.T, addr, rcpt string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	fmt.Fprintf(c, "LHLO test.example\r\nMAIL FROM:<>\r\nRCPT TO:<%s>\r\nDATA\r\nSubject: x\r\n\r\nx\r\n.\r\nQUIT\r\n", rcpt)
	var replies []string
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		replies = append(replies, sc.Text())
		if strings.HasPrefix(sc.Text(), "4") {
			return
		}
	}
	t.Errorf("LMTP with the database down: no 4xx reply in %q", replies)
}

// lmtpTraceRE matches the trace fields LMTP adds before a message.
var lmtpTraceRE = regexp.MustCompile(`^Return-Path: <[^>\r\n]*>\r\n(Delivered-To: \S+\r\n)?Received: [^\r\n]*\r\n(\t[^\r\n]*\r\n)*$`)

// retr sends RETR i and returns the message, unstuffed.
func retr(p *pop3Conn, i int) string {
	p.t.Helper()
	p.cmd("+OK", "RETR "+strconv.Itoa(i))
	return p.multi()
}

// lmtpDeliver delivers body (CRLF, already dot-stuffed) to rcpt over LMTP
// and expects 250. addr is host:port or unix:PATH.
func lmtpDeliver(t *testing.T, addr, rcpt, body string) {
	t.Helper()
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
	}
	c, err := net.DialTimeout(network, addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deliverOver(t, c, "LHLO", rcpt, body)
}

// deliverOver sends body to rcpt over c, an LMTP (hello "LHLO") or SMTP
// ("EHLO") connection, checking each reply, and quits.
func deliverOver(t *testing.T, c net.Conn, hello, rcpt, body string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	reply := func(want string) {
		t.Helper()
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("LMTP: %v", err)
			}
			if !strings.HasPrefix(l, want) {
				t.Fatalf("LMTP reply %q, want %s", l, want)
			}
			if len(l) < 4 || l[3] != '-' {
				return
			}
		}
	}
	reply("220")
	for _, step := range []struct{ send, want string }{
		{hello + " test.example\r\n", "250"},
		{"MAIL FROM:<sender@example.net>\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"},
		{"DATA\r\n", "354"},
		{body + ".\r\n", "250"},
		{"QUIT\r\n", "221"},
	} {
		if _, err := c.Write([]byte(step.send)); err != nil {
			t.Fatal(err)
		}
		reply(step.want)
	}
}
