package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/internal/testenv"
)

// screenshotsEnv names the variable that makes TestWebBrowser write its
// screenshots into docs/ (web-*.png, shown in docs/web.md).
const screenshotsEnv = "POSTIE_WEB_SCREENSHOTS"

// webServer starts postie serve with POP3, POP3S, the web listener and
// the admin listener, a certificate for mail.example.org, failure delays
// that also apply to loopback (no trusted networks), and alice with
// password, who has one message.
func webServer(t *testing.T, password, webExtra string) *testenv.Postie {
	t.Helper()
	dir := t.TempDir()
	webCert(t, dir, "mail.example.org")
	if webExtra != "" {
		hash, err := auth.Hash("SHA512-CRYPT", "admin-password-1")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "admins"), []byte("admin:"+hash+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p := testenv.NewPostie(t, testenv.PostieOptions{Dir: dir, Config: `[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
auth_fail_delay = "250ms"
trusted_networks = []
expire = 30
[lmtp]
listen = ["127.0.0.1:0"]
[auth]
cache_ttl = "0s"
default_scheme = "SHA512-CRYPT"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[intake]
local_domains = ["example.org"]
quota_bytes = "1M"
[admin]
listen = "127.0.0.1:0"
[web]
listen = ["127.0.0.1:0"]
` + webExtra})
	p.MustRun(t, password+"\n", "user", "add", "--password-stdin", "alice")
	p.MustRun(t, "Subject: hello\n\nThe first message.\n", "deliver", "alice@example.org")
	p.Start(t)
	return p
}

// pop3Login logs in over POP3S (real TCP, the real server) and returns
// the reply to PASS.
func pop3Login(t *testing.T, p *testenv.Postie, user, password string) string {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", p.POP3S, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	pc := &pop3Conn{t: t, c: c, br: bufio.NewReader(c)}
	if g := pc.line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	pc.cmd("+OK send PASS", "USER "+user)
	reply := pc.cmd("", "PASS "+password)
	pc.c.Write([]byte("QUIT\r\n"))
	return reply
}

func adminMetric(t *testing.T, p *testenv.Postie, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + p.Admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("no metric %s", name)
	}
	return m[1]
}

// browser starts headless Chromium with a phone's screen.
func browser(t *testing.T) context.Context {
	t.Helper()
	chromium := testenv.LookPath(t, "chromium")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		// The test's certificate is its own, self-signed.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(390, 844),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	// A guard against a hung browser, not a speed requirement.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancelCtx := chromedp.NewContext(ctx)
	t.Cleanup(cancelCtx)
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return ctx
}

