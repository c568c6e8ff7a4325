package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/oauthclient/oauthtest"
	"github.com/postie-mail/postie/internal/testenv"
)

// loginTerminal is the terminal of postie fetch login: when the URL
// appears, it plays the browser (fetching it, following the redirect to
// postie's loopback listener).
type loginTerminal struct {
	t      *testing.T
	mu     sync.Mutex
	buf    bytes.Buffer
	status chan int
}

func (l *loginTerminal) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	for line := range strings.Lines(string(p)) {
		if u := strings.TrimSpace(line); strings.HasPrefix(u, "http://") {
			go func() {
				resp, err := http.Get(u)
				if err != nil {
					l.t.Errorf("browser: %v", err)
					l.status <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				l.status <- resp.StatusCode
			}()
		}
	}
	return len(p), nil
}

// TestFetchLogin: postie fetch login signs in through the loopback
// redirect and stores the tokens 0600; a revoked sign-in then makes
// postie fetch exit 77 with the message that says what to do.
func TestFetchLogin(t *testing.T) {
	t.Parallel()
	idp, err := oauthtest.Start(oauthtest.Options{ClientID: "cid", Subject: "user1"})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	p := startPOP(t)
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr, `oauth_client_id = "cid"`,
		fmt.Sprintf("oauth_auth_url = %q\noauth_token_url = %q", idp.AuthURL(), idp.TokenURL()),
		`oauth_scopes = ["mail"]`)
	// fetchConfig gives a password_file; this account signs in instead.
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, bytes.Replace(data, []byte(`password_file = "pass"`+"\n"), nil, 1), 0o600)

	term := &loginTerminal{t: t, status: make(chan int, 1)}
	var stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: term, stderr: &stderr}
	if code := a.run([]string{"fetch", "login", "acct", "--no-browser", "--config", cfg}); code != 0 {
		t.Fatalf("login: exit %d\n%s\n%s", code, term.buf.String(), stderr.String())
	}
	if s := <-term.status; s != 200 {
		t.Errorf("browser saw %d", s)
	}
	fi, err := os.Stat(filepath.Join(dir, "state", "acct.oauth"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi, err)
	}

	idp.RevokeAll()
	// The stored access token is still fresh: force a refresh by
	// dropping it from the file, as an expired one would be.
	tf := filepath.Join(dir, "state", "acct.oauth")
	data, _ = os.ReadFile(tf)
	var kept []string
	for _, f := range strings.Split(string(data), ",") {
		if !strings.HasPrefix(f, `"access_token"`) {
			kept = append(kept, f)
		}
	}
	os.WriteFile(tf, []byte(strings.Join(kept, ",")), 0o600)
	r := mustPostie(t, 77, "", "fetch", "--once", "--config", cfg)
	want := "postie: fetch: acct: account \"acct\": the sign-in was revoked or has expired: run `postie fetch login acct` again\n"
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr: %q\nwant %q", r.stderr, want)
	}
	r = mustPostie(t, 0, "", "fetch", "status", "--config", cfg)
	if !strings.HasPrefix(r.stdout, "acct: last run ") || !strings.Contains(r.stdout, "; error (auth): account \"acct\": the sign-in was revoked or has expired: run `postie fetch login acct` again; no run without an error yet; OAuth: signed in\n") {
		t.Errorf("status: %q", r.stdout)
	}
	// Not an OAuth account; no such account; no argument.
	cfg2 := fetchConfig(t, t.TempDir(), p.addr)
	mustPostie(t, 78, "", "fetch", "login", "acct", "--config", cfg2)
	mustPostie(t, 64, "", "fetch", "login", "nosuch", "--config", cfg)
	mustPostie(t, 64, "", "fetch", "login", "--config", cfg)
}

// postie fetch probe --provider: usage errors (the providers' servers
// themselves are not contacted in tests).
func TestFetchProbeProvider(t *testing.T) {
	t.Parallel()
	r := mustPostie(t, 64, "", "fetch", "probe", "--provider", "nosuch")
	if !strings.Contains(r.stderr, `provider "nosuch" is not one of fastmail, gmail, gmx, outlook, yahoo`) {
		t.Errorf("stderr: %q", r.stderr)
	}
	mustPostie(t, 64, "", "fetch", "probe", "--provider", "gmail", "pop.example.org")
}

