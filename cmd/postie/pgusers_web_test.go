package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// csrfField finds the token of the form a page holds.
var csrfField = regexp.MustCompile(`<input type="hidden" name="csrf" value="([^"]+)">`)

// webClient is a client of the web pages over HTTPS with a cookie jar,
// as a browser keeps the session cookie.
type webClient struct {
	t    *testing.T
	base string
	c    *http.Client
}

// newWebClient connects to addr and trusts the certificate in certFile
// for mail.example.org (webCert's).
func newWebClient(t *testing.T, addr, certFile string) *webClient {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", certFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "mail.example.org"}}
	t.Cleanup(tr.CloseIdleConnections)
	return &webClient{t: t, base: "https://" + addr, c: &http.Client{Jar: jar, Transport: tr, Timeout: time.Minute}}
}

// page fetches path (following redirects) and returns the status and body.
func (w *webClient) page(path string) (int, string) {
	w.t.Helper()
	resp, err := w.c.Get(w.base + path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// submit posts form to path with the CSRF token of the page at from, and
// returns the status and body of where it leads.
func (w *webClient) submit(from, path string, form url.Values) (int, string) {
	w.t.Helper()
	_, body := w.page(from)
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		w.t.Fatalf("no CSRF token on %s:\n%s", from, body)
	}
	form.Set("csrf", m[1])
	resp, err := w.c.PostForm(w.base+path, form)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		w.t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestPostgresUsersWebPassword: with the users in PostgreSQL, a password
// changed on node A's /account page (HTTPS on loopback with net/http, the
// session cookie and the form's CSRF token as a browser sends them) is
// the one node B's POP3 takes, without a SIGHUP; the old one is refused
// on both. (The web pages need TLS for POP3 to tell clients of, and with
// a certificate they are served over HTTPS.)
func TestPostgresUsersWebPassword(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)
	a := pgUsersNodeWith(t, dsn, "node-a", `[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[web]
listen = ["127.0.0.1:0"]
`)
	webCert(t, filepath.Dir(a.Config), "mail.example.org")
	b := pgUsersNode(t, dsn, "node-b")
	mustPostie(t, 0, "old password\n", "user", "add", "--config", a.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	a.Start(t)
	b.Start(t)
	if !passOK(t, b.POP3, "alice", "old password") {
		t.Fatal("node B refuses the password set with postie user add")
	}

	w := newWebClient(t, a.Web, filepath.Join(filepath.Dir(a.Config), "cert.pem"))
	if code, body := w.submit("/account", "/account/login", url.Values{"user": {"alice"}, "password": {"wrong password"}}); code != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") {
		t.Fatalf("login with a wrong password: %d\n%s", code, body)
	}
	if code, body := w.submit("/account", "/account/login", url.Values{"user": {"alice"}, "password": {"old password"}}); code != http.StatusOK || !strings.Contains(body, "Your mailbox") {
		t.Fatalf("login: %d\n%s", code, body)
	}
	// A form without the page's token is refused, and changes nothing.
	resp, err := w.c.PostForm(w.base+"/account/password", url.Values{"csrf": {"forged"}, "current": {"old password"}, "new": {"forged password"}, "again": {"forged password"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("password form with a forged token: %d", resp.StatusCode)
	}
	code, body := w.submit("/account", "/account/password", url.Values{"current": {"old password"}, "new": {"new password 1"}, "again": {"new password 1"}})
	if code != http.StatusOK || !strings.Contains(body, "Your password has been changed.") {
		t.Fatalf("password change: %d\n%s", code, body)
	}

	// Node B learns of it by NOTIFY (in milliseconds; within a second
	// even if the notification were lost). The bound only stops a broken
	// test.
	for start := time.Now(); passOK(t, b.POP3, "alice", "old password"); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node B still accepts the old password")
		}
	}
	if !passOK(t, b.POP3, "alice", "new password 1") {
		t.Error("node B refuses the new password")
	}
	if passOK(t, a.POP3, "alice", "old password") || !passOK(t, a.POP3, "alice", "new password 1") {
		t.Error("node A does not take the new password alone")
	}
	if passOK(t, b.POP3, "alice", "forged password") {
		t.Error("the password of the forged form was set")
	}
	for _, l := range []string{a.Log(), b.Log()} {
		if strings.Contains(l, "password 1") || strings.Contains(l, "old password") {
			t.Error("a log shows a password")
		}
	}
	a.WaitLog(t, `msg="password changed" via=web user=alice `)
}