// shot writes a screenshot of the page as docs/web-NAME.png when
// POSTIE_WEB_SCREENSHOTS is set.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv(screenshotsEnv) == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "web-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// TestWebBrowser is the account page in a real browser against the real
// server: a wrong password is refused after the failure delay (the delay
// counter and log line prove it fired), a login shows the mailbox, a
// password change takes effect for POP3 at once (the new password works,
// the old one is refused), the POP3 login shows among the last logins,
// and a form posted from another site is refused.
func TestWebBrowser(t *testing.T) {
	ctx := browser(t)
	p := webServer(t, "old-password-1", "")
	base := "https://" + p.Web

	// /admin is off by default.
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if resp, err := insecure.Get(base + "/admin"); err != nil || resp.StatusCode != 404 {
		t.Errorf("/admin without web.admin_passwd_file: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}

	do(t, ctx, "login page", chromedp.Navigate(base+"/account"), chromedp.WaitVisible(chromedp.ID("user")))
	if title, _ := chromedp.Run(ctx, chromedp.Title()); title != "Log in" {
		t.Errorf("title %q", title)
	}
	shot(t, ctx, "login")

	// A wrong password: refused, after the failure delay.
	do(t, ctx, "wrong password",
		chromedp.SendKeys(chromedp.ID("user"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "wrong-password-9"),
		chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	if got := text(t, ctx, ".error"); got != "Wrong user name or password." {
		t.Errorf("error %q", got)
	}
	shot(t, ctx, "login-failed")
	if n := adminMetric(t, p, "postie_pop3_auth_delayed_total"); n != "1" {
		t.Errorf("postie_pop3_auth_delayed_total %s, want 1", n)
	}
	p.WaitLog(t, `msg="authentication failed" via=web remote=127\.0\.0\.1 user=alice delay=250ms`)

	do(t, ctx, "login",
		chromedp.SendKeys(chromedp.ID("user"), "alice@example.org"),
		chromedp.SendKeys(chromedp.ID("password"), "old-password-1"),
		chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.ID("who")))
	if got := text(t, ctx, "#who"); got != "alice" {
		t.Errorf("logged in as %q", got)
	}
	if got := text(t, ctx, "#messages"); got != "1" {
		t.Errorf("messages %q", got)
	}
	if got := text(t, ctx, "#size"); !regexp.MustCompile(`^\d+ bytes of 1\.0 MiB \(0%\)$`).MatchString(got) {
		t.Errorf("size %q", got)
	}
	shot(t, ctx, "account")

	do(t, ctx, "change the password",
		chromedp.SendKeys(chromedp.ID("current"), "old-password-1"),
		chromedp.SendKeys(chromedp.ID("new"), "new-password-22"),
		chromedp.SendKeys(chromedp.ID("again"), "new-password-22"),
		chromedp.Click(chromedp.CSS(`form[action="/account/password"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if got := text(t, ctx, ".notice"); got != "Your password has been changed. Your mail programs need the new one from now on." {
		t.Errorf("notice %q", got)
	}
	shot(t, ctx, "password-changed")

	// The running server takes the new password at once, no SIGHUP.
	if r := pop3Login(t, p, "alice", "new-password-22"); !strings.HasPrefix(r, "+OK logged in, 1 messages (") {
		t.Errorf("POP3 with the new password: %q", r)
	}
	if r := pop3Login(t, p, "alice", "old-password-1"); r != "-ERR [AUTH] invalid user name or password" {
		t.Errorf("POP3 with the old password: %q", r)
	}
	// The POP3 login is among the last logins.
	do(t, ctx, "reload", chromedp.Navigate(base+"/account"), chromedp.WaitVisible(chromedp.ID("who")))
	if got := text(t, ctx, "ul.logins"); !regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d UTC\n?\s*127\.0\.0\.1 · pop3: USER, TLS\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\n?\s*127\.0\.0\.1 · web: Headless Chrome on Linux$`).MatchString(got) {
		t.Errorf("last logins:\n%s", got)
	}

	// Another site posts a form to the account page: refused (the browser
	// says Sec-Fetch-Site: cross-site; SameSite=Strict keeps the cookie
	// home too), and the password stays.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `<!DOCTYPE html><title>prize</title>
<form method="post" action="%s/account/password">
<input name="current" value="new-password-22"><input name="new" value="evil-password-1"><input name="again" value="evil-password-1">
<button id="go">Claim your prize</button></form>`, base)
	}))
	defer evil.Close()
	_, port, _ := net.SplitHostPort(evil.Listener.Addr().String())
	do(t, ctx, "cross-site post",
		chromedp.Navigate("http://localhost:"+port+"/"),
		chromedp.Click(chromedp.ID("go")),
		chromedp.WaitVisible(chromedp.CSS("pre")))
	if got := text(t, ctx, "pre"); got != "Cross-origin request refused." {
		t.Errorf("cross-site post answered %q", got)
	}
	p.WaitLog(t, `msg="web: cross-origin request refused" remote=127\.0\.0\.1 path=/account/password origin=http://localhost:`+port+` sec_fetch_site=cross-site`)
	if r := pop3Login(t, p, "alice", "new-password-22"); !strings.HasPrefix(r, "+OK logged in") {
		t.Errorf("after the cross-site post the password changed: %q", r)
	}

	do(t, ctx, "log out",
		chromedp.Navigate(base+"/account"),
		chromedp.Click(chromedp.CSS(`form[action="/account/logout"] button`)),
		chromedp.WaitVisible(chromedp.ID("password")))
	if strings.Contains(p.Log(), "old-password-1") || strings.Contains(p.Log(), "new-password-22") || strings.Contains(p.Log(), "wrong-password-9") {
		t.Error("a password is in the server's log")
	}
}

// TestWebAdminBrowser: /admin, on with web.admin_passwd_file, in a real
// browser: a mail user's password does not open it, the admin's does; it
// lists the open POP3 session, the user's quota use, an LMTP delivery and
// the certificate's expiry; "Disconnect" closes the POP3 session.
func TestWebAdminBrowser(t *testing.T) {
	ctx := browser(t)
	p := webServer(t, "alice-password-1", "admin_passwd_file = \"admins\"\n")
	base := "https://" + p.Web
	lmtpDeliver(t, p.LMTP, "alice@example.org", "Subject: second\r\n\r\nover LMTP\r\n")
	// Over the 1M quota: refused at the end of DATA, a failed delivery.
	if r := lmtpOverQuota(t, p.LMTP, "alice@example.org", "Subject: big\r\n\r\n"+strings.Repeat(strings.Repeat("x", 1000)+"\r\n", 1100)); !strings.HasPrefix(r, "552 ") {
		t.Errorf("over-quota delivery answered %q", r)
	}

	// A POP3 session that stays open.
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", p.POP3S, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	pc := &pop3Conn{t: t, c: c, br: bufio.NewReader(c)}
	pc.line()
	pc.cmd("+OK", "USER alice")
	pc.cmd("+OK logged in, 2 messages", "PASS alice-password-1")

	do(t, ctx, "admin login page", chromedp.Navigate(base+"/admin"), chromedp.WaitVisible(chromedp.ID("user")))
	do(t, ctx, "a mail user's password",
		chromedp.SendKeys(chromedp.ID("user"), "alice"),
		chromedp.SendKeys(chromedp.ID("password"), "alice-password-1"),
		chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.CSS(".error")))
	do(t, ctx, "admin login",
		chromedp.SendKeys(chromedp.ID("user"), "admin"),
		chromedp.SendKeys(chromedp.ID("password"), "admin-password-1"),
		chromedp.Click(chromedp.CSS("form button")),
		chromedp.WaitVisible(chromedp.ID("who")))
	if got := text(t, ctx, "#who"); got != "admin" {
		t.Errorf("logged in as %q", got)
	}
	sessions := text(t, ctx, "#sessions")
	m := regexp.MustCompile(`session (\w+)\s+127\.0\.0\.1 · alice`).FindStringSubmatch(sessions)
	if m == nil {
		t.Fatalf("sessions:\n%s", sessions)
	}
	if got := text(t, ctx, "#users"); !regexp.MustCompile(`^alice 2 messages, \d+ bytes of 1\.0 MiB \(0%\)$`).MatchString(got) {
		t.Errorf("users: %q", got)
	}
	deliveries := text(t, ctx, "#deliveries")
	if !regexp.MustCompile(`(?s)LMTP → alice, 1\.\d MiB: over_quota.*LMTP → alice, \d+ bytes: ok`).MatchString(deliveries) {
		t.Errorf("deliveries:\n%s", deliveries)
	}
	if got := text(t, ctx, "#certificates"); !regexp.MustCompile(`^mail\.example\.org expires \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in 0 days\)`).MatchString(got) {
		t.Errorf("certificates: %q", got)
	}
	shot(t, ctx, "admin")

	do(t, ctx, "disconnect",
		chromedp.Click(chromedp.CSS(`form[action="/admin/disconnect"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if got := text(t, ctx, ".notice"); got != "Session "+m[1]+" disconnected." {
		t.Errorf("notice %q", got)
	}
	if l, err := pc.br.ReadString('\n'); err == nil {
		t.Errorf("the POP3 session goes on after Disconnect: %q", l)
	}
	p.WaitLog(t, `msg="admin disconnected a session" admin=admin session=`+m[1])
	if strings.Contains(p.Log(), "admin-password-1") {
		t.Error("the admin's password is in the log")
	}
}

// lmtpOverQuota sends one message over LMTP and returns the reply to its
// data (the test expects a refusal, which lmtpDeliver does not allow).
func lmtpOverQuota(t *testing.T, addr, rcpt, body string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	last := func() string {
		for {
			l, err := br.ReadString('\n')
			if err != nil || len(l) < 4 || l[3] != '-' {
				return l
			}
		}
	}
	last()
	for _, cmd := range []string{"LHLO test.example\r\n", "MAIL FROM:<sender@example.net>\r\n", "RCPT TO:<" + rcpt + ">\r\n", "DATA\r\n"} {
		c.Write([]byte(cmd))
		last()
	}
	c.Write([]byte(body + ".\r\n"))
	return last()
}

// The web listener speaks TLS as POP3S does: TLS 1.2 at least, the
// certificate of [tls].
func TestWebTLSPolicy(t *testing.T) {
	t.Parallel()
	p := webServer(t, "old-password-1", "")
	if c, err := tls.Dial("tcp", p.Web, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
	c, err := tls.Dial("tcp", p.Web, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatalf("TLS 1.2: %v", err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.NegotiatedProtocol != "http/1.1" || st.PeerCertificates[0].DNSNames[0] != "mail.example.org" {
		t.Errorf("ALPN %q, certificate %v", st.NegotiatedProtocol, st.PeerCertificates[0].DNSNames)
	}
}
