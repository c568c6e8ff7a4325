package main

import (
	"net/http"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// adminLogin posts the /admin login form of w and returns the status and
// the page it leads to.
func adminLogin(w *webClient, name, password string) (int, string) {
	return w.submit("/admin", "/admin/login", url.Values{"user": {name}, "password": {password}})
}

func loggedInAs(body string) string {
	_, rest, ok := strings.Cut(body, `<strong id="who">`)
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "<")
	return name
}

// TestUserAdminCommands: `postie user add|passwd|del|list --admin` keep
// web.admin_passwd_file, and the running serve's /admin (real HTTPS on
// loopback, the session cookie and CSRF token as a browser sends them)
// takes what they write: the admin made by the CLI logs in, a wrong
// password does not, a changed password and a deleted admin take effect
// at SIGHUP (the deleted admin's open session ends too).
func TestUserAdminCommands(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	webCert(t, dir, "mail.example.org")
	admins := filepath.Join(dir, "admins")
	p := testenv.NewPostie(t, testenv.PostieOptions{Dir: dir, Config: `[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[lmtp]
listen = ["127.0.0.1:0"]
[auth]
cache_ttl = "0s"
default_scheme = "SHA512-CRYPT"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[web]
listen = ["127.0.0.1:0"]
admin_passwd_file = "admins"
`})
	run := func(want int, stdin string, args ...string) testenv.PostieResult {
		t.Helper()
		r := p.Run(t, stdin, args...)
		if r.Code != want {
			t.Fatalf("postie %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, want, r.Stdout, r.Stderr)
		}
		return r
	}

	// Bad input: refused with its own exit code, and no file is made.
	for _, c := range []struct {
		code        int
		stdin, name string
		stderr      string
	}{
		{65, "admin-password-1\n", "../evil", "user add:"},
		{65, "admin-password-1\n", "#x", "starts with '#'"},
		{65, "admin-password-1\n", "a:b", "user add:"},
		{65, "\n", "root", "empty password"},
		{65, "", "root", "no password on stdin"},
	} {
		r := run(c.code, c.stdin, "user", "add", "--admin", "--password-stdin", c.name)
		if !strings.Contains(r.Stderr, c.stderr) {
			t.Errorf("user add --admin %q: stderr %q, want %q", c.name, r.Stderr, c.stderr)
		}
		if _, err := os.Lstat(admins); err == nil {
			t.Fatalf("user add --admin %q (refused) made %s", c.name, admins)
		}
	}
	run(64, "admin-password-1\n", "user", "add", "--admin", "--password-stdin", "--scheme", "ROT13", "root")
	run(67, "x\n", "user", "passwd", "--admin", "--password-stdin", "root")
	run(67, "", "user", "del", "--admin", "root")
	// Without a terminal, the password comes from --password-stdin only.
	if r := run(64, "admin-password-1\nadmin-password-1\n", "user", "add", "--admin", "root"); !strings.Contains(r.Stderr, "--password-stdin") {
		t.Errorf("user add --admin without a terminal: stderr %q", r.Stderr)
	}

	r := run(0, "admin-password-1\n", "user", "add", "--admin", "--password-stdin", "root")
	if want := `postie: added web admin "root" to ` + admins + "\n"; r.Stderr != want {
		t.Errorf("user add --admin: stderr %q, want %q", r.Stderr, want)
	}
	run(0, "ops-password-1\n", "user", "add", "--admin", "--password-stdin", "ops")
	if r := run(1, "x\n", "user", "add", "--admin", "--password-stdin", "ROOT"); !strings.Contains(r.Stderr, `web admin "ROOT" already exists`) {
		t.Errorf("user add --admin of a taken name: stderr %q", r.Stderr)
	}
	fi, err := os.Stat(admins)
	if err != nil {
		t.Fatal(err)
	}
	// testenv sets [server] user = "root" when the tests run as root:
	// the file is then for serve's group (TestUserAdminFileAsRoot).
	if want := map[bool]os.FileMode{false: 0o600, true: 0o640}[os.Geteuid() == 0]; fi.Mode().Perm() != want {
		t.Errorf("%s: mode %04o, want %04o", admins, fi.Mode().Perm(), want)
	}
	data, err := os.ReadFile(admins)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "root:{SHA512-CRYPT}$6$") || !strings.Contains(string(data), "\nops:{SHA512-CRYPT}$6$") {
		t.Errorf("admins file, want root and ops in auth.default_scheme:\n%s", data)
	}
	if strings.Contains(string(data), "password-1") {
		t.Error("the admins file holds a clear-text password")
	}
	if r := run(0, "", "user", "list", "--admin"); r.Stdout != "ops\nroot\n" {
		t.Errorf("user list --admin = %q", r.Stdout)
	}
	if r := run(0, "", "user", "list"); r.Stdout != "" {
		t.Errorf("user list (the mail users) = %q: the admins are not mail users", r.Stdout)
	}

	p.Start(t)
	web := newWebClient(t, p.Web, filepath.Join(dir, "cert.pem"))
	if code, body := adminLogin(web, "root", "admin-password-2"); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") {
		t.Errorf("a wrong password: %d\n%s", code, body)
	}
	if code, body := adminLogin(web, "root", "admin-password-1"); code != http.StatusOK || loggedInAs(body) != "root" {
		t.Fatalf("the admin made by user add --admin: %d, logged in as %q\n%s", code, loggedInAs(body), body)
	}
	opsWeb := newWebClient(t, p.Web, filepath.Join(dir, "cert.pem"))
	if _, body := adminLogin(opsWeb, "ops", "ops-password-1"); loggedInAs(body) != "ops" {
		t.Fatalf("ops not logged in:\n%s", body)
	}

	// A changed password, at SIGHUP.
	run(0, "admin-password-3\n", "user", "passwd", "--admin", "--password-stdin", "root")
	p.Signal(t, syscall.SIGHUP)
	p.WaitLog(t, `msg="web admins reloaded" admins=2`)
	if code, _ := adminLogin(newWebClient(t, p.Web, filepath.Join(dir, "cert.pem")), "root", "admin-password-1"); code != http.StatusUnauthorized {
		t.Errorf("the old password after user passwd --admin: %d", code)
	}
	if _, body := adminLogin(newWebClient(t, p.Web, filepath.Join(dir, "cert.pem")), "root", "admin-password-3"); loggedInAs(body) != "root" {
		t.Errorf("the new password after user passwd --admin refused:\n%s", body)
	}

	// A deleted admin: refused, and the open session ends.
	r = run(0, "", "user", "del", "--admin", "ops")
	if want := `postie: deleted web admin "ops" from ` + admins + "\n"; r.Stderr != want {
		t.Errorf("user del --admin: stderr %q, want %q", r.Stderr, want)
	}
	p.Signal(t, syscall.SIGHUP)
	p.WaitLog(t, `msg="web admins reloaded" admins=1`)
	if _, body := opsWeb.page("/admin"); loggedInAs(body) != "" || !strings.Contains(body, `action="/admin/login"`) {
		t.Errorf("the deleted admin's session goes on:\n%s", body)
	}
	p.WaitLog(t, `msg="web: admin session ended: no longer an admin" admin=ops`)
	if code, _ := adminLogin(newWebClient(t, p.Web, filepath.Join(dir, "cert.pem")), "ops", "ops-password-1"); code != http.StatusUnauthorized {
		t.Errorf("the deleted admin logs in: %d", code)
	}
	if _, body := web.page("/admin"); loggedInAs(body) != "root" {
		t.Errorf("root's session ended with ops's")
	}

	// The last admin stays.
	if r := run(1, "", "user", "del", "--admin", "root"); !strings.Contains(r.Stderr, "last web admin") {
		t.Errorf("user del --admin of the last admin: stderr %q", r.Stderr)
	}
	if r := run(0, "", "user", "list", "--admin"); r.Stdout != "root\n" {
		t.Errorf("user list --admin = %q", r.Stdout)
	}
	for _, secret := range []string{"admin-password", "ops-password"} {
		if strings.Contains(p.Log(), secret) {
			t.Errorf("the log holds a password (%s…)", secret)
		}
	}
}

