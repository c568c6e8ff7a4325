// Package deb_test installs the Debian package that build.sh makes on
// this machine and runs it as the service would: it needs root, dpkg and
// systemd-socket-activate, and is skipped without them (failing instead
// when peers are required, as under CI=true). It refuses to run where
// postie is installed already. Outside CI it runs only with
// POSTIE_PACKAGE_TEST=1, since it changes the machine.
package deb_test

import (
	"bufio"
	"fmt"
	"net"
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

// run runs a command as root and returns its stdout; a failure ends the
// test with its output.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env()
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// env is ours without POSTIE_CONFIG: the package's default config file
// must be the one read.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTIE_CONFIG=") && !strings.HasPrefix(kv, "NOTIFY_SOCKET=") {
			out = append(out, kv)
		}
	}
	return out
}

// dpkg runs dpkg as root and returns what it printed, stdout and stderr
// together as on a terminal; a failure ends the test with it.
func dpkg(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command("dpkg", args...)
	cmd.Env = env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dpkg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// checkWarning is the first line postinst prints when postie config
// check finds something.
const checkWarning = "postie: warning: postie config check finds problems in /etc/postie/postie.toml:\n"

func statOf(t *testing.T, path string) string {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	owner, group := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	if g, err := user.LookupGroupId(group); err == nil {
		group = g.Name
	}
	return fmt.Sprintf("%s:%s %04o", owner, group, fi.Mode().Perm())
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// installed is the version dpkg has of postie, "" for none.
func installed() string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${db:Status-Abbrev} ${Version}", "postie").Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) != 2 || f[0] != "ii" {
		return ""
	}
	return f[1]
}

