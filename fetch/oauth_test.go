package fetch

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/oauthclient/oauthtest"
	"github.com/postie-mail/postie/pop3client"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/sasl"
	saslauth "github.com/postie-mail/postie/sasl/oauth"
)

// testClock moves only when the test moves it.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// countingValidator counts the tokens a server checked, and refuses them
// all while refuse is set.
type countingValidator struct {
	v      sasl.TokenValidator
	n      atomic.Int32
	refuse atomic.Bool
}

func (c *countingValidator) ValidateToken(ctx context.Context, user, tok string) (string, bool, error) {
	c.n.Add(1)
	if c.refuse.Load() {
		return "", false, nil
	}
	return c.v.ValidateToken(ctx, user, tok)
}

// oauthWorld is an identity provider, postie's POP3 server over implicit
// TLS trusting the provider's JWK Set for XOAUTH2 and OAUTHBEARER, and a
// fetch configuration with one account that signs in with the provider.
type oauthWorld struct {
	clk  *testClock
	idp  *oauthtest.Server
	pop  *postie
	val  *countingValidator
	cfg  *Config
	acct *Account
	log  *captureLog
	opts Options
	mdir string
}

func newOAuthWorld(t *testing.T, idpOpts oauthtest.Options, extra ...string) *oauthWorld {
	t.Helper()
	w := &oauthWorld{clk: &testClock{t: time.Now().Truncate(time.Second)}, log: &captureLog{}}
	idpOpts.ClientID, idpOpts.ClientSecret, idpOpts.Subject, idpOpts.Now = "client-1", "not-so-secret", "user1", w.clk.Now
	var err error
	if w.idp, err = oauthtest.Start(idpOpts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.idp.Close)
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, w.idp.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := saslauth.NewJWTValidator(context.Background(), saslauth.JWTOptions{
		JWKSFile: jwks, Issuer: w.idp.Issuer, Audience: []string{"client-1"}, Now: w.clk.Now, Leeway: time.Second, Logger: quiet(),
	})
	if err != nil {
		t.Fatal(err)
	}
	w.val = &countingValidator{v: v}
	tlsCfg, certPEM := tlsPair(t)
	w.pop = startPostie(t, func(o *pop3server.Options) {
		o.SASL = &sasl.Config{Tokens: w.val}
		o.TLSConfig = tlsCfg
	})
	addr := w.pop.serveTLS(t, tlsCfg)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	w.mdir = filepath.Join(t.TempDir(), "Maildir")
	keys := []string{
		`tls = "implicit"`, "insecure =", fmt.Sprintf("ca_file = %q", ca), "password_env =",
		fmt.Sprintf("maildir = %q", w.mdir),
		`oauth_client_id = "client-1"`, `oauth_client_secret = "not-so-secret"`,
		fmt.Sprintf("oauth_auth_url = %q", w.idp.AuthURL()),
		fmt.Sprintf("oauth_token_url = %q", w.idp.TokenURL()),
		fmt.Sprintf("oauth_device_url = %q", w.idp.DeviceURL()),
		`oauth_scopes = ["mail", "offline_access"]`,
	}
	w.cfg = config(t, account("acct", addr, append(keys, extra...)...))
	w.acct = w.cfg.Accounts[0]
	w.opts = Options{Logger: w.log.logger(), Now: w.clk.Now}
	return w
}

// browserOut is the terminal of `postie fetch login`: when the
// authorization URL appears, it plays the user's browser and fetches it,
// following the redirect to postie's loopback listener.
type browserOut struct {
	t    *testing.T
	mu   sync.Mutex
	buf  strings.Builder
	done chan int // the status the browser saw
}

func (b *browserOut) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.Write(p)
	for line := range strings.Lines(string(p)) {
		if u, ok := strings.CutPrefix(strings.TrimSpace(line), "http://"); ok {
			go func() {
				resp, err := http.Get("http://" + u)
				if err != nil {
					b.t.Errorf("browser: %v", err)
					b.done <- 0
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				b.done <- resp.StatusCode
			}()
		}
	}
	return len(p), nil
}

func (b *browserOut) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (w *oauthWorld) login(t *testing.T) {
	t.Helper()
	out := &browserOut{t: t, done: make(chan int, 1)}
	if err := Login(context.Background(), w.cfg, w.acct, w.opts, LoginOptions{Out: out}); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if status := <-out.done; status != 200 {
		t.Errorf("the browser saw status %d", status)
	}
	if !strings.Contains(out.String(), `Signed in; account "acct" is ready`) {
		t.Errorf("login output:\n%s", out)
	}
}

