package oauthclient_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/oauthclient"
	"github.com/postie-mail/postie/internal/oauthclient/oauthtest"
)

// clock is a test clock that moves only when told (or when the client
// sleeps on it).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func setup(t *testing.T, opts oauthtest.Options) (*oauthtest.Server, *oauthclient.Config, *clock) {
	t.Helper()
	clk := newClock()
	opts.ClientID = "client-1"
	opts.Subject = "user1"
	if opts.Now == nil {
		opts.Now = clk.Now
	}
	srv, err := oauthtest.Start(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	cfg := &oauthclient.Config{
		ClientID: "client-1", ClientSecret: opts.ClientSecret,
		AuthURL: srv.AuthURL(), TokenURL: srv.TokenURL(), DeviceURL: srv.DeviceURL(),
		Scopes: []string{"mail", "offline_access"}, Now: clk.Now,
	}
	return srv, cfg, clk
}

// browser plays the user's browser: it follows the authorization URL's
// redirect to the loopback listener and returns the page's status.
func browser(t *testing.T, authURL string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(authURL)
	if err != nil {
		t.Errorf("browser: %v", err)
		return nil, ""
	}
	defer resp.Body.Close()
	b := make([]byte, 4096)
	n, _ := resp.Body.Read(b)
	return resp, string(b[:n])
}

func TestLoopbackLogin(t *testing.T) {
	srv, cfg, _ := setup(t, oauthtest.Options{ClientSecret: "s3cret"})
	var page string
	var status int
	tok, err := cfg.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Show: func(u string) {
		resp, body := browser(t, u)
		if resp != nil {
			status, page = resp.StatusCode, body
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if status != 200 || !strings.Contains(page, "signed in") {
		t.Errorf("browser saw %d %q", status, page)
	}
	if tok.RefreshToken == "" || tok.AccessToken == "" {
		t.Fatalf("token lacks parts: %v", tok)
	}
	if sub, ok := srv.Valid(tok.AccessToken); !ok || sub != "user1" {
		t.Errorf("access token not valid at the issuer: %q %v", sub, ok)
	}
	if strings.Contains(tok.String(), tok.AccessToken) || strings.Contains(tok.String(), tok.RefreshToken) {
		t.Errorf("Token.String shows a secret")
	}
}

// The redirect carries a state the client checks: an answer with another
// state (a CSRF attempt) is refused and the real one still counts.
func TestLoopbackState(t *testing.T) {
	_, cfg, _ := setup(t, oauthtest.Options{})
	tok, err := cfg.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Show: func(u string) {
		p, _ := url.Parse(u)
		redirect := p.Query().Get("redirect_uri")
		resp, body := browser(t, redirect+"?code=forged&state=wrong")
		if resp == nil || resp.StatusCode != 400 || !strings.Contains(body, "state mismatch") {
			t.Errorf("forged answer: %v %q", resp, body)
		}
		resp, _ = browser(t, redirect+"?code=forged")
		if resp == nil || resp.StatusCode != 400 {
			t.Errorf("answer without state: %v", resp)
		}
		browser(t, u)
	}})
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("login after a forged answer: %v", err)
	}
}

func TestLoopbackDenied(t *testing.T) {
	srv, cfg, _ := setup(t, oauthtest.Options{})
	srv.Deny(true)
	_, err := cfg.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Show: func(u string) { browser(t, u) }})
	var e *oauthclient.Error
	if !errors.As(err, &e) || e.Code != "access_denied" || err.Error() != "authorization endpoint: access_denied (The user said no)" {
		t.Fatalf("got %v", err)
	}
}

// The wait for the browser is bounded (the bound is checked, not timed).
func TestLoopbackWaitBounded(t *testing.T) {
	_, cfg, _ := setup(t, oauthtest.Options{})
	_, err := cfg.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Show: func(string) {}, Wait: time.Millisecond})
	if err == nil || err.Error() != "no answer from the browser within 1ms" {
		t.Fatalf("got %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = cfg.LoginLoopback(ctx, oauthclient.LoopbackOptions{Show: func(string) {}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: got %v", err)
	}
}

