package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// TestDovecotTakeover takes a real Dovecot's Maildirs and passwd-file over
// and hands them back: mail delivered through Dovecot's LMTP and as plain
// files, listed by Dovecot's POP3 server (which writes dovecot-uidlist);
// then Dovecot stopped and postie serve started, as the vmail user Dovecot
// runs as, on the same port, passwd-file (read as-is, homes included) and
// Maildirs (maildir_path = "%h/Maildir"): every message, matched by its
// content, has the UIDL and LIST size Dovecot gave it. The same after a
// restart with postie's own files deleted, and after a delivery through
// postie, which alone is new. Then postie stopped and Dovecot started
// again: it serves every message, postie's delivery included, the old ones
// under their old UIDLs, and every file in the Maildirs is vmail's.
func TestDovecotTakeover(t *testing.T) {
	for _, format := range []string{"%08Xu%08Xv", "%v.%u", "%g"} {
		t.Run(strings.ReplaceAll(format, "%", "pct"), func(t *testing.T) {
			testDovecotTakeover(t, format, "")
		})
	}
	// dovecot-uidlist in a control directory of its own (CONTROL=),
	// read there with dovecot_control_path: in .INBOX/ with Dovecot's
	// default layout, in INBOX/ with LAYOUT=fs.
	t.Run("control", func(t *testing.T) { testDovecotTakeover(t, "%08Xu%08Xv", ".INBOX") })
	t.Run("control-layout-fs", func(t *testing.T) { testDovecotTakeover(t, "%08Xu%08Xv", "INBOX") })
}