// noSecrets fails the test when s holds one of the tokens in the token
// file, or the client secret.
func (w *oauthWorld) noSecrets(t *testing.T, what, s string) {
	t.Helper()
	data, _ := os.ReadFile(w.cfg.TokenFile(w.acct))
	secrets := []string{"not-so-secret"}
	for _, key := range []string{`"access_token":"`, `"refresh_token":"`} {
		if _, rest, ok := strings.Cut(string(data), key); ok {
			tok, _, _ := strings.Cut(rest, `"`)
			secrets = append(secrets, tok)
		}
	}
	for _, tok := range secrets[1:] {
		// The SASL messages that carry it, as they go on the wire.
		secrets = append(secrets,
			base64.StdEncoding.EncodeToString([]byte("user=user1\x01auth=Bearer "+tok+"\x01\x01")),
			base64.StdEncoding.EncodeToString([]byte("n,a=user1,\x01auth=Bearer "+tok+"\x01\x01")))
	}
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s shows a secret", what)
		}
	}
}

// TestOAuthLoginFetch: `postie fetch login` through the loopback flow, a
// fetch over XOAUTH2 with the access token, a fetch after the token
// expired (refreshed first), and a revoked consent.
func TestOAuthLoginFetch(t *testing.T) {
	w := newOAuthWorld(t, oauthtest.Options{TokenTTL: time.Hour, RotateRefresh: true}, `auth = "xoauth2"`)
	w.pop.deliver(t, "user1", corpus[0], corpus[1])

	res := New(w.cfg, w.acct, w.opts).Run(context.Background())
	want := `account "acct" is not signed in: run ` + "`postie fetch login acct`"
	if res.Err == nil || res.Err.Kind != KindAuth || res.Err.Error() != want {
		t.Fatalf("before login: %v", res.Err)
	}

	w.login(t)
	path := w.cfg.TokenFile(w.acct)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v", fi.Mode(), err)
	}
	if filepath.Dir(path) != w.cfg.StateDir {
		t.Errorf("token file %s is not in the state directory", path)
	}

	f := New(w.cfg, w.acct, w.opts)
	res = f.Run(context.Background())
	if res.Err != nil || res.Fetched != 2 {
		t.Fatalf("first fetch: %s", res.Summary())
	}
	if got := maildirContents(t, w.mdir); len(got) != 2 || got[0] != lfForm(corpus[0]) || got[1] != lfForm(corpus[1]) {
		t.Errorf("Maildir holds %q", got)
	}
	if n := w.idp.Count("refresh_token"); n != 0 {
		t.Errorf("%d refreshes with a fresh access token", n)
	}

	// 50 minutes on, the token still has 10: the same Fetcher (daemon
	// mode) and a new one (the next --once) use it without a refresh.
	w.clk.Add(50 * time.Minute)
	w.pop.deliver(t, "user1", corpus[2])
	if res := f.Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("second fetch: %s", res.Summary())
	}
	if res := New(w.cfg, w.acct, w.opts).Run(context.Background()); res.Err != nil || w.idp.Count("refresh_token") != 0 {
		t.Fatalf("third fetch: %s, %d refreshes", res.Summary(), w.idp.Count("refresh_token"))
	}

	// 6 more minutes: 4 minutes to live, less than the margin of 5: it
	// is refreshed before it is used, once.
	w.clk.Add(6 * time.Minute)
	w.pop.deliver(t, "user1", corpus[4])
	if res := f.Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("fetch near expiry: %s", res.Summary())
	}
	if n := w.idp.Count("refresh_token"); n != 1 {
		t.Errorf("%d refreshes near expiry, want 1", n)
	}
	// Two hours on: long expired; a new process refreshes it (and the
	// server, which follows the same clock, would refuse the old one).
	w.clk.Add(2 * time.Hour)
	w.pop.deliver(t, "user1", corpus[0])
	if res := New(w.cfg, w.acct, w.opts).Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("fetch after expiry: %s", res.Summary())
	}
	if n := w.idp.Count("refresh_token"); n != 2 {
		t.Errorf("%d refreshes after expiry, want 2", n)
	}
	if n := w.val.n.Load(); n != 5 {
		t.Errorf("the server checked %d tokens in 5 runs", n)
	}

	// The user withdraws consent; the token expires.
	w.idp.RevokeAll()
	w.clk.Add(2 * time.Hour)
	res = f.Run(context.Background())
	want = `account "acct": the sign-in was revoked or has expired: run ` + "`postie fetch login acct`" + ` again`
	if res.Err == nil || res.Err.Kind != KindAuth || res.Err.Error() != want {
		t.Fatalf("revoked: got %v\nwant %s", res.Err, want)
	}
	if !strings.HasSuffix(res.Summary(), ", errors 1: "+want) {
		t.Errorf("summary: %s", res.Summary())
	}
	w.noSecrets(t, "the log", w.log.String())
	w.noSecrets(t, "the error", res.Err.Error())

	// Signing in again mends it, without a restart of the daemon's
	// Fetcher.
	w.login(t)
	w.pop.deliver(t, "user1", corpus[1])
	if res := f.Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("after a new login: %s", res.Summary())
	}
	ents, _ := os.ReadDir(w.cfg.StateDir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("left in the state directory: %s", e.Name())
		}
	}
}