// TestFetchInstallService writes the user unit with this binary and the
// configuration's absolute path; systemd-analyze, when there is one,
// accepts it.
func TestFetchInstallService(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr)
	xdg := filepath.Join(t.TempDir(), "conf dir")
	env := []string{"XDG_CONFIG_HOME=" + xdg}
	r := postie(t, env, "", "fetch", "install-service", "--config", cfg)
	unit := filepath.Join(xdg, "systemd", "user", "postie-fetch.service")
	if r.code != 0 || !strings.HasPrefix(r.stdout, "Wrote "+unit+". Start it with\n") {
		t.Fatalf("exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(unit)
	if err != nil {
		t.Fatal(err)
	}
	exe, _ := filepath.EvalSymlinks(testenv.PostieBinary(t))
	want := fmt.Sprintf("ExecStart=%s fetch --config %s\n", systemdQuote(exe), systemdQuote(cfg))
	if !strings.Contains(string(data), want) {
		t.Errorf("unit lacks %q:\n%s", want, data)
	}
	if r := postie(t, env, "", "fetch", "install-service", "--config", cfg); r.code != 1 || !strings.Contains(r.stderr, "exists; --force replaces it") {
		t.Errorf("second install: exit %d %s", r.code, r.stderr)
	}
	if r := postie(t, env, "", "fetch", "install-service", "--force", "--config", cfg); r.code != 0 {
		t.Errorf("--force: exit %d %s", r.code, r.stderr)
	}
	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		copyPath := filepath.Join(t.TempDir(), "postie-fetch.service")
		os.WriteFile(copyPath, data, 0o644)
		if out, err := exec.Command(sa, "verify", copyPath).CombinedOutput(); err != nil || len(out) != 0 {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	if got := systemdQuote(`/a b/"x"\%`); got != `"/a b/\"x\"\\%%"` {
		t.Errorf("systemdQuote: %s", got)
	}
}

// deviceTerminal is the terminal of postie fetch login --device: once it
// has shown the verification URI and the code, it plays the user who
// types the code there.
type deviceTerminal struct {
	t      *testing.T
	mu     sync.Mutex
	buf    bytes.Buffer
	uri    string
	posted bool
	done   chan int
}

func (d *deviceTerminal) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.buf.Write(p)
	for line := range strings.Lines(string(p)) {
		l := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(l, "http://"):
			d.uri = l
		case len(l) == 9 && l[4] == '-' && d.uri != "" && !d.posted:
			d.posted = true
			uri, code := d.uri, l
			go func() {
				resp, err := http.PostForm(uri, url.Values{"user_code": {code}})
				if err != nil {
					d.t.Errorf("verification page: %v", err)
					d.done <- 0
					return
				}
				resp.Body.Close()
				d.done <- resp.StatusCode
			}()
		}
	}
	return len(p), nil
}