// testDovecotTakeover runs the takeover with Dovecot's UIDL format, and
// its control files in the Maildir (inbox "") or in a control directory
// (inbox: where Dovecot keeps INBOX's there, ".INBOX" or "INBOX" with
// LAYOUT=fs).
func testDovecotTakeover(t *testing.T, format string, inbox string) {
	control := inbox != ""
	dovecotControl, controlPath := "", ""
	if control {
		dovecotControl, controlPath = "~/control", "%h/control"
	}
	if inbox == "INBOX" {
		dovecotControl += ":LAYOUT=fs"
	}
	d := testenv.StartDovecotMailControl(t, 2, format, dovecotControl)
	uidlistPath := filepath.Join(d.Maildir("user1"), "dovecot-uidlist")
	if control {
		uidlistPath = filepath.Join(filepath.Dir(d.Maildir("user1")), "control", inbox, "dovecot-uidlist")
	}
	for i := 1; i <= 3; i++ {
		lmtpDeliver(t, d.LMTPAddr, "user1@example.org", fmt.Sprintf("From: a@example.net\r\nSubject: lmtp %d\r\n\r\nthrough Dovecot's LMTP, %d\r\n..dot-stuffed line\r\n", i, i))
	}
	lmtpDeliver(t, d.LMTPAddr, "user2@example.org", "Subject: for user2\r\n\r\nhello user2\r\n")
	d.DeliverFile(t, "user1", "1700000001.M1P1.mda.example", []byte("Subject: raw 1\n\nwritten by another MDA, LF line ends\n"))
	raw2 := "Subject: raw 2\r\n\r\nwith CRLF ends\r\n"
	d.DeliverFile(t, "user1", fmt.Sprintf("1700000002.M2P1.mda.example,S=%d", len(raw2)), []byte(raw2))

	users := map[string]string{"user1": "pass1", "user2": "pass2"}
	dovecot := map[string]map[string]listing{}
	for u, pw := range users {
		dovecot[u] = popListing(t, d.Addr, u, pw)
	}
	if len(dovecot["user1"]) != 5 || len(dovecot["user2"]) != 1 {
		t.Fatalf("Dovecot lists %d and %d messages, want 5 and 1", len(dovecot["user1"]), len(dovecot["user2"]))
	}
	if _, err := os.Stat(uidlistPath); err != nil {
		t.Fatalf("Dovecot wrote no dovecot-uidlist: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d.Maildir("user1"), "dovecot-uidlist")); control && err == nil {
		t.Fatal("Dovecot wrote dovecot-uidlist in the Maildir despite CONTROL=")
	}
	uidlist, _ := os.ReadFile(uidlistPath)
	// Clients that leave mail on the server, run against Dovecot first.
	var cl *keepClients
	if format == "%08Xu%08Xv" && !control {
		cl = newKeepClients(t, d.Addr, "user1", "pass1")
		cl.fetch(t, "from Dovecot", 5)
	}
	d.Stop(t)

	// postie as vmail: its binary and state where vmail can reach them.
	bin := filepath.Join(d.Root, "postie")
	copyFile(t, testenv.PostieBinary(t), bin, 0o755)
	state := filepath.Join(d.Root, "postie-state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(state, d.UID, d.GID)
	cfg := filepath.Join(d.Root, "etc", "postie.toml")
	writeTakeoverConfig(t, cfg, state, d.Addr, d.PasswdFile, filepath.Join(d.Root, "mail"), fmt.Sprintf(`maildir_path = "%%h/Maildir"
dovecot_uidl_format = %q
dovecot_control_path = %q
`, format, controlPath))
	asVmail := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(d.UID), Gid: uint32(d.GID)}}
	startPostie := func() *fixedPostie {
		t.Helper()
		return startFixedPostie(t, bin, cfg, asVmail)
	}
	same := func(when string) {
		t.Helper()
		for u, pw := range users {
			got := popListing(t, d.Addr, u, pw)
			for k, want := range dovecot[u] {
				if got[k] != want {
					t.Errorf("%s: %s: message %.12s: postie lists %+v, Dovecot listed %+v", when, u, k, got[k], want)
				}
			}
			if len(got) != len(dovecot[u]) {
				t.Errorf("%s: %s: postie lists %d messages, Dovecot listed %d", when, u, len(got), len(dovecot[u]))
			}
		}
	}

	s := startPostie()
	same("postie's first start")
	if cl != nil {
		cl.fetch(t, "from postie, nothing new", 0)
	}
	s.stop(t)
	side := filepath.Join(d.Maildir("user1"), "postie-uidls")
	if _, err := os.Stat(side); err != nil {
		t.Fatalf("postie recorded nothing: %v", err)
	}
	for _, f := range []string{"postie-uidls", "postie-sizes", "postie-index"} {
		os.Remove(filepath.Join(d.Maildir("user1"), f))
		os.Remove(filepath.Join(d.Maildir("user2"), f))
	}
	s = startPostie()
	same("postie restarted without its own files")
	if cl != nil {
		cl.fetch(t, "from postie restarted without its own files", 0)
	}

	// A delivery through postie: new, with a UIDL of its own; the rest
	// as before.
	postieDeliver(t, bin, cfg, asVmail, "user1", "Subject: through postie\n\ndelivered by postie deliver\n")
	after := popListing(t, d.Addr, "user1", "pass1")
	var newKey string
	for k, l := range after {
		if want, ok := dovecot["user1"][k]; ok {
			if l != want {
				t.Errorf("after a delivery: message %.12s: %+v, Dovecot listed %+v", k, l, want)
			}
			continue
		}
		if newKey != "" {
			t.Errorf("after a delivery: more than one new message")
		}
		newKey = k
		for _, old := range dovecot["user1"] {
			if old.uidl == l.uidl {
				t.Errorf("the new message has the UIDL %q of an old one", l.uidl)
			}
		}
	}
	if newKey == "" || len(after) != 6 {
		t.Fatalf("after a delivery through postie: %d messages, no new one", len(after))
	}
	if cl != nil {
		cl.fetch(t, "from postie after a delivery", 1)
		cl.fetch(t, "from postie again", 0)
	}
	s.stop(t)
	if b, _ := os.ReadFile(uidlistPath); string(b) != string(uidlist) {
		t.Errorf("postie changed dovecot-uidlist:\n%s\nwas\n%s", b, uidlist)
	}

	// Rollback: every file is vmail's, and Dovecot serves everything.
	for _, u := range []string{"user1", "user2"} {
		filepath.WalkDir(d.Maildir(u), func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				t.Error(err)
				return nil
			}
			fi, err := os.Lstat(p)
			if err == nil && (fi.Sys().(*syscall.Stat_t).Uid != uint32(d.UID) || fi.Sys().(*syscall.Stat_t).Gid != uint32(d.GID)) {
				t.Errorf("%s is not owned by vmail", p)
			}
			return nil
		})
	}
	d.Start(t)
	back := popListing(t, d.Addr, "user1", "pass1")
	for k, want := range dovecot["user1"] {
		if back[k] != want {
			t.Errorf("Dovecot again: message %.12s: %+v, listed before %+v", k, back[k], want)
		}
	}
	if l, ok := back[newKey]; !ok || l.size != after[newKey].size {
		t.Errorf("Dovecot again: postie's delivery listed %+v (%v), postie listed %+v", l, ok, after[newKey])
	}
	if t.Failed() {
		t.Logf("Dovecot log:\n%s", d.Log())
	}
}