// TestUserAdminNotConfigured: --admin without web.admin_passwd_file is a
// configuration error, and import has no --admin.
func TestUserAdminNotConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r := mustPostie(t, 78, "x\n", dev(dir, "user", "add", "--admin", "--password-stdin", "root")...)
	if !strings.Contains(r.stderr, "web.admin_passwd_file is not set") {
		t.Errorf("stderr %q", r.stderr)
	}
	mustPostie(t, 78, "", dev(dir, "user", "list", "--admin")...)
	mustPostie(t, 64, "", "user", "import", "--admin", "--from", "passwd-file", "x")
}

// TestUserAdminFileAsRoot: run as root with [server] user, a new admin
// file is root:GROUP 0640 (GROUP serve's), which serve reads after
// dropping root or under systemd; a later rewrite keeps it so.
func TestUserAdminFileAsRoot(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	dir := t.TempDir()
	p := testenv.NewPostie(t, testenv.PostieOptions{Dir: dir, Config: `[pop3]
listen = ["127.0.0.1:0"]
[lmtp]
listen = ["127.0.0.1:0"]
[auth]
default_scheme = "SHA512-CRYPT"
[server]
user = "nobody"
[web]
admin_passwd_file = "admins"
`})
	p.MustRun(t, "admin-password-1\n", "user", "add", "--admin", "--password-stdin", "root")
	p.MustRun(t, "admin-password-2\n", "user", "add", "--admin", "--password-stdin", "ops")
	fi, err := os.Stat(filepath.Join(dir, "admins"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if got, want := strconv.Itoa(int(st.Uid))+":"+strconv.Itoa(int(st.Gid))+" "+strconv.FormatUint(uint64(fi.Mode().Perm()), 8), "0:"+nobody.Gid+" 640"; got != want {
		t.Errorf("admins file %s, want %s", got, want)
	}
}
