package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// rootSetup is a data directory laid out as docs/operations.md says,
// for an unprivileged account (nobody): a config file and a passwd-file
// root:<group> 0640 in a root-owned directory, and a data directory that
// does not exist yet.
type rootSetup struct {
	dir, cfg, passwd, data, sock string
	uid, gid                     int
	user, group                  string
}

func newRootSetup(t *testing.T, serverSection string) *rootSetup {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no nobody account: %v", err)
	}
	g, err := user.LookupGroupId(nobody.Gid)
	if err != nil {
		t.Skipf("nobody's group: %v", err)
	}
	s := &rootSetup{dir: t.TempDir(), user: "nobody", group: g.Name}
	s.uid, _ = strconv.Atoi(nobody.Uid)
	s.gid, _ = strconv.Atoi(nobody.Gid)
	// The account must be able to reach its files: t.TempDir and its
	// parent are 0700.
	for _, d := range []string{filepath.Dir(s.dir), s.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	etc := filepath.Join(s.dir, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	s.passwd = filepath.Join(etc, "passwd")
	s.data = filepath.Join(s.dir, "lib", "postie")
	s.sock = filepath.Join(s.dir, "run", "lmtp.sock")
	s.cfg = filepath.Join(etc, "postie.toml")
	for path, content := range map[string]string{
		s.passwd: "",
		s.cfg: fmt.Sprintf(`data_dir = %q
[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[auth]
passwd_file = %q
default_scheme = "SHA512-CRYPT"
[lmtp]
listen = ["unix:%s"]
%s`, s.data, s.passwd, s.sock, serverSection),
	} {
		if err := os.WriteFile(path, []byte(content), 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 0, s.gid); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// procStatus returns the Uid, Gid and Groups lines of /proc/<pid>/status.
func procStatus(t *testing.T, pid int) string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for l := range strings.Lines(string(b)) {
		if f := strings.Fields(l); len(f) > 0 && (f[0] == "Uid:" || f[0] == "Gid:" || f[0] == "Groups:") {
			out = append(out, strings.Join(f, " "))
		}
	}
	return strings.Join(out, "\n")
}

// TestServeDropsRoot starts `postie serve` as root with server.user: it
// binds its listeners (a unix LMTP socket too) and runs as the account,
// without supplementary groups, from then on. Mail delivered by `postie
// deliver` as the account (as an MTA runs it), by deliver as root (which
// switches) and over LMTP is read over POP3, and every file the server
// and deliver made belongs to the account. `postie user` as root keeps
// the passwd-file root:<group> 0640.
func TestServeDropsRoot(t *testing.T) {
	t.Parallel()
	su := newRootSetup(t, "[server]\nuser = \"nobody\"\n")

	mustPostie(t, 0, "alice pw\n", "user", "add", "--config", su.cfg, "--password-stdin", "alice")
	if fi, err := os.Stat(su.passwd); err != nil {
		t.Fatal(err)
	} else if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o640 || st.Uid != 0 || int(st.Gid) != su.gid {
		t.Fatalf("passwd-file after user add: %v %d:%d; want 0640 0:%d", fi.Mode().Perm(), st.Uid, st.Gid, su.gid)
	}

	s := startProc(t, testenv.PostieBinary(t), "serve", "--config", su.cfg)
	s.waitFor(t, `msg="postie started"`)
	addr := s.waitFor(t, `msg=listening proto=pop3 addr=(\S+)`)[1]
	want := fmt.Sprintf("Uid: %[1]d %[1]d %[1]d %[1]d\nGid: %[2]d %[2]d %[2]d %[2]d\nGroups:", su.uid, su.gid)
	if got := procStatus(t, s.cmd.Process.Pid); got != want {
		t.Errorf("/proc/<pid>/status of serve:\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(s.stderr.String(), fmt.Sprintf(`msg="switched user" user=nobody uid=%d group=%s gid=%d`, su.uid, su.group, su.gid)) {
		t.Errorf("no switched-user log line:\n%s", s.stderr.String())
	}

	// deliver as the account, as an MTA's pipe(8) with user=postie runs it.
	// (The test binary's directory is 0700: a copy the account can run.)
	bin := filepath.Join(su.dir, "postie")
	if b, err := os.ReadFile(testenv.PostieBinary(t)); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "deliver", "--config", su.cfg, "alice")
	cmd.Env = testenv.PostieEnv()
	cmd.Stdin = strings.NewReader(testMessage)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(su.uid), Gid: uint32(su.gid)}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deliver as %s: %v\n%s", su.user, err, out)
	}
	maildir := filepath.Join(su.data, "mail", "alice")
	want1 := wireForm(storedMessage(t, maildir, "alice", testMessage))
	// deliver as root switches to server.user.
	mustPostie(t, 0, "Subject: two\n\nsecond\n", "deliver", "--config", su.cfg, "alice")
	lmtpDeliver(t, "unix:"+su.sock, "alice@example.org", "Subject: three\r\n\r\nthird\r\n")

	var owners []string
	filepath.WalkDir(su.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, err := d.Info()
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != su.uid || int(st.Gid) != su.gid {
			owners = append(owners, fmt.Sprintf("%s %d:%d", path, st.Uid, st.Gid))
		}
		return nil
	})
	if len(owners) > 0 {
		t.Errorf("files not owned by %d:%d:\n%s", su.uid, su.gid, strings.Join(owners, "\n"))
	}
	if fi, err := os.Stat(su.sock); err != nil {
		t.Error(err)
	} else if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != su.uid {
		t.Errorf("LMTP socket owned by %d, want %d", st.Uid, su.uid)
	}

	p := dialPOP3(t, addr)
	p.login("alice", "alice pw")
	if r := p.cmd("+OK", "STAT"); !strings.HasPrefix(r, "+OK 3 ") {
		t.Errorf("STAT = %q, want 3 messages", r)
	}
	p.cmd("+OK", "RETR 1")
	if got := p.multi(); got != want1 {
		t.Errorf("RETR 1 = %q, want %q", got, want1)
	}
	for i, body := range []string{"second\r\n", "third\r\n"} {
		p.cmd("+OK", fmt.Sprintf("RETR %d", i+2))
		if got := p.multi(); !strings.HasSuffix(got, "\r\n\r\n"+body) {
			t.Errorf("RETR %d = %q, want it to end in %q", i+2, got, body)
		}
	}
	p.cmd("+OK", "QUIT")
	s.stop(t, syscall.SIGTERM)
}

