package web_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/web"
)

// account is a web Handler over a real passwd-file (auth.DB) checked by a
// real POP3 engine, served over HTTPS or plain HTTP on loopback.
type account struct {
	srv  *httptest.Server
	db   *auth.DB
	pop  *pop3test.Server
	logs *testenv.SyncBuffer
}

func startAccount(t *testing.T, tlsOn bool, tweak func(*web.Options)) *account {
	t.Helper()
	db, err := auth.Open(filepath.Join(t.TempDir(), "passwd"), auth.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Add("alice", "old-password-1", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	pop := pop3test.Start(t, pop3test.Options{Logger: log, Tweak: func(o *pop3server.Options) { o.Authenticator = db }})
	opts := web.Options{Logger: log, Mail: mail, Logins: pop.Server, Passwords: db, Scheme: "SHA512-CRYPT"}
	if tweak != nil {
		tweak(&opts)
	}
	h, err := web.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(h)
	} else {
		srv = httptest.NewServer(h)
	}
	t.Cleanup(srv.Close)
	return &account{srv: srv, db: db, pop: pop, logs: logs}
}

// browser is a client with cookies that follows no redirect and sends
// the headers a browser sends with a same-origin form.
func (a *account) browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	c := *a.srv.Client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (a *account) page(t *testing.T, c *http.Client) (body, csrf string) {
	t.Helper()
	resp, body := get(t, c, a.srv.URL+"/account")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /account: %s\n%s", resp.Status, body)
	}
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no csrf token in\n%s", body)
	}
	return body, m[1]
}

// submit posts a form as a same-origin browser form does.
func (a *account) submit(t *testing.T, c *http.Client, path string, form url.Values, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", a.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", a.srv.URL)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// The headers of the account page, exactly: over HTTPS and over plain
// HTTP from loopback.
func TestAccountHeaders(t *testing.T) {
	csp := "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	for _, tc := range []struct {
		name   string
		tls    bool
		cookie string
		hsts   bool
	}{
		{"https", true, `^__Host-postie=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; Secure; SameSite=Strict$`, true},
		{"loopback http", false, `^postie=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict$`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := startAccount(t, tc.tls, nil)
			resp, _ := get(t, a.browser(t), a.srv.URL+"/account")
			got := resp.Header.Clone()
			got.Del("Date")
			got.Del("Content-Length")
			cookies := got.Values("Set-Cookie")
			got.Del("Set-Cookie")
			want := http.Header{
				"Cache-Control":              {"no-store"},
				"Content-Security-Policy":    {csp},
				"Content-Type":               {"text/html; charset=utf-8"},
				"Cross-Origin-Opener-Policy": {"same-origin"},
				"Referrer-Policy":            {"no-referrer"},
				"X-Content-Type-Options":     {"nosniff"},
				"X-Frame-Options":            {"DENY"},
			}
			if tc.hsts {
				want["Strict-Transport-Security"] = []string{"max-age=31536000"}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("headers\n got %v\nwant %v", got, want)
			}
			if len(cookies) != 1 || !regexp.MustCompile(tc.cookie).MatchString(cookies[0]) {
				t.Errorf("Set-Cookie %q, want %s", cookies, tc.cookie)
			}
			resp, _ = get(t, a.srv.Client(), a.srv.URL+"/static/style.css")
			if resp.Header.Get("Content-Type") != "text/css; charset=utf-8" || resp.Header.Get("Content-Security-Policy") != csp || resp.Header.Get("X-Frame-Options") != "DENY" {
				t.Errorf("style sheet headers %v", resp.Header)
			}
		})
	}
}