// The server is strict: a wrong secret, a replayed code, a verifier that
// does not match, another redirect_uri are all refused. The client's own
// exchange is the one that passes; these calls show the server would catch
// a client that got them wrong.
func TestServerStrict(t *testing.T) {
	srv, cfg, _ := setup(t, oauthtest.Options{ClientSecret: "s3cret"})
	bad := *cfg
	bad.ClientSecret = "wrong"
	_, err := bad.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Show: func(u string) { browser(t, u) }})
	if err == nil || err.Error() != "token endpoint: invalid_client (client authentication failed)" {
		t.Errorf("wrong secret: %v", err)
	}
	// A code, taken from the redirect, exchanged by hand.
	var code, redirect string
	done := make(chan struct{})
	go func() {
		defer close(done)
		cfg.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Wait: time.Millisecond, Show: func(u string) {
			c := &http.Client{CheckRedirect: func(r *http.Request, _ []*http.Request) error {
				code = r.URL.Query().Get("code")
				redirect = "http://" + r.URL.Host + "/"
				return http.ErrUseLastResponse
			}}
			if resp, err := c.Get(u); err == nil {
				resp.Body.Close()
			}
		}})
	}()
	<-done
	if code == "" {
		t.Fatal("no code")
	}
	post := func(f url.Values) string {
		f.Set("client_id", "client-1")
		f.Set("client_secret", "s3cret")
		resp, err := http.PostForm(srv.TokenURL(), f)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b := make([]byte, 1024)
		n, _ := resp.Body.Read(b)
		return string(b[:n])
	}
	verifier := strings.Repeat("a", 43)
	if got := post(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:1/"}, "code_verifier": {verifier}}); !strings.Contains(got, "redirect_uri mismatch") {
		t.Errorf("other redirect_uri: %s", got)
	}
	if got := post(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {verifier}}); !strings.Contains(got, "PKCE verification failed") {
		t.Errorf("wrong verifier: %s", got)
	}
	if got := post(url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "redirect_uri": {redirect}, "code_verifier": {verifier}}); !strings.Contains(got, "invalid_grant") {
		t.Errorf("unknown code: %s", got)
	}
}

// RFC 8628: pending polls at the interval, slow_down adds 5s for good,
// then the approval gives tokens.
func TestDeviceLogin(t *testing.T) {
	srv, cfg, clk := setup(t, oauthtest.Options{DeviceInterval: 3 * time.Second})
	var waits []time.Duration
	var shown *oauthclient.DeviceCode
	cfg.Sleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		switch len(waits) {
		case 2:
			// The client polls too soon once (the server's clock
			// moved less than the interval): slow_down.
			clk.Add(d - time.Second)
		case 4:
			clk.Add(d)
			if !srv.Approve(shown.UserCode) {
				t.Error("user code unknown")
			}
		default:
			clk.Add(d)
		}
		return nil
	}
	tok, err := cfg.LoginDevice(context.Background(), func(dc *oauthclient.DeviceCode) { shown = dc })
	if err != nil {
		t.Fatal(err)
	}
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	want := []time.Duration{3 * time.Second, 3 * time.Second, 8 * time.Second, 8 * time.Second}
	if !slicesEqual(waits, want) {
		t.Errorf("waits %v, want %v", waits, want)
	}
	if shown.VerificationURI != srv.URL+"/device/verify" || shown.Interval != 3*time.Second {
		t.Errorf("shown %+v", shown)
	}
	if n := srv.Count("device_code"); n != 4 {
		t.Errorf("%d polls, want 4", n)
	}
}