// TestOAuthRefusedOnce: a token the server refuses is refreshed once and
// the login tried once more; a second refusal is the error, not a loop.
func TestOAuthRefusedOnce(t *testing.T) {
	w := newOAuthWorld(t, oauthtest.Options{}) // auth "auto": OAUTHBEARER
	w.login(t)
	w.pop.deliver(t, "user1", corpus[0])
	f := New(w.cfg, w.acct, w.opts)
	w.val.refuse.Store(true)
	res := f.Run(context.Background())
	if res.Err == nil || res.Err.Kind != KindAuth || !strings.Contains(res.Err.Error(), "(AUTH OAUTHBEARER)") {
		t.Fatalf("refused: %v", res.Err)
	}
	if !strings.HasSuffix(res.Err.Error(), "\n  The server refused a fresh token. The sign-in may be for another account than user1\n  (run `postie fetch login acct` again and choose user1), or POP3 may be off for the mailbox.") {
		t.Errorf("no hint: %v", res.Err)
	}
	if n, r := w.val.n.Load(), w.idp.Count("refresh_token"); n != 2 || r != 1 {
		t.Errorf("%d tokens checked and %d refreshes, want 2 and 1", n, r)
	}
	// The server takes tokens again: the first one is refused (say, the
	// server's cache), the refreshed one works.
	w.val.refuse.Store(false)
	var first atomic.Bool
	w.val.v = refuseFirst{w.val.v, &first}
	if res := f.Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("refused then accepted: %s", res.Summary())
	}
	if n, r := w.val.n.Load(), w.idp.Count("refresh_token"); n != 4 || r != 2 {
		t.Errorf("%d tokens checked and %d refreshes, want 4 and 2", n, r)
	}
	w.noSecrets(t, "the log", w.log.String())
}

type refuseFirst struct {
	v    sasl.TokenValidator
	done *atomic.Bool
}

func (r refuseFirst) ValidateToken(ctx context.Context, user, tok string) (string, bool, error) {
	if !r.done.Swap(true) {
		return "", false, nil
	}
	return r.v.ValidateToken(ctx, user, tok)
}

// TestOAuthDaemonRevoked: in daemon mode a revoked sign-in is reported on
// every poll, each poll a single refresh attempt, at the interval.
func TestOAuthDaemonRevoked(t *testing.T) {
	w := newOAuthWorld(t, oauthtest.Options{TokenTTL: time.Minute})
	w.login(t)
	w.idp.RevokeAll()
	w.clk.Add(time.Hour)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reports []*Result
	d := &Daemon{Config: w.cfg, Options: w.opts, Interval: time.Millisecond, MinBackoff: time.Hour,
		Report: func(r *Result) {
			reports = append(reports, r)
			if len(reports) == 3 {
				cancel()
			}
		}}
	if err := d.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("daemon: %v", err)
	}
	for i, r := range reports {
		if r.Err == nil || r.Err.Kind != KindAuth || !strings.Contains(r.Err.Error(), "run `postie fetch login acct` again") || r.Next != time.Millisecond {
			t.Errorf("poll %d: %v, next %v", i, r.Err, r.Next)
		}
	}
	if n := w.idp.Count("refresh_token"); n != 3 {
		t.Errorf("%d refresh attempts in 3 polls", n)
	}
}