func TestPackage(t *testing.T) {
	// It installs and purges a package on this machine: only where that
	// is the point (CI's throwaway machine) or asked for.
	if !testenv.Required() && os.Getenv("POSTIE_PACKAGE_TEST") != "1" {
		t.Skip("installs a Debian package on this machine: runs under CI=true or with POSTIE_PACKAGE_TEST=1")
	}
	for _, tool := range []string{"dpkg", "dpkg-deb", "adduser", "systemd-socket-activate", "go", "git"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Missing(t, "%s: %v", tool, err)
		}
	}
	if os.Geteuid() != 0 {
		testenv.Missing(t, "installing a package needs root")
	}
	if v := installed(); v != "" || exists("/etc/postie") || exists("/var/lib/postie") {
		t.Skipf("postie is installed on this machine (%q, or /etc/postie or /var/lib/postie exist): not replacing it", v)
	}
	_, hadAccount := user.Lookup("postie")
	t.Cleanup(func() {
		// Leave the machine as it was, even after a failure.
		exec.Command("dpkg", "--purge", "postie").Run()
		if hadAccount != nil {
			exec.Command("deluser", "--system", "--quiet", "postie").Run()
			exec.Command("delgroup", "--system", "--quiet", "postie").Run()
		}
	})

	out := t.TempDir()
	build := func(version string) string {
		t.Helper()
		cmd := exec.Command("./build.sh", out)
		cmd.Env = append(env(), "VERSION="+version, "SOURCE_DATE_EPOCH=1796601600")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("build.sh: %v\n%s", err, b)
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		return lines[len(lines)-1]
	}
	deb1 := build("0.0.0~test1")
	deb2 := build("0.0.0~test2")

	// Install: the package's own config passes postie config check,
	// which postinst runs, so dpkg prints no warning.
	if out := dpkg(t, "--install", deb1); strings.Contains(out, "postie: warning:") {
		t.Errorf("a new install warns:\n%s", out)
	}
	checkVersion(t, "0.0.0~test1")
	pw, err := user.Lookup("postie")
	if err != nil {
		t.Fatalf("no postie account after install: %v", err)
	}
	uid, _ := strconv.Atoi(pw.Uid)
	gid, _ := strconv.Atoi(pw.Gid)
	for path, want := range map[string]string{
		"/etc/postie/postie.toml": "root:postie 0640",
		"/etc/postie/passwd":      "root:postie 0640",
		"/var/lib/postie":         "postie:postie 0700",
		"/usr/bin/postie":         "root:root 0755",
	} {
		if got := statOf(t, path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
	for _, f := range []string{"/usr/share/man/man8/postie.8.gz", "/usr/share/bash-completion/completions/postie",
		"/lib/systemd/system/postie.service", "/lib/systemd/system/postie-pop3.socket", "/lib/systemd/system/postie-lmtp.socket",
		"/lib/systemd/system/postie-pop3s.socket", "/lib/systemd/system/postie-fetch@.service"} {
		if !exists(f) {
			t.Errorf("%s not installed", f)
		}
	}
	if got := run(t, "", "dpkg-query", "-W", "-f=${Conffiles}", "postie"); !strings.Contains(got, "/etc/postie/postie.toml ") {
		t.Errorf("conffiles: %q, want /etc/postie/postie.toml", got)
	}
	if got := run(t, "", "bash", "-c", "source /usr/share/bash-completion/completions/postie && type -t __start_postie"); got != "function\n" {
		t.Errorf("bash completion defines no __start_postie: %q", got)
	}

	// Users are added as root with the package's config; the file keeps
	// its owner and mode.
	run(t, "alice pw\n", "/usr/bin/postie", "user", "add", "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	if got := statOf(t, "/etc/postie/passwd"); got != "root:postie 0640" {
		t.Errorf("passwd after user add: %s", got)
	}

	// Serve as the unit does, deliver as the MTA would, read over POP3.
	s := startUnit(t, uid, gid)
	deliverAsPostie(t, uid, gid, "Subject: one\n\nfirst\n")
	lmtp(t, s.lmtp, "Subject: two\r\n\r\nsecond\r\n")
	readMail(t, s.pop3, "second\r\n")
	s.stop(t)
	maildir := "/var/lib/postie/mail/alice"
	if got := statOf(t, maildir); got != "postie:postie 0700" {
		t.Errorf("%s: %s", maildir, got)
	}

	// Upgrade to a rebuilt package: mail, users and the admin's change to
	// the conffile are kept.
	f, err := os.OpenFile("/etc/postie/postie.toml", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(f, "# changed by the admin")
	f.Close()
	// A fault postie config check knows (the passwd-file readable by
	// every user, an error: exit 78): postinst shows it as a warning in
	// dpkg's output, and the upgrade succeeds all the same.
	if err := os.Chmod("/etc/postie/passwd", 0o644); err != nil {
		t.Fatal(err)
	}
	out2 := dpkg(t, "--force-confold", "--install", deb2)
	checkVersion(t, "0.0.0~test2")
	want := checkWarning + "  error: auth.passwd_file: /etc/postie/passwd (root:postie 0644) is readable by every user and holds password hashes: chmod o-rwx\n"
	if !strings.Contains(out2, want) || !strings.Contains(out2, "postie: warning: the package is configured all the same; fix them, then run: postie config check\n") {
		t.Errorf("dpkg's output of the upgrade lacks the warning %q:\n%s", want, out2)
	}
	if b, _ := os.ReadFile("/etc/postie/postie.toml"); !strings.HasSuffix(string(b), "# changed by the admin\n") {
		t.Error("the upgrade lost the admin's change to postie.toml")
	}
	// postinst reports the admin's file, it does not change it.
	if got := statOf(t, "/etc/postie/passwd"); got != "root:postie 0644" {
		t.Errorf("passwd after the upgrade: %s", got)
	}
	if err := os.Chmod("/etc/postie/passwd", 0o640); err != nil {
		t.Fatal(err)
	}
	// Reinstalling the same version runs postinst again: clean now.
	if out := dpkg(t, "--force-confold", "--install", deb2); strings.Contains(out, "postie: warning:") {
		t.Errorf("a reinstall with the fault fixed warns:\n%s", out)
	}
	s = startUnit(t, uid, gid)
	readMail(t, s.pop3, "second\r\n")
	s.stop(t)

	// Remove keeps mail, users and config; purge removes them.
	run(t, "", "dpkg", "--remove", "postie")
	if exists("/usr/bin/postie") || exists("/lib/systemd/system/postie.service") {
		t.Error("dpkg --remove left the binary or the unit")
	}
	for _, p := range []string{"/etc/postie/postie.toml", "/etc/postie/passwd", "/var/lib/postie/scram-secret"} {
		if !exists(p) {
			t.Errorf("dpkg --remove removed %s", p)
		}
	}
	if n := countMail(t, maildir); n != 2 {
		t.Errorf("%d messages left after dpkg --remove, want 2", n)
	}
	run(t, "", "dpkg", "--purge", "postie")
	for _, p := range []string{"/etc/postie", "/var/lib/postie"} {
		if exists(p) {
			t.Errorf("dpkg --purge left %s", p)
		}
	}
	if v := installed(); v != "" {
		t.Errorf("postie %s still installed after purge", v)
	}
}

// checkVersion: the package's version is the binary's.
func checkVersion(t *testing.T, want string) {
	t.Helper()
	if got := installed(); got != want {
		t.Errorf("dpkg has postie %q, want %q", got, want)
	}
	line := run(t, "", "/usr/bin/postie", "version")
	re := `^postie ` + regexp.QuoteMeta(want) + ` \(commit [0-9a-f]{40}(-dirty)?, built 2026-12-07T00:00:00Z, go\S+ linux/\w+\)\n$`
	if !regexp.MustCompile(re).MatchString(line) {
		t.Errorf("postie version = %q, want it to match %s", line, re)
	}
	if v := run(t, "", "/usr/bin/postie", "--version"); v != line {
		t.Errorf("postie --version = %q, postie version = %q", v, line)
	}
}

func countMail(t *testing.T, maildir string) int {
	t.Helper()
	n := 0
	for _, sub := range []string{"new", "cur"} {
		m, err := filepath.Glob(filepath.Join(maildir, sub, "*"))
		if err != nil {
			t.Fatal(err)
		}
		n += len(m)
	}
	return n
}

// unit is `postie serve` started as postie.service would start it.
type unit struct {
	cmd        *exec.Cmd
	pop3, lmtp string
	stderr     *lockedBuffer
	done       chan error
}

// lockedBuffer is testenv.SyncBuffer under this package's old name.
type lockedBuffer = testenv.SyncBuffer

// startUnit runs the ExecStart line of the installed postie.service as
// User=postie, Group=postie, with its POP3 and LMTP sockets passed in by
// name as postie-pop3.socket and postie-lmtp.socket do, on free ports
// (systemd-socket-activate stands in for systemd, which is not PID 1
// here).
func startUnit(t *testing.T, uid, gid int) *unit {
	t.Helper()
	b, err := os.ReadFile("/lib/systemd/system/postie.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^ExecStart=(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("postie.service has no ExecStart")
	}
	u := &unit{
		pop3:   "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)),
		lmtp:   "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)),
		stderr: &lockedBuffer{},
		done:   make(chan error, 1),
	}
	args := append([]string{"-l", u.pop3, "-l", u.lmtp, "--fdname=pop3:lmtp"}, strings.Fields(string(m[1]))...)
	u.cmd = exec.Command("systemd-socket-activate", args...)
	u.cmd.Env = env()
	u.cmd.Dir = "/"
	u.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	u.cmd.Stderr = u.stderr
	if err := u.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { u.done <- u.cmd.Wait() }()
	t.Cleanup(func() {
		u.cmd.Process.Kill()
		if t.Failed() {
			t.Logf("postie serve stderr:\n%s", u.stderr.String())
		}
	})
	// Connections are refused until systemd-socket-activate has bound
	// its sockets (postie itself starts at the first connection).
	for !strings.Contains(u.stderr.String(), "Listening on "+u.lmtp+" ") {
		select {
		case err := <-u.done:
			t.Fatalf("systemd-socket-activate exited: %v\n%s", err, u.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return u
}

// stop ends the service as systemctl stop does (SIGTERM) and wants exit 0.
func (u *unit) stop(t *testing.T) {
	t.Helper()
	u.cmd.Process.Signal(syscall.SIGTERM)
	if err := <-u.done; err != nil {
		t.Errorf("postie serve exited with %v after SIGTERM\n%s", err, u.stderr.String())
	}
}

// deliverAsPostie runs `postie deliver alice` as the postie user, as a
// Postfix pipe transport with user=postie does.
func deliverAsPostie(t *testing.T, uid, gid int, msg string) {
	t.Helper()
	cmd := exec.Command("/usr/bin/postie", "deliver", "-f", "bob@example.net", "alice")
	cmd.Env = env()
	cmd.Dir = "/"
	cmd.Stdin = strings.NewReader(msg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("postie deliver as postie: %v\n%s", err, out)
	}
}

type conn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(time.Minute)) // a hang guard, not a bound
	return &conn{t, c, bufio.NewReader(c)}
}

func (c *conn) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	return l
}

func (c *conn) cmd(line, want string) string {
	c.t.Helper()
	if line != "" {
		fmt.Fprintf(c.c, "%s\r\n", line)
	}
	r := c.line()
	if !strings.HasPrefix(r, want) {
		c.t.Fatalf("%q: reply %q, want %s", line, r, want)
	}
	return r
}

// lmtp delivers msg (CRLF) to alice over LMTP.
func lmtp(t *testing.T, addr, msg string) {
	t.Helper()
	c := dial(t, addr)
	c.cmd("", "220 ")
	fmt.Fprintf(c.c, "LHLO test\r\n")
	for !strings.HasPrefix(c.line(), "250 ") {
	}
	c.cmd("MAIL FROM:<bob@example.net>", "250 ")
	c.cmd("RCPT TO:<alice@localhost>", "250 ")
	c.cmd("DATA", "354 ")
	c.cmd(msg+".", "250 ")
	c.cmd("QUIT", "221 ")
}

// readMail logs in as alice, wants two messages, the second ending in
// body, and quits without deleting.
func readMail(t *testing.T, addr, body string) {
	t.Helper()
	c := dial(t, addr)
	c.cmd("", "+OK")
	c.cmd("USER alice", "+OK")
	c.cmd("PASS alice pw", "+OK")
	if r := c.cmd("STAT", "+OK"); !strings.HasPrefix(r, "+OK 2 ") {
		t.Errorf("STAT = %q, want 2 messages", r)
	}
	c.cmd("RETR 2", "+OK")
	var msg strings.Builder
	for {
		l := c.line()
		if l == ".\r\n" {
			break
		}
		msg.WriteString(strings.TrimPrefix(l, "."))
	}
	if !strings.HasSuffix(msg.String(), "\r\n\r\n"+body) {
		t.Errorf("RETR 2 = %q, want it to end in %q", msg.String(), body)
	}
	c.cmd("QUIT", "+OK")
}