func TestAccountLoginAndPassword(t *testing.T) {
	a := startAccount(t, true, nil)
	c := a.browser(t)
	_, csrf := a.page(t, c)

	// A wrong password and an unknown user: the same page, word for word.
	resp, wrong := a.submit(t, c, "/account/login", url.Values{"csrf": {csrf}, "user": {"alice"}, "password": {"nope-secret-1"}}, nil)
	if resp.StatusCode != 401 || !strings.Contains(wrong, "Wrong user name or password.") {
		t.Fatalf("wrong password: %s\n%s", resp.Status, wrong)
	}
	resp, unknown := a.submit(t, c, "/account/login", url.Values{"csrf": {csrf}, "user": {"mallory"}, "password": {"nope-secret-2"}}, nil)
	if resp.StatusCode != 401 || unknown != wrong {
		t.Errorf("unknown user: %s, page differs from a wrong password's:\n%s", resp.Status, unknown)
	}
	if a.pop.Server.Stats().AuthFailures != 2 {
		t.Errorf("AuthFailures %d, want 2", a.pop.Server.Stats().AuthFailures)
	}
	if strings.Contains(a.logs.String(), "nope-secret") {
		t.Errorf("a password is in the log:\n%s", a.logs.String())
	}

	// The address of a served domain stands for the user name.
	resp, body := a.submit(t, c, "/account/login", url.Values{"csrf": {csrf}, "user": {"alice@example.org"}, "password": {"old-password-1"}}, nil)
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/account" {
		t.Fatalf("login: %s\n%s", resp.Status, body)
	}
	page, csrf2 := a.page(t, c)
	if csrf2 == csrf || !strings.Contains(page, `Logged in as <strong id="who">alice</strong>`) {
		t.Fatalf("after login (token %v):\n%s", csrf2 == csrf, page)
	}
	logins := a.pop.Server.RecentLogins("alice")
	if len(logins) != 1 || logins[0].Via != "web" || logins[0].Remote != netip.MustParseAddr("127.0.0.1") || logins[0].Client != "Go-http-client/1.1" {
		t.Errorf("recent logins %+v", logins)
	}

	// A second browser logged in as alice is logged out by the change.
	other := a.browser(t)
	_, oc := a.page(t, other)
	a.submit(t, other, "/account/login", url.Values{"csrf": {oc}, "user": {"alice"}, "password": {"old-password-1"}}, nil)
	if p, _ := a.page(t, other); !strings.Contains(p, "Logged in as") {
		t.Fatal("second browser not logged in")
	}

	for _, bad := range []struct {
		form url.Values
		msg  string
	}{
		{url.Values{"current": {"old-password-1"}, "new": {"short"}, "again": {"short"}}, "at least 10 characters"},
		{url.Values{"current": {"old-password-1"}, "new": {"new-password-22"}, "again": {"new-password-23"}}, "The two new passwords differ."},
		{url.Values{"current": {"old-password-1"}, "new": {"new-pass\tword-2"}, "again": {"new-pass\tword-2"}}, "control characters"},
		{url.Values{"current": {"wrong-current-1"}, "new": {"new-password-22"}, "again": {"new-password-22"}}, "Your current password is wrong."},
	} {
		bad.form.Set("csrf", csrf2)
		resp, body := a.submit(t, c, "/account/password", bad.form, nil)
		if resp.StatusCode == 303 || !strings.Contains(body, bad.msg) {
			t.Errorf("%v: %s, want %q", bad.form, resp.Status, bad.msg)
		}
	}
	resp, body = a.submit(t, c, "/account/password", url.Values{"csrf": {csrf2}, "current": {"old-password-1"}, "new": {"new-password-22"}, "again": {"new-password-22"}}, nil)
	if resp.StatusCode != 303 {
		t.Fatalf("change: %s\n%s", resp.Status, body)
	}
	if p, _ := a.page(t, c); !strings.Contains(p, "Your password has been changed.") {
		t.Errorf("no notice after the change:\n%s", p)
	}
	if p, _ := a.page(t, other); strings.Contains(p, "Logged in as") {
		t.Error("the other browser is still logged in after the change")
	}
	ctx := context.Background()
	if _, ok, _ := a.db.Authenticate(ctx, "alice", "new-password-22"); !ok {
		t.Error("the new password does not work")
	}
	if _, ok, _ := a.db.Authenticate(ctx, "alice", "old-password-1"); ok {
		t.Error("the old password still works")
	}
	if !strings.Contains(a.logs.String(), `msg="password changed" via=web user=alice remote=127.0.0.1`) || strings.Contains(a.logs.String(), "new-password-22") {
		t.Errorf("log:\n%s", a.logs.String())
	}
}