// TestOAuthDeviceLogin: `postie fetch login --device`; the test is the
// user who types the code at the verification URI; then a fetch.
func TestOAuthDeviceLogin(t *testing.T) {
	w := newOAuthWorld(t, oauthtest.Options{DeviceInterval: 2 * time.Second})
	var out strings.Builder
	var waits []time.Duration
	w.opts.oauthSleep = func(_ context.Context, d time.Duration) error {
		waits = append(waits, d)
		w.clk.Add(d)
		if len(waits) == 2 {
			var code, verify string
			sc := bufio.NewScanner(strings.NewReader(out.String()))
			for sc.Scan() {
				l := strings.TrimSpace(sc.Text())
				if strings.HasPrefix(l, "http://") {
					verify = l
				} else if len(l) == 9 && l[4] == '-' {
					code = l
				}
			}
			resp, err := http.PostForm(verify, url.Values{"user_code": {code}})
			if err != nil || resp.StatusCode != 200 {
				t.Errorf("approving %q at %q: %v %v", code, verify, resp, err)
			} else {
				resp.Body.Close()
			}
		}
		return nil
	}
	if err := Login(context.Background(), w.cfg, w.acct, w.opts, LoginOptions{Device: true, Out: &out}); err != nil {
		t.Fatalf("device login: %v\n%s", err, out.String())
	}
	// One poll before the approval (authorization_pending), one after,
	// each after the interval.
	if len(waits) != 2 || waits[0] != 2*time.Second || waits[1] != 2*time.Second || w.idp.Count("device_code") != 2 {
		t.Errorf("waits %v, %d polls", waits, w.idp.Count("device_code"))
	}
	w.pop.deliver(t, "user1", corpus[0])
	// With the POP3 conversation logged (--debug): no token in it.
	trace := &captureLog{}
	opts := w.opts
	opts.Logger = slog.New(slog.NewTextHandler(trace, &slog.HandlerOptions{Level: pop3client.LevelTrace}))
	if res := New(w.cfg, w.acct, opts).Run(context.Background()); res.Err != nil || res.Fetched != 1 {
		t.Fatalf("fetch: %s", res.Summary())
	}
	if !strings.Contains(trace.String(), "AUTH") {
		t.Errorf("the trace shows no AUTH:\n%s", trace.String())
	}
	w.noSecrets(t, "the POP3 trace", trace.String())
	fi, err := os.Stat(w.cfg.TokenFile(w.acct))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("token file: %v %v", fi, err)
	}
}

// TestOAuthLoginErrors: consent refused, a wrong client secret, a token
// file that cannot be replaced: clear errors, and the stored sign-in left
// whole.
func TestOAuthLoginErrors(t *testing.T) {
	w := newOAuthWorld(t, oauthtest.Options{})
	w.idp.Deny(true)
	out := &browserOut{t: t, done: make(chan int, 1)}
	err := Login(context.Background(), w.cfg, w.acct, w.opts, LoginOptions{Out: out})
	if err == nil || err.Error() != `account "acct": sign-in failed: authorization endpoint: access_denied (The user said no)` {
		t.Errorf("denied: %v", err)
	}
	<-out.done
	w.idp.Deny(false)
	w.login(t)
	before, _ := os.ReadFile(w.cfg.TokenFile(w.acct))

	bad := *w.acct
	bad.OAuthClientSecret = "wrong"
	out = &browserOut{t: t, done: make(chan int, 1)}
	err = Login(context.Background(), w.cfg, &bad, w.opts, LoginOptions{Out: out})
	var fe *Error
	if !errors.As(err, &fe) || fe.Kind != KindConfig || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("wrong secret: %v", err)
	}
	<-out.done

	// The token file's name taken by a directory: the rename fails, the
	// error says so, nothing is left behind.
	tf := w.cfg.TokenFile(w.acct)
	os.Rename(tf, tf+".saved")
	os.MkdirAll(filepath.Join(tf, "x"), 0o700)
	out = &browserOut{t: t, done: make(chan int, 1)}
	err = Login(context.Background(), w.cfg, w.acct, w.opts, LoginOptions{Out: out})
	if err == nil || !strings.Contains(err.Error(), "token file") {
		t.Errorf("unwritable token file: %v", err)
	}
	<-out.done
	ents, _ := os.ReadDir(w.cfg.StateDir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".tmp") {
			t.Errorf("left in the state directory: %s", e.Name())
		}
	}
	os.RemoveAll(tf)
	os.Rename(tf+".saved", tf)
	if after, _ := os.ReadFile(tf); string(after) != string(before) {
		t.Errorf("token file changed by failed logins")
	}

	// A damaged token file: sign in again.
	os.WriteFile(tf, []byte(`{"version":1,"refresh_token":`), 0o600)
	res := New(w.cfg, w.acct, w.opts).Run(context.Background())
	want := fmt.Sprintf("account \"acct\": the token file %s is damaged or not postie's (version 1): run `postie fetch login acct` again", tf)
	if res.Err == nil || res.Err.Kind != KindAuth || res.Err.Error() != want {
		t.Errorf("damaged token file: %v", res.Err)
	}

	noDevice := *w.acct
	noDevice.OAuthDeviceURL = ""
	err = Login(context.Background(), w.cfg, &noDevice, w.opts, LoginOptions{Device: true})
	if err == nil || err.Error() != `account "acct": the provider offers no device sign-in (no oauth_device_url); sign in without --device, with a browser` {
		t.Errorf("no device endpoint: %v", err)
	}
	w.noSecrets(t, "the log", w.log.String())
}