// TestFetchOAuthServe, end to end with real parts only: a test identity
// provider, `postie serve` trusting its JWK Set ([auth.oauth] jwks_file),
// `postie fetch login` through the browser's redirect to the loopback
// listener and through the device grant, then `postie fetch` over POP3S
// with OAUTHBEARER (auth "auto") and XOAUTH2.
func TestFetchOAuthServe(t *testing.T) {
	t.Parallel()
	idp, err := oauthtest.Start(oauthtest.Options{ClientID: "cid", ClientSecret: "cs", Subject: "erin", DeviceInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	keys := t.TempDir()
	jwks := filepath.Join(keys, "jwks.json")
	if err := os.WriteFile(jwks, idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startTLSConfig(t, tlsConfig{passwd: "erin:\n", tail: fmt.Sprintf(`[auth.oauth]
jwks_file = %q
issuer = %q
audience = ["cid"]
user_claim = "sub"
`, jwks, idp.Issuer)})
	want := s.deliver(t, "erin", "Subject: one\n\nfetched with a token\n")

	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(s.POP3S)
	cfg := filepath.Join(dir, "fetch.toml")
	write := func(auth string) {
		t.Helper()
		text := fmt.Sprintf(`state_dir = "state"
[[account]]
name = "erin"
server = %q
port = %s
tls = "implicit"
ca_file = %q
user = "erin"
auth = %q
maildir = "Maildir"
keep = true
oauth_client_id = "cid"
oauth_client_secret = "cs"
oauth_auth_url = %q
oauth_token_url = %q
oauth_device_url = %q
oauth_scopes = ["mail"]
`, host, port, s.caFile, auth, idp.AuthURL(), idp.TokenURL(), idp.DeviceURL())
		if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("auto")
	term := &loginTerminal{t: t, status: make(chan int, 1)}
	var stderr bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: term, stderr: &stderr}
	if code := a.run([]string{"fetch", "login", "erin", "--no-browser", "--config", cfg}); code != 0 {
		t.Fatalf("login: exit %d\n%s\n%s", code, term.buf.String(), stderr.String())
	}
	<-term.status
	r := mustPostie(t, 0, "", "fetch", "--once", "--debug", "--config", cfg)
	if !strings.HasPrefix(r.stdout, "erin: fetched 1 ") || !strings.Contains(r.stderr, "C: AUTH OAUTHBEARER") {
		t.Errorf("OAUTHBEARER run: %q %q", r.stdout, r.stderr)
	}
	debug := r.stderr
	files := maildirFiles(t, filepath.Join(dir, "Maildir"))
	if len(files) != 1 {
		t.Fatalf("%d messages delivered", len(files))
	}
	if b, _ := os.ReadFile(files[0]); string(b) != strings.ReplaceAll(want, "\r\n", "\n") {
		t.Errorf("delivered %q, want %q", b, want)
	}
	// XOAUTH2, with the stored token, on a fresh state: the same message
	// again (keep = true left it on the server).
	write("xoauth2")
	os.RemoveAll(filepath.Join(dir, "state", "erin.state"))
	os.RemoveAll(filepath.Join(dir, "Maildir"))
	r = mustPostie(t, 0, "", "fetch", "--once", "--debug", "--config", cfg)
	if !strings.HasPrefix(r.stdout, "erin: fetched 1 ") || !strings.Contains(r.stderr, "C: AUTH XOAUTH2") {
		t.Errorf("XOAUTH2 run: %q %q", r.stdout, r.stderr)
	}
	if n := idp.Count("refresh_token"); n != 0 {
		t.Errorf("%d refreshes of a fresh token", n)
	}
	tf, _ := os.ReadFile(filepath.Join(dir, "state", "erin.oauth"))
	_, rest, _ := strings.Cut(string(tf), `"access_token":"`)
	tok, _, _ := strings.Cut(rest, `"`)
	if len(tok) < 100 || strings.Contains(debug+r.stderr, tok[len(tok)-40:]) {
		t.Errorf("the access token is in the --debug output, or not in the token file")
	}

	// The device grant: a new sign-in, the test as the user who types the
	// code at the verification URI; then a fetch with its token.
	os.Remove(filepath.Join(dir, "state", "erin.oauth"))
	os.RemoveAll(filepath.Join(dir, "state", "erin.state"))
	os.RemoveAll(filepath.Join(dir, "Maildir"))
	dt := &deviceTerminal{t: t, done: make(chan int, 1)}
	a = &app{stdin: strings.NewReader(""), stdout: dt, stderr: &stderr}
	if code := a.run([]string{"fetch", "login", "erin", "--device", "--config", cfg}); code != 0 {
		t.Fatalf("device login: exit %d\n%s\n%s", code, dt.buf.String(), stderr.String())
	}
	if status := <-dt.done; status != 200 {
		t.Errorf("the verification page answered %d", status)
	}
	r = mustPostie(t, 0, "", "fetch", "--once", "--config", cfg)
	if !strings.HasPrefix(r.stdout, "erin: fetched 1 ") || idp.Count("device_code") < 1 {
		t.Errorf("after the device sign-in: %q %q", r.stdout, r.stderr)
	}
}

// openBrowser runs xdg-open with the URL in a graphical session, and
// nothing without one. The xdg-open here is a script that hands its
// argument to the test through a FIFO.
func TestOpenBrowser(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + fifo + "\n"
	if err := os.WriteFile(filepath.Join(dir, "xdg-open"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	t.Setenv("DISPLAY", "")
	t.Setenv("WAYLAND_DISPLAY", "")
	const u = "https://idp.example/auth?a=1&b=2"
	if err := openBrowser(u); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WAYLAND_DISPLAY", "wayland-0")
	if err := openBrowser(u); err != nil {
		t.Fatal(err)
	}
	// Only the second call ran the script: one argument arrives.
	got, err := os.ReadFile(fifo)
	if err != nil || string(got) != u {
		t.Errorf("xdg-open got %q, %v", got, err)
	}
	t.Setenv("PATH", t.TempDir()) // no xdg-open: nothing, no error
	if err := openBrowser(u); err != nil {
		t.Errorf("without xdg-open: %v", err)
	}
}