// TestServeRefusesRoot: as root without server.user, serve exits 78
// naming the key, before binding anything; an unknown account is refused
// the same way.
func TestServeRefusesRoot(t *testing.T) {
	t.Parallel()
	su := newRootSetup(t, "")
	r := mustPostie(t, 78, "", "serve", "--config", su.cfg)
	if want := "postie: refusing to serve as root: set server.user (and server.group) in the config file"; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q; want it to start %q", r.stderr, want)
	}
	if _, err := os.Lstat(su.sock); err == nil {
		t.Error("the LMTP socket was made before the refusal")
	}
	if _, err := os.Stat(su.data); err == nil {
		t.Error("the data directory was made before the refusal")
	}

	su = newRootSetup(t, "[server]\nuser = \"no-such-user-postie\"\n")
	r = mustPostie(t, 78, "", "serve", "--config", su.cfg)
	if want := `postie: server.user: user "no-such-user-postie": `; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q; want it to start %q", r.stderr, want)
	}
	su = newRootSetup(t, "[server]\nuser = \"nobody\"\ngroup = \"no-such-group-postie\"\n")
	r = mustPostie(t, 78, "", "serve", "--config", su.cfg)
	if want := `postie: server.user/server.group: group "no-such-group-postie": `; !strings.HasPrefix(r.stderr, want) {
		t.Errorf("stderr %q; want it to start %q", r.stderr, want)
	}
	su = newRootSetup(t, "[server]\ngroup = \"nogroup\"\n")
	r = mustPostie(t, 78, "", "serve", "--config", su.cfg)
	if !strings.Contains(r.stderr, "server.group: needs server.user") {
		t.Errorf("stderr %q; want server.group: needs server.user", r.stderr)
	}
}

// TestServeTLSFileErrors: a certificate or key that cannot be read is
// reported with its config key; one the account cannot read after the
// switch says which uid must read it.
func TestServeTLSFileErrors(t *testing.T) {
	t.Parallel()
	su := newRootSetup(t, "[server]\nuser = \"nobody\"\n")
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cert, key := filepath.Join(su.dir, "etc", "cert.pem"), filepath.Join(su.dir, "etc", "key.pem")
	if err := os.WriteFile(cert, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, keyPEM, 0o600); err != nil { // root's only
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(su.cfg)
	if err != nil {
		t.Fatal(err)
	}
	write := func(certFile, keyFile string) {
		t.Helper()
		b := append(append([]byte(nil), cfg...), fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile)...)
		if err := os.WriteFile(su.cfg, b, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(su.dir, "missing.pem"), key)
	r := mustPostie(t, 78, "", "serve", "--config", su.cfg)
	if want := "postie: tls.cert_file: open " + filepath.Join(su.dir, "missing.pem") + ": no such file or directory\n"; !strings.HasSuffix(r.stderr, want) {
		t.Errorf("stderr %q; want it to end %q", r.stderr, want)
	}
	write(cert, key)
	r = mustPostie(t, 78, "", "serve", "--config", su.cfg)
	want := fmt.Sprintf("postie: tls.key_file: open %s: permission denied (it must be readable by uid %d, gid %d, which postie serve runs as: see docs/operations.md)\n", key, su.uid, su.gid)
	if !strings.HasSuffix(r.stderr, want) {
		t.Errorf("stderr %q; want it to end %q", r.stderr, want)
	}
}