func slicesEqual(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestDeviceDeniedExpired(t *testing.T) {
	srv, cfg, clk := setup(t, oauthtest.Options{})
	srv.Deny(true)
	var shown *oauthclient.DeviceCode
	cfg.Sleep = func(_ context.Context, d time.Duration) error {
		clk.Add(d)
		srv.Approve(shown.UserCode)
		return nil
	}
	_, err := cfg.LoginDevice(context.Background(), func(dc *oauthclient.DeviceCode) { shown = dc })
	if err == nil || err.Error() != "the sign-in was denied" {
		t.Errorf("denied: %v", err)
	}
	srv.Deny(false)
	polls := 0
	cfg.Sleep = func(_ context.Context, d time.Duration) error {
		polls++
		clk.Add(d)
		return nil
	}
	_, err = cfg.LoginDevice(context.Background(), func(*oauthclient.DeviceCode) {})
	if err == nil || err.Error() != "the code expired before the sign-in was approved; run the login again" {
		t.Errorf("expired: %v", err)
	}
	if polls != 900/5 {
		t.Errorf("%d polls in 900s at 5s", polls)
	}
	none := *cfg
	none.DeviceURL = ""
	if _, err := none.LoginDevice(context.Background(), nil); err == nil {
		t.Error("no device endpoint: no error")
	}
}

func login(t *testing.T, cfg *oauthclient.Config) *oauthclient.Token {
	t.Helper()
	tok, err := cfg.LoginLoopback(context.Background(), oauthclient.LoopbackOptions{Show: func(u string) { browser(t, u) }})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestSource(t *testing.T) {
	srv, cfg, clk := setup(t, oauthtest.Options{RotateRefresh: true, TokenTTL: time.Hour})
	path := filepath.Join(t.TempDir(), "state", "acct.oauth")
	src := &oauthclient.Source{Config: cfg, Path: path}
	if _, err := src.Token(context.Background()); !errors.Is(err, oauthclient.ErrNotSignedIn) {
		t.Fatalf("before login: %v", err)
	}
	tok := login(t, cfg)
	if err := src.Save(tok); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Errorf("state dir holds %d entries, want the token file alone", len(ents))
	}
	got, err := src.Token(context.Background())
	if err != nil || got != tok.AccessToken {
		t.Fatalf("fresh token not used: %v", err)
	}
	if n := srv.Count("refresh_token"); n != 0 {
		t.Errorf("%d refreshes of a fresh token", n)
	}
	// 56 minutes on: within the 5 minute margin, refreshed.
	clk.Add(56 * time.Minute)
	got2, err := src.Token(context.Background())
	if err != nil || got2 == tok.AccessToken {
		t.Fatalf("not refreshed near expiry: %v", err)
	}
	if _, ok := srv.Valid(got2); !ok || srv.Count("refresh_token") != 1 {
		t.Errorf("refresh: valid %v, %d refreshes", ok, srv.Count("refresh_token"))
	}
	// A second Source (another process) reads the rotated refresh token
	// and the cached access token from the file.
	other := &oauthclient.Source{Config: cfg, Path: path}
	if got3, err := other.Token(context.Background()); err != nil || got3 != got2 {
		t.Errorf("second source: %v, same token %v", err, got3 == got2)
	}
	// Invalidate forces one refresh.
	src.Invalidate()
	if _, err := src.Token(context.Background()); err != nil || srv.Count("refresh_token") != 2 {
		t.Errorf("after Invalidate: %v, %d refreshes", err, srv.Count("refresh_token"))
	}
	// The user revokes consent: invalid_grant is LoginNeededError.
	srv.RevokeAll()
	src.Invalidate()
	_, err = src.Token(context.Background())
	var ln *oauthclient.LoginNeededError
	if !errors.As(err, &ln) || err.Error() != "the sign-in was revoked or has expired" || !oauthclient.IsInvalidGrant(err) {
		t.Fatalf("revoked: %v", err)
	}
	data, _ := os.ReadFile(path)
	for _, s := range []string{got2, tok.AccessToken} {
		if strings.Contains(err.Error(), s) {
			t.Error("error shows a token")
		}
	}
	if len(data) == 0 {
		t.Error("token file emptied")
	}
	// Another client id: the stored refresh token is not sent.
	before := srv.Count("refresh_token")
	cfg2 := *cfg
	cfg2.ClientID = "client-2"
	_, err = (&oauthclient.Source{Config: &cfg2, Path: path}).Token(context.Background())
	if !errors.As(err, &ln) || srv.Count("refresh_token") != before {
		t.Errorf("other client: %v", err)
	}
}

// A damaged or foreign token file is an error that quotes nothing of it.
func TestSourceBadFile(t *testing.T) {
	_, cfg, _ := setup(t, oauthtest.Options{})
	dir := t.TempDir()
	for _, content := range []string{"", "{", `{"version":2,"refresh_token":"SECRET"}`, "SECRET\x00", `{"version":1,"refresh_token":7}`} {
		path := filepath.Join(dir, "f")
		os.WriteFile(path, []byte(content), 0o600)
		_, err := (&oauthclient.Source{Config: cfg, Path: path}).Token(context.Background())
		var ln *oauthclient.LoginNeededError
		if !errors.As(err, &ln) || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("%q: %v", content, err)
		}
	}
	link := filepath.Join(dir, "link")
	os.Symlink(filepath.Join(dir, "f"), link)
	if _, err := (&oauthclient.Source{Config: cfg, Path: link}).Token(context.Background()); err == nil {
		t.Error("symlink followed")
	}
}

