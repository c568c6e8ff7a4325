package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"os"
	"os/exec"
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

// traceRE matches the header fields `postie deliver` adds before a message
// whose first line ends in LF: Return-Path, Delivered-To, Received.
var traceRE = regexp.MustCompile(`^Return-Path: <([^>\n]*)>\nDelivered-To: (\S+)\nReceived: by \S+ \(postie\) with local id [0-9A-F]{16}\n\tfor <(\S+)>; [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\n`)

// checkTraced checks that stored is msg after deliver's trace fields for
// recipient rcpt with the null sender, and returns the trace.
func checkTraced(t *testing.T, stored, rcpt, msg string) string {
	t.Helper()
	m := traceRE.FindStringSubmatch(stored)
	if m == nil {
		t.Fatalf("stored message does not start with the trace fields:\n%q", stored)
	}
	if m[1] != "" || m[2] != rcpt || m[3] != rcpt {
		t.Errorf("trace fields: Return-Path <%s>, Delivered-To %s, for <%s>; want <>, %s, <%s>", m[1], m[2], m[3], rcpt, rcpt)
	}
	if rest := stored[len(m[0]):]; rest != msg {
		t.Errorf("stored message differs after the trace fields:\n got %q\nwant %q", rest, msg)
	}
	return m[0]
}