// listing is what a POP3 server lists of one message.
type listing struct {
	uidl string
	size int
}

// popListing logs in to the POP3 server at addr and returns its UIDL and
// LIST size of every message, by the SHA-256 of the message as RETR sends
// it. It deletes nothing.
func popListing(t *testing.T, addr, user, password string) map[string]listing {
	t.Helper()
	p := dialPOP3(t, addr)
	p.login(user, password)
	p.cmd("+OK", "LIST")
	sizes := map[string]int{}
	for _, l := range strings.Split(strings.TrimSuffix(p.multi(), "\r\n"), "\r\n") {
		if l == "" {
			continue
		}
		n, sz, _ := strings.Cut(l, " ")
		size, err := strconv.Atoi(sz)
		if err != nil {
			t.Fatalf("LIST line %q", l)
		}
		sizes[n] = size
	}
	p.cmd("+OK", "UIDL")
	uidls := map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(p.multi(), "\r\n"), "\r\n") {
		if l == "" {
			continue
		}
		n, u, _ := strings.Cut(l, " ")
		uidls[n] = u
	}
	out := map[string]listing{}
	for n, size := range sizes {
		p.cmd("+OK", "RETR "+n)
		sum := sha256.Sum256([]byte(p.multi()))
		k := hex.EncodeToString(sum[:])
		if _, dup := out[k]; dup {
			t.Fatalf("%s: two messages with the same content", user)
		}
		out[k] = listing{uidl: uidls[n], size: size}
	}
	p.cmd("+OK", "QUIT")
	return out
}

// writeTakeoverConfig writes to path the configuration of a postie serve
// taking over another server's POP3 port addr, passwd-file and Maildirs
// under mailRoot, with state in dataDir and storage the rest of the
// [storage] section (what to take over and how).
func writeTakeoverConfig(t *testing.T, path, dataDir, addr, passwd, mailRoot, storage string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(fmt.Sprintf(`data_dir = %q
[pop3]
listen = [%q]
implementation = false
hostname = "test"
auth_fail_delay = "0s"
[lmtp]
listen = []
[auth]
passwd_file = %q
cache_ttl = "0s"
[storage]
maildir_root = %q
`, dataDir, addr, passwd, mailRoot)+storage), 0o644); err != nil {
		t.Fatal(err)
	}
}