// Forms that did not come from the page: refused before anything is done.
func TestAccountCSRF(t *testing.T) {
	a := startAccount(t, true, nil)
	c := a.browser(t)
	_, csrf := a.page(t, c)
	a.submit(t, c, "/account/login", url.Values{"csrf": {csrf}, "user": {"alice"}, "password": {"old-password-1"}}, nil)
	_, csrf = a.page(t, c)
	change := url.Values{"csrf": {csrf}, "current": {"old-password-1"}, "new": {"new-password-22"}, "again": {"new-password-22"}}
	noToken := url.Values{"current": {"old-password-1"}, "new": {"new-password-22"}, "again": {"new-password-22"}}
	otherToken := url.Values{"csrf": {strings.Repeat("A", 43)}, "current": {"old-password-1"}, "new": {"new-password-22"}, "again": {"new-password-22"}}
	for _, tc := range []struct {
		name string
		form url.Values
		hdr  map[string]string
	}{
		{"cross-site", change, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"same-site other origin", change, map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://other.example.org"}},
		{"foreign Origin, no Sec-Fetch-Site", change, map[string]string{"Sec-Fetch-Site": "", "Origin": "https://evil.example"}},
		{"no token", noToken, nil},
		{"another token", otherToken, nil},
	} {
		resp, body := a.submit(t, c, "/account/password", tc.form, tc.hdr)
		if resp.StatusCode != 403 {
			t.Errorf("%s: %s\n%s", tc.name, resp.Status, body)
		}
	}
	if _, ok, _ := a.db.Authenticate(context.Background(), "alice", "old-password-1"); !ok {
		t.Error("the password was changed by a refused form")
	}
}

// Behind a TLS proxy: X-Forwarded-* believed from trusted proxies only,
// and the account pages refused unless the client came over HTTPS.
func TestAccountBehindProxy(t *testing.T) {
	a := startAccount(t, false, func(o *web.Options) {
		o.BehindTLSProxy = true
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	})
	do := func(hdr map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", a.srv.URL+"/account", nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := a.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	if resp, body := do(map[string]string{"X-Forwarded-Proto": "http", "X-Forwarded-For": "203.0.113.5"}); resp.StatusCode != 403 || body != "The account page is served over HTTPS only.\n" {
		t.Errorf("proxied plain HTTP: %s %q", resp.Status, body)
	}
	if resp, _ := do(nil); resp.StatusCode != 403 {
		t.Errorf("from the proxy without X-Forwarded-Proto: %s", resp.Status)
	}
	resp, _ := do(map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1, 203.0.113.5, 127.0.0.9"})
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "__Host-postie=") || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("proxied HTTPS: %s %v", resp.Status, resp.Header)
	}

	// The client's address is the rightmost one not of a proxy.
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	hdr := map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.1, 203.0.113.5, 127.0.0.9"}
	req, _ := http.NewRequest("GET", a.srv.URL+"/account", nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := csrfRE.FindStringSubmatch(string(b))[1]
	// The cookie is __Host- (Secure): a plain-HTTP test client must be
	// given it by hand.
	cookie := strings.SplitN(resp.Header.Get("Set-Cookie"), ";", 2)[0]
	form := url.Values{"csrf": {csrf}, "user": {"alice"}, "password": {"old-password-1"}}
	req, _ = http.NewRequest("POST", a.srv.URL+"/account/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", cookie)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 {
		t.Fatalf("login through the proxy: %s", resp.Status)
	}
	if l := a.pop.Server.RecentLogins("alice"); len(l) != 1 || l[0].Remote != netip.MustParseAddr("203.0.113.5") {
		t.Errorf("recent logins %+v, want from 203.0.113.5", l)
	}
}

// Without a trusted proxy in front, X-Forwarded-* are the client's words:
// ignored.
func TestAccountIgnoresForwardedFromUntrusted(t *testing.T) {
	a := startAccount(t, false, func(o *web.Options) {
		o.BehindTLSProxy = true
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	})
	req, _ := http.NewRequest("GET", a.srv.URL+"/account", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	req.Header.Set("X-Forwarded-For", "203.0.113.5")
	resp, err := a.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Plain HTTP straight from loopback: served, without Secure cookie
	// or HSTS (the forged X-Forwarded-Proto changed nothing).
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Set-Cookie"), "postie=") || resp.Header.Get("Strict-Transport-Security") != "" {
		t.Errorf("%s %v", resp.Status, resp.Header)
	}
}

// The account page's logins are POP3 logins: an address banned after
// failures (pop3.ban_after) is refused on both.
func TestAccountBan(t *testing.T) {
	db, err := auth.Open(filepath.Join(t.TempDir(), "passwd"), auth.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	db.Add("alice", "old-password-1", "SHA512-CRYPT")
	pop := pop3test.Start(t, pop3test.Options{Tweak: func(o *pop3server.Options) {
		o.Authenticator = db
		o.TrustedNets = []netip.Prefix{}
		o.Limits.AuthFailDelay = 1
		o.Limits.BanAfter = 2
	}})
	h, err := web.New(web.Options{Mail: mail, Logins: pop.Server, Passwords: db})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(h)
	defer srv.Close()
	a := &account{srv: srv, db: db, pop: pop}
	c := a.browser(t)
	_, csrf := a.page(t, c)
	for i, want := range []int{401, 401, 429} {
		password := "wrong-password"
		if i == 2 {
			password = "old-password-1" // right, but the address is banned
		}
		resp, body := a.submit(t, c, "/account/login", url.Values{"csrf": {csrf}, "user": {"alice"}, "password": {password}}, nil)
		if resp.StatusCode != want {
			t.Errorf("attempt %d: %s, want %d\n%s", i+1, resp.Status, want, body)
		}
		if want == 429 && !strings.Contains(body, "Too many failed logins from your address. Try again later.") {
			t.Errorf("429 page:\n%s", body)
		}
	}
	// POP3 from the same address is refused too.
	c2 := dialRaw(t, pop.Addr)
	if !strings.HasPrefix(c2, "-ERR") {
		t.Errorf("POP3 greeting of a banned address %q", c2)
	}
}

func dialRaw(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	return line
}