// A token endpoint that answers badly: clear errors that carry none of
// its junk (control characters, pages of text, the tokens it sent).
func TestHostileTokenEndpoint(t *testing.T) {
	var answer func(w http.ResponseWriter)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { answer(w) })}
	go srv.Serve(ln)
	defer srv.Close()
	cfg := &oauthclient.Config{ClientID: "c", TokenURL: "http://" + ln.Addr().String() + "/token"}
	tests := []struct {
		status      int
		ctype, body string
		want        string
	}{
		{400, "application/json", `{"error":"invalid_grant","error_description":"AADSTS70043: The refresh token has expired.\r\nTrace ID: 1\r\nCorrelation ID: 2"}`,
			"token endpoint: invalid_grant (AADSTS70043: The refresh token has expired.)"},
		{400, "application/json", `{"error":"invalid_grant","error_description":"bad \u001b[31mred"}`, "token endpoint: invalid_grant"},
		{400, "application/json", `{"error":"\u001b[2J"}`, "token endpoint http://127.0.0.1: HTTP status 400 without an OAuth error"},
		{500, "text/html", "<html>SECRET</html>", "token endpoint http://127.0.0.1: HTTP status 500 without an OAuth error"},
		{200, "text/html", `{"access_token":"SECRET","token_type":"Bearer"}`, `token endpoint http://127.0.0.1: answer is "text/html", not application/json`},
		{200, "application/json", `{"access_token":"SECRET","token_type":"mac"}`, `token endpoint http://127.0.0.1: token type "mac", not Bearer`},
		{200, "application/json", `{"token_type":"Bearer"}`, "token endpoint http://127.0.0.1: answer without access_token"},
		{200, "application/json", `{"access_token":"SECRET"`, "token endpoint http://127.0.0.1: answer is not the JSON expected"},
		{200, "application/json", strings.Repeat(" ", 2<<20), "token endpoint http://127.0.0.1: answer over 1048576 bytes"},
	}
	for _, tc := range tests {
		answer = func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", tc.ctype)
			w.WriteHeader(tc.status)
			io.WriteString(w, tc.body)
		}
		_, err := cfg.Refresh(context.Background(), "r")
		if err == nil {
			t.Errorf("%s: no error", tc.body[:min(len(tc.body), 40)])
			continue
		}
		got := strings.Replace(err.Error(), ln.Addr().String(), "127.0.0.1", 1)
		got = strings.Replace(got, "http://127.0.0.1:"+portOf(ln), "http://127.0.0.1", 1)
		if got != tc.want || strings.Contains(got, "SECRET") {
			t.Errorf("%s:\n got %s\nwant %s", tc.body[:min(len(tc.body), 40)], got, tc.want)
		}
	}
	// Refresh without a new refresh token keeps the old one; a string
	// expires_in (older Microsoft endpoints) is read.
	answer = func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"access_token":"a","token_type":"bearer","expires_in":"3600"}`)
	}
	cfg.Now = func() time.Time { return time.Unix(1000, 0) }
	tok, err := cfg.Refresh(context.Background(), "old")
	if err != nil || tok.RefreshToken != "old" || !tok.Expiry.Equal(time.Unix(4600, 0)) {
		t.Errorf("refresh: %v %v", tok, err)
	}
}

func portOf(ln net.Listener) string { return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) }