// postieDeliver delivers msg to user with postie deliver from bin and
// config cfg, as attr says.
func postieDeliver(t *testing.T, bin, cfg string, attr *syscall.SysProcAttr, user, msg string) {
	t.Helper()
	deliver := exec.Command(bin, "deliver", "--config", cfg, user)
	deliver.Env = testenv.PostieEnv()
	deliver.SysProcAttr = attr
	deliver.Stdin = strings.NewReader(msg)
	if out, err := deliver.CombinedOutput(); err != nil {
		t.Fatalf("postie deliver: %v\n%s", err, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, mode); err != nil {
		t.Fatal(err)
	}
}

// keepClients are mpop, fetchmail and getmail6, each keeping mail on the
// server and fetching only what it has not seen by UIDL, with their own
// state.
type keepClients struct {
	dir        string
	host, port string
	user, pass string
	got        map[string]int // client → messages fetched so far
}

func newKeepClients(t *testing.T, addr, user, pass string) *keepClients {
	testenv.LookPath(t, "mpop")
	testenv.LookPath(t, "fetchmail")
	testenv.LookPath(t, "getmail")
	c := &keepClients{dir: t.TempDir(), user: user, pass: pass, got: map[string]int{}}
	c.host, c.port, _ = net.SplitHostPort(addr)
	for _, sub := range []string{"cur", "new", "tmp"} {
		os.MkdirAll(filepath.Join(c.dir, "mpop", sub), 0o700)
	}
	os.WriteFile(filepath.Join(c.dir, "pass"), []byte(pass), 0o600)
	rc := fmt.Sprintf("set idfile %q\npoll %s protocol pop3 port %s uidl auth password\n  user %q password %q keep sslproto '' no sslcertck\n  mda \"cat >> %s\"\n",
		filepath.Join(c.dir, "fetchids"), c.host, c.port, user, pass, filepath.Join(c.dir, "fetchmail.mbox"))
	os.WriteFile(filepath.Join(c.dir, "fetchmailrc"), []byte(rc), 0o600)
	md := filepath.Join(c.dir, "getmail")
	rc = fmt.Sprintf(`[retriever]
type = SimplePOP3Retriever
server = %s
port = %s
username = %s
password = %s
timeout = 20

[destination]
type = Maildir
path = %s/
%s
[options]
read_all = false
delete = false
verbose = 0
`, c.host, c.port, user, pass, md, getmailMaildir(t, md))
	os.WriteFile(filepath.Join(c.dir, "getmailrc"), []byte(rc), 0o600)
	return c
}

// fetch runs the clients and checks that each fetched want messages.
func (c *keepClients) fetch(t *testing.T, when string, want int) {
	t.Helper()
	run(t, []string{"HOME=" + c.dir}, "mpop", "-C", "/dev/null", "--host="+c.host, "--port="+c.port,
		"--tls=off", "--auth=user", "--user="+c.user, "--passwordeval=cat "+filepath.Join(c.dir, "pass"),
		"--keep=on", "--only-new=on", "--uidls-file="+filepath.Join(c.dir, "mpop-uidls"),
		"--delivery=maildir,"+filepath.Join(c.dir, "mpop"), "--received-header=off", "--quiet")
	files, _ := filepath.Glob(filepath.Join(c.dir, "mpop", "new", "*"))
	if n := len(files) - c.got["mpop"]; n != want {
		t.Errorf("%s: mpop fetched %d messages, want %d", when, n, want)
	}
	c.got["mpop"] = len(files)

	cmd := exec.Command("fetchmail", "-f", filepath.Join(c.dir, "fetchmailrc"), "--nodetach", "--nosyslog", "-s")
	cmd.Env = append(os.Environ(), "HOME="+c.dir, "FETCHMAILHOME="+c.dir)
	out, err := cmd.CombinedOutput()
	// Exit 1: no mail.
	if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
		t.Fatalf("%s: fetchmail: %v\n%s", when, err, out)
	}
	mbox, _ := os.ReadFile(filepath.Join(c.dir, "fetchmail.mbox"))
	total := strings.Count("\n"+string(mbox), "\nSubject: ")
	if n := total - c.got["fetchmail"]; n != want {
		t.Errorf("%s: fetchmail fetched %d messages, want %d\n%s", when, n, want, out)
	}
	c.got["fetchmail"] = total

	runGetmail(t, c.dir, filepath.Join(c.dir, "getmailrc"))
	files, _ = filepath.Glob(filepath.Join(c.dir, "getmail", "new", "*"))
	if n := len(files) - c.got["getmail"]; n != want {
		t.Errorf("%s: getmail fetched %d messages, want %d", when, n, want)
	}
	c.got["getmail"] = len(files)
}

// fixedPostie is a postie serve the test runs itself, on a fixed port.
type fixedPostie struct {
	cmd    *exec.Cmd
	stderr syncBuffer
	done   chan struct{}
}

// startFixedPostie runs postie serve from bin with config cfg (listening
// where the config says, e.g. on the port of the server it takes over
// from, which testenv.Postie does not allow), as attr says, until the test
// ends; it returns once postie has started.
func startFixedPostie(t *testing.T, bin, cfg string, attr *syscall.SysProcAttr) *fixedPostie {
	t.Helper()
	p := &fixedPostie{done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--config", cfg)
	p.cmd.Env = testenv.PostieEnv()
	p.cmd.SysProcAttr = attr
	p.cmd.Stderr = &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("postie serve stderr:\n%s", p.stderr.String())
		}
	})
	for !strings.Contains(p.stderr.String(), `msg="postie started"`) {
		select {
		case <-p.done:
			t.Fatalf("postie serve exited before it started:\n%s", p.stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return p
}

// stop ends it with SIGTERM and waits until it has exited.
func (p *fixedPostie) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	<-p.done
	if !p.cmd.ProcessState.Success() {
		t.Errorf("postie serve: %v after SIGTERM", p.cmd.ProcessState)
	}
}