// storedMessage returns the one message in the Maildir dir, checked to be
// msg after deliver's trace fields.
func storedMessage(t *testing.T, dir, rcpt, msg string) string {
	t.Helper()
	files := maildirFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("Maildir %s holds %v, want one message", dir, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	checkTraced(t, string(b), rcpt, msg)
	return string(b)
}

// TestDeliverLDA: deliver as Postfix's mailbox_command runs it: -f, an
// address with a subaddress, the mbox "From " line and Return-Path that
// local(8) prepends are replaced, its Delivered-To is not repeated; exit
// codes and the status code at the start of the message.
func TestDeliverLDA(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postie.toml")
	if err := os.WriteFile(cfg, []byte(`data_dir = "state"
[intake]
local_domains = ["example.org"]
max_message_size = "1K"
quota_messages = 2
[intake.quota_overrides.bob]
messages = 0
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		mustPostie(t, 0, "pw\n", "user", "add", "--config", cfg, "--password-stdin", "--scheme", "SHA512-CRYPT", u)
	}
	deliver := func(want int, stdin string, args ...string) result {
		t.Helper()
		r := postie(t, nil, stdin, append([]string{"deliver", "--config", cfg}, args...)...)
		if r.code != want {
			t.Fatalf("deliver %v: exit %d, want %d\nstderr: %s", args, r.code, want, r.stderr)
		}
		return r
	}
	fromPostfix := "From sender@example.net  Tue Jan 14 10:00:00 2025\n" +
		"Return-Path: <sender@example.net>\n" +
		"X-Original-To: alice+lists@example.org\n" +
		"Delivered-To: alice+lists@example.org\n" +
		"Received: by mx.example.org (Postfix)\n" +
		"Subject: via local(8)\n\nbody\n"
	deliver(0, fromPostfix, "-f", "sender@example.net", "alice+lists@example.org")
	files := maildirFiles(t, filepath.Join(dir, "state", "mail", "alice"))
	if len(files) != 1 {
		t.Fatalf("alice has %v", files)
	}
	got, _ := os.ReadFile(files[0])
	re := regexp.MustCompile(`^Return-Path: <sender@example\.net>\nReceived: by \S+ \(postie\) with local id [0-9A-F]{16}\n\tfor <alice\+lists@example\.org>; [^\n]+\n` +
		regexp.QuoteMeta("X-Original-To: alice+lists@example.org\nDelivered-To: alice+lists@example.org\nReceived: by mx.example.org (Postfix)\nSubject: via local(8)\n\nbody\n") + `$`)
	if !re.Match(got) {
		t.Errorf("stored:\n%s", got)
	}

	// Exit codes, with the RFC 3463 status first (what Postfix reports).
	for _, tc := range []struct {
		args []string
		code int
		dsn  string
	}{
		{[]string{"nobody@example.org"}, 67, "5.1.1 "},
		{[]string{"alice@example.com"}, 67, "5.1.2 "},
		{[]string{"-f", "x@example.net", "ALICE@EXAMPLE.ORG"}, 0, ""},
		{[]string{"alice"}, 73, "5.2.2 "}, // the third message: over quota_messages = 2
		{[]string{"bob"}, 0, ""},          // bob's override: no limit
	} {
		r := deliver(tc.code, "Subject: x\n\nx\n", tc.args...)
		if !strings.HasPrefix(r.stderr, tc.dsn) || tc.code != 0 && strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
			t.Errorf("deliver %v: stderr %q, want one line starting %q", tc.args, r.stderr, tc.dsn)
		}
	}
	r := deliver(69, strings.Repeat("x", 2000), "bob")
	if !strings.HasPrefix(r.stderr, "5.3.4 ") {
		t.Errorf("too big: %q", r.stderr)
	}
	if n := len(maildirFiles(t, filepath.Join(dir, "state", "mail", "bob"))); n != 1 {
		t.Errorf("bob has %d messages, want 1", n)
	}
}

// syncBuffer is testenv.SyncBuffer under this package's old name.
type syncBuffer = testenv.SyncBuffer

// TestDeliverKilled: deliver killed with SIGKILL in the middle of a
// message leaves nothing a POP3 session could see: its partial file stays
// in tmp/ only, and a later delivery removes it once it is 36 hours old.
func TestDeliverKilled(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "pw")
	md := filepath.Join(dir, "mail", "alice")
	cmd := testenv.PostieCommand(t, dev(dir, "deliver", "alice")...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	// A slow sender: half a message, and no end.
	io.WriteString(stdin, "Subject: never finished\n\n"+strings.Repeat("partial line\n", 20000))
	var tmp []string
	deadline := time.Now().Add(30 * time.Second)
	for len(tmp) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no file in tmp/ within 30s; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
		tmp, _ = filepath.Glob(filepath.Join(md, "tmp", "*"))
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("deliver ended with %v, not by SIGKILL", err)
	}
	if files := maildirFiles(t, md); len(files) != 0 {
		t.Fatalf("a killed delivery left %v in new/ or cur/", files)
	}
	if len(tmp) != 1 {
		t.Fatalf("tmp/ holds %v", tmp)
	}
	// A young leftover stays (it could be a delivery in progress) ...
	mustPostie(t, 0, "Subject: next\n\nx\n", dev(dir, "deliver", "alice")...)
	if _, err := os.Stat(tmp[0]); err != nil {
		t.Fatalf("a fresh tmp/ file was removed: %v", err)
	}
	// ... an old one goes with the next delivery.
	old := time.Now().Add(-37 * time.Hour)
	if err := os.Chtimes(tmp[0], old, old); err != nil {
		t.Fatal(err)
	}
	mustPostie(t, 0, "Subject: after\n\nx\n", dev(dir, "deliver", "alice")...)
	if _, err := os.Stat(tmp[0]); !os.IsNotExist(err) {
		t.Errorf("stale tmp/ file still there: %v", err)
	}
	if n := len(maildirFiles(t, md)); n != 2 {
		t.Errorf("%d messages, want the 2 complete ones", n)
	}
}

// postfix is a private Postfix instance: its own config_directory and
// queue in a temporary directory, its master daemon a child of the test,
// smtpd on a loopback port, delivering example.org over LMTP to lmtpAddr
// (virtual_transport).
type postfix struct {
	dir  string
	smtp string
}

func startPostfix(t *testing.T, lmtpAddr string) *postfix {
	t.Helper()
	return startPostfixTransport(t, "virtual_transport = lmtp:inet:"+lmtpAddr+"\n", "")
}

// startPostfixTransport is startPostfix with transport, the main.cf
// lines that route example.org (virtual_transport and its settings), and
// services, more master.cf lines (those transport names).
func startPostfixTransport(t *testing.T, transport, services string) *postfix {
	t.Helper()
	testenv.LookPath(t, "postfix")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the Postfix test runs as root (postfix start)")
	}
	p := &postfix{dir: t.TempDir()}
	// Postfix's daemons run as the postfix user: they must reach the
	// queue, and TempDir's parents are 0700.
	for d := p.dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	// The queue as postfix-script would make it (calling it takes
	// seconds of checks): postfix's own directories, and the two the
	// postdrop group writes to.
	mkdir := func(path string, mode os.FileMode, owner string) {
		t.Helper()
		if err := os.MkdirAll(path, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(path, mode)
		if owner != "" {
			if out, err := exec.Command("chown", owner, path).CombinedOutput(); err != nil {
				t.Fatalf("chown: %v %s", err, out)
			}
		}
	}
	mkdir(filepath.Join(p.dir, "queue"), 0o755, "")
	mkdir(filepath.Join(p.dir, "queue", "pid"), 0o755, "")
	mkdir(filepath.Join(p.dir, "data"), 0o700, "postfix")
	for _, sub := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		mkdir(filepath.Join(p.dir, "queue", sub), 0o700, "postfix")
	}
	mkdir(filepath.Join(p.dir, "queue", "maildrop"), 0o730, "postfix:postdrop")
	mkdir(filepath.Join(p.dir, "queue", "public"), 0o710, "postfix:postdrop")
	port := testenv.FreePort(t)
	p.smtp = "127.0.0.1:" + strconv.Itoa(port)
	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.postie.test
mydomain = postie.test
myorigin = postie.test
mydestination =
mynetworks = 127.0.0.0/8
relayhost =
virtual_mailbox_domains = example.org
%[2]ssmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
alias_maps =
alias_database =
biff = no
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
syslog_name = postfix-postie-test
`, p.dir, transport)
	masterCF := "127.0.0.1:" + strconv.Itoa(port) + " inet n - n - - smtpd\n" + `pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
` + services
	for name, content := range map[string]string{"main.cf": mainCF, "master.cf": masterCF} {
		if err := os.WriteFile(filepath.Join(p.dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The master daemon in the foreground, as a child of the test (what
	// `postfix start` runs, without its checks).
	master := filepath.Join(postconf(t, "daemon_directory"), "master")
	cmd := exec.Command(master, "-c", p.dir, "-d")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	testenv.SetDeathSignal(cmd.SysProcAttr)
	out, err := os.Create(filepath.Join(p.dir, "master.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting postfix: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
			t.Logf("postfix maillog:\n%s", log)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", p.smtp, time.Second)
		if err == nil {
			c.Close()
			return p
		}
		log, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
		select {
		case <-exited:
			t.Fatalf("postfix exited at start:\n%s", log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("postfix smtpd not listening on %s:\n%s", p.smtp, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// send hands msg for rcpt to Postfix's smtpd, from sender@example.net.
func (p *postfix) send(t *testing.T, rcpt, msg string) {
	t.Helper()
	c, err := smtp.Dial(p.smtp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("sender@example.net"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt(rcpt); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, msg)
	if err := w.Close(); err != nil {
		t.Fatalf("Postfix refused the message: %v", err)
	}
	c.Quit()
}

// postconf returns the value of a Postfix parameter (its default).
func postconf(t *testing.T, name string) string {
	t.Helper()
	out, err := exec.Command("postconf", "-dh", name).Output()
	if err != nil {
		t.Fatalf("postconf -dh %s: %v", name, err)
	}
	return strings.TrimSpace(string(out))
}

// TestPostfixLMTP: a real Postfix takes a message over SMTP and delivers
// it over LMTP into `postie serve`; Python's poplib then reads exactly
// the bytes sent, after the header fields postie and Postfix added.
func TestPostfixLMTP(t *testing.T) {
	t.Parallel()
	python := testenv.LookPath(t, "python3")
	dir := t.TempDir()
	s := startServe(t, dir)
	password := s.WaitStdout(t, `(?m)^\s*password:\s+(\S+)$`)[1]
	popAddr := s.POP3
	lmtpAddr := s.LMTP
	if !strings.Contains(s.Stdout(), "LMTP is listening on "+lmtpAddr) {
		t.Errorf("the banner does not show the LMTP address:\n%s", s.Stdout())
	}
	p := startPostfix(t, lmtpAddr)

	msg := "From: Sender <sender@example.net>\r\n" +
		"To: demo+inbox@example.org\r\n" +
		"Date: Tue, 14 Jan 2025 10:00:00 +0000\r\n" +
		"Message-ID: <postfix-test@example.net>\r\n" +
		"Subject: through Postfix\r\n" +
		"\r\n" +
		".a line starting with a dot\r\n" +
		".\r\n" +
		"8-bit: \xe2\x9c\x89\r\n" +
		strings.Repeat("0123456789", 90) + "\r\n" +
		"last line\r\n"
	p.send(t, "demo+inbox@example.org", msg)

	// Postfix delivers within a second or so.
	md := filepath.Join(dir, "mail", "demo")
	deadline := time.Now().Add(45 * time.Second)
	for len(maildirFiles(t, md)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Postfix did not deliver within 45s; postie log:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}

	host, port, _ := net.SplitHostPort(popAddr)
	script := `import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]))
p.user("demo")
p.pass_(sys.argv[3])
count, size = p.stat()
resp, lines, octets = p.retr(1)
p.quit()
sys.stdout.buffer.write(b"%d %d\n" % (count, size) + b"".join(l + b"\r\n" for l in lines))
`
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", script, host, port, password).Output()
	if err != nil {
		t.Fatalf("python3 poplib: %v", err)
	}
	head, got, _ := strings.Cut(string(out), "\n")
	if head != fmt.Sprintf("1 %d", len(got)) {
		t.Errorf("STAT %q, want 1 message of %d octets", head, len(got))
	}
	// postie's fields, then Postfix's Received, then the message as sent.
	re := regexp.MustCompile(`^Return-Path: <sender@example\.net>\r\n` +
		`Delivered-To: demo\+inbox@example\.org\r\n` +
		`Received: from mx\.postie\.test \(\[127\.0\.0\.1\]\)\r\n` +
		`\tby \S+ \(postie\) with LMTP id [0-9A-F]{16}\r\n` +
		`\tfor <demo\+inbox@example\.org>; [^\r\n]+\r\n` +
		`(Received: from client\.example\.net \([^\r\n]*\[127\.0\.0\.1\]\)\r\n(?:\t[^\r\n]*\r\n)*?\t[^\r\n]*\(Postfix\) with \S+ id \S+\r\n(?:\t[^\r\n]*\r\n)*)` +
		`(?s)(.*)$`)
	m := re.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("RETR 1 does not start with postie's and Postfix's trace fields:\n%s", got)
	}
	if m[2] != msg {
		t.Errorf("the message after the trace fields differs:\n got %q\nwant %q", m[2], msg)
	}
}

// TestPostfixPipe is the pipe-transport recipe of docs/operations.md end
// to end: Postfix's pipe(8) runs `postie deliver -f ${sender}
// ${recipient}` as the account postie serve runs as (nobody here, postie
// in the package), one recipient at a time, for the local domains of
// [intake]; the config and the passwd-file are root:<its group> 0640. The
// message lands in a maildrop of that account, where serve reads exactly
// the bytes sent after the trace fields.
func TestPostfixPipe(t *testing.T) {
	t.Parallel()
	testenv.LookPath(t, "postfix")
	if os.Geteuid() != 0 {
		testenv.Missing(t, "the Postfix test runs as root (postfix start)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.Missing(t, "no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	// data_dir belongs to the account; the config and the passwd-file,
	// beside it, to root.
	dir := t.TempDir()
	s := testenv.NewPostie(t, testenv.PostieOptions{
		Dir:   dir,
		Files: map[string]string{"passwd": ""},
		Config: `data_dir = "state"
[auth]
passwd_file = "` + filepath.Join(dir, "passwd") + `"
[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[lmtp]
listen = []
[intake]
local_domains = ["example.org"]
[server]
user = "nobody"
`})
	// The documented modes: the account reads both through its group.
	for _, f := range []string{s.Config, filepath.Join(s.Dir, "passwd")} {
		os.Chmod(f, 0o640)
		if err := os.Chown(f, 0, gid); err != nil {
			t.Fatal(err)
		}
	}
	for d := s.Dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // TempDir's parents are 0700
	}
	mail := filepath.Join(s.Dir, "state", "mail")
	if err := os.MkdirAll(mail, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Dir(mail), uid, gid)
	os.Chown(mail, uid, gid)
	mustPostie(t, 0, "alice pw\n", "user", "add", "--config", s.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	if r := mustPostie(t, 0, "", "config", "check", "--quiet", "--config", s.Config); r.stdout != "" {
		t.Errorf("config check of the documented layout:\n%s", r.stdout)
	}

	// The recipe, with the test's binary and config file.
	p := startPostfixTransport(t,
		"virtual_transport = postie\npostie_destination_recipient_limit = 1\n",
		"postie unix - n n - - pipe user=nobody argv="+s.Bin+" deliver --config "+s.Config+" -f ${sender} ${recipient}\n")
	msg := "From: Sender <sender@example.net>\r\n" +
		"To: alice+inbox@example.org\r\n" +
		"Date: Tue, 14 Jan 2025 10:00:00 +0000\r\n" +
		"Message-ID: <postfix-pipe-test@example.net>\r\n" +
		"Subject: through Postfix's pipe\r\n" +
		"\r\n" +
		".a line starting with a dot\r\n" +
		"last line\r\n"
	p.send(t, "alice+inbox@example.org", msg)

	md := filepath.Join(mail, "alice")
	deadline := time.Now().Add(45 * time.Second)
	for len(maildirFiles(t, md)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("Postfix did not deliver within 45s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	fi, err := os.Stat(maildirFiles(t, md)[0])
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != uid || fi.Mode().Perm() != 0o600 {
		t.Errorf("the message is uid %d mode %04o, want nobody's (%d) 0600", st.Uid, fi.Mode().Perm(), uid)
	}

	s.Start(t)
	c := dialPOP3(t, s.POP3)
	c.login("alice", "alice pw")
	c.cmd("+OK", "RETR 1")
	got := c.multi()
	c.cmd("+OK", "QUIT")
	re := regexp.MustCompile(`^Return-Path: <sender@example\.net>\r\n` +
		`Delivered-To: alice\+inbox@example\.org\r\n` +
		`Received: by \S+ \(postie\) with local id [0-9A-F]{16}\r\n` +
		`\tfor <alice\+inbox@example\.org>; [^\r\n]+\r\n` +
		`(Received: from client\.example\.net \([^\r\n]*\[127\.0\.0\.1\]\)\r\n(?:\t[^\r\n]*\r\n)*)` +
		`(?s)(.*)$`)
	m := re.FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("RETR 1 does not start with postie's and Postfix's trace fields:\n%s", got)
	}
	if m[2] != msg {
		t.Errorf("the message after the trace fields differs:\n got %q\nwant %q", m[2], msg)
	}
}
