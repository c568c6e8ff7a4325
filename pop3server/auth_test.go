package pop3server_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/sasl"
)

type scramUsers struct{}

func (scramUsers) SCRAMCredentials(_ context.Context, user, mech string) (sasl.SCRAMCredentials, string, bool, error) {
	if user != "user1" {
		return sasl.SCRAMCredentials{}, "", false, nil
	}
	c, err := sasl.NewSCRAMCredentials(mech, "pass1", 4096)
	return c, user, err == nil, err
}

type tokens struct{}

func (tokens) ValidateToken(_ context.Context, user, token string) (string, bool, error) {
	return user, user == "user1" && token == strings.Repeat("t", 4000), nil
}

func withSASL(o *pop3server.Options) {
	o.SASL = &sasl.Config{Passwords: users, SCRAM: scramUsers{}, SCRAMSecret: []byte("k"), Tokens: tokens{}}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestAuthPlainTranscripts(t *testing.T) {
	s := startPostie(t, withSASL)
	s.deliverCorpus(t, "user1")
	loggedIn := "S: +OK logged in, 3 messages ({total} octets)\n"
	for _, script := range []string{
		// initial response on the AUTH line
		greet + "C: AUTH PLAIN " + b64("\x00user1\x00pass1") + "\n" + loggedIn + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		// no initial response: empty challenge, then the response
		greet + "C: AUTH plain\nS: + \nC: " + b64("\x00user1\x00pass1") + "\n" + loggedIn + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		// cancel, bad base64, unknown mechanism, wrong password
		greet + "C: AUTH PLAIN\nS: + \nC: *\nS: -ERR authentication canceled\n" +
			"C: AUTH PLAIN !!!\nS: -ERR invalid base64 in initial response\n" +
			"C: AUTH CRAM-MD5\nS: -ERR unrecognized authentication type\n" +
			"C: AUTH PLAIN " + b64("\x00user1\x00nope") + "\nS: -ERR [AUTH] authentication failed\nC: QUIT\nS: +OK bye\nE:",
		// LOGIN
		greet + "C: AUTH LOGIN\nS: + " + b64("Username:") + "\nC: " + b64("user1") + "\nS: + " + b64("Password:") + "\nC: " + b64("pass1") + "\n" + loggedIn + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		// the mechanism list, and CAPA's SASL line
		greet + "C: AUTH\nS: +OK mechanisms follow\nD: SCRAM-SHA-256\nD: SCRAM-SHA-1\nD: OAUTHBEARER\nD: XOAUTH2\nD: PLAIN\nD: LOGIN\nD: .\n" +
			"C: CAPA\nS: +OK capability list follows\nD: TOP\nD: USER\nD: UIDL\nD: RESP-CODES\nD: AUTH-RESP-CODE\nD: PIPELINING\nD: SASL SCRAM-SHA-256 SCRAM-SHA-1 OAUTHBEARER XOAUTH2 PLAIN LOGIN\nD: IMPLEMENTATION postie\nD: .\nC: QUIT\nS: +OK bye\nE:",
		// an XOAUTH2 token of 4 KB sent only as a continuation line
		greet + "C: AUTH XOAUTH2\nS: + \nC: " + b64("user=user1\x01auth=Bearer "+strings.Repeat("t", 4000)+"\x01\x01") + "\n" + loggedIn + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:",
	} {
		runScript(t, s.addr, testenv.Exact, expand(script, "user1", nil))
	}
}

// SCRAM-SHA-256 with an independent client implementation (xdg-go/scram).
func TestAuthSCRAM(t *testing.T) {
	s := startPostie(t, withSASL)
	s.deliverCorpus(t, "user1")
	for _, tc := range []struct {
		mech string
		hash scram.HashGeneratorFcn
		pass string
		ok   bool
	}{{"SCRAM-SHA-256", scram.SHA256, "pass1", true}, {"SCRAM-SHA-1", scram.SHA1, "pass1", true}, {"SCRAM-SHA-256", scram.SHA256, "wrong", false}} {
		cl := dial(t, s.addr)
		client, err := tc.hash.NewClient("user1", tc.pass, "")
		if err != nil {
			t.Fatal(err)
		}
		conv := client.NewConversation()
		first, _ := conv.Step("")
		cl.send("AUTH " + tc.mech + " " + b64(first))
		line, _ := cl.line()
		if !strings.HasPrefix(line, "+ ") {
			t.Fatalf("%s: %q", tc.mech, line)
		}
		serverFirst, _ := base64.StdEncoding.DecodeString(line[2:])
		final, err := conv.Step(string(serverFirst))
		if err != nil {
			t.Fatal(err)
		}
		cl.send(b64(final))
		line, _ = cl.line()
		if !tc.ok {
			if line != "-ERR [AUTH] authentication failed" {
				t.Fatalf("%s wrong password: %q", tc.mech, line)
			}
			continue
		}
		// Server-final with its signature comes as a challenge the
		// client verifies, then an empty response (RFC 5034 §4).
		serverFinal, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "+ "))
		if _, err := conv.Step(string(serverFinal)); err != nil || !conv.Valid() {
			t.Fatalf("%s: server signature not valid: %q %v", tc.mech, line, err)
		}
		cl.send("")
		l, _ := cl.line()
		if !strings.HasPrefix(l, "+OK logged in") {
			t.Fatalf("%s: %q", tc.mech, l)
		}
		cl.cmd("QUIT", "+OK bye, 0 messages deleted")
	}
}

// Without TLS from an untrusted network, cleartext logins are refused
// and CAPA hides them.
func TestCleartextPolicy(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) {
		withSASL(o)
		o.TrustedNets = []netip.Prefix{} // not even loopback
	})
	s.deliverCorpus(t, "user1")
	script := greet +
		"C: CAPA\nS: +OK capability list follows\nD: TOP\nD: UIDL\nD: RESP-CODES\nD: AUTH-RESP-CODE\nD: PIPELINING\nD: SASL SCRAM-SHA-256 SCRAM-SHA-1\nD: IMPLEMENTATION postie\nD: .\n" +
		"C: USER user1\nS: -ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port\n" +
		"C: PASS pass1\nS: -ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port\n" +
		"C: AUTH PLAIN " + b64("\x00user1\x00pass1") + "\nS: -ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port\n" +
		"C: QUIT\nS: +OK bye\nE:"
	runScript(t, s.addr, testenv.Exact, script)
}

// The cleartext decision is made once per connection and again after
// STLS: an untrusted client is refused USER and AUTH PLAIN before STLS
// and may use both inside TLS, where CAPA offers them.
func TestCleartextAfterSTLS(t *testing.T) {
	cfg, _ := testenv.ServerTLSConfig(t)
	s := startPostie(t, func(o *pop3server.Options) {
		withSASL(o)
		o.TrustedNets = []netip.Prefix{}
		o.TLSConfig = cfg
	})
	s.deliverCorpus(t, "user1")
	cl := dial(t, s.addr)
	const refused = "-ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port"
	cl.cmd("USER user1", refused)
	cl.cmd("AUTH PLAIN "+b64("\x00user1\x00pass1"), refused)
	cl.cmd("STLS", "+OK begin TLS negotiation")
	tc := tls.Client(cl.c, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	tcl := &client{t: t, c: tc, br: bufio.NewReader(tc)}
	tcl.send("CAPA")
	var capa []string
	for {
		l, err := tcl.line()
		if err != nil {
			t.Fatal(err)
		}
		if l == "." {
			break
		}
		capa = append(capa, l)
	}
	if got, want := strings.Join(capa, "|"), "+OK capability list follows|TOP|USER|UIDL|RESP-CODES|AUTH-RESP-CODE|PIPELINING|SASL SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 OAUTHBEARER XOAUTH2 PLAIN LOGIN|IMPLEMENTATION postie"; got != want {
		t.Fatalf("CAPA inside TLS:\n%s\nwant\n%s", got, want)
	}
	tcl.cmd("AUTH PLAIN "+b64("\x00user1\x00nope"), "-ERR [AUTH] authentication failed")
	tcl.login("user1", "pass1")
	tcl.cmd("QUIT", "+OK bye, 0 messages deleted")
}

func dialFrom(t testing.TB, local, addr string) *client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &client{t: t, c: c, br: newReader(c)}
	return cl
}

// The flood: one address guessing passwords is slowed more and more and
// finally banned, while another address logs in at once.
func TestPasswordFlood(t *testing.T) {
	const base = 40 * time.Millisecond
	s := startPostie(t, func(o *pop3server.Options) {
		o.TrustedNets = []netip.Prefix{}
		o.AllowCleartext = true
		o.Limits.AuthFailDelay = base
		o.Limits.MaxAuthFailDelay = 64 * base
		o.Limits.BanAfter = 6
		o.Limits.BanDuration = time.Minute
	})
	s.deliverCorpus(t, "user2")
	goodLogin := func() {
		good := dialFrom(t, "127.0.0.3", s.addr)
		good.expect("+OK postie POP3 server ready")
		good.login("user2", "pass2")
		good.cmd("QUIT", "+OK bye, 0 messages deleted")
	}
	// Delays grow: base, 2×, 4×, 8×, 16× (lower bounds only: a loaded
	// machine may add to them, never take away).
	for i, want := range []time.Duration{base, 2 * base, 4 * base, 8 * base, 16 * base} {
		cl := dialFrom(t, "127.0.0.2", s.addr)
		cl.expect("+OK postie POP3 server ready")
		cl.cmd("USER user1", "+OK send PASS")
		start := time.Now()
		cl.cmd("PASS guess", "-ERR [AUTH] invalid user name or password")
		if d := time.Since(start); d < want {
			t.Errorf("failure %d answered after %v, want ≥ %v", i+1, d, want)
		}
		goodLogin()
	}
	// Other addresses do not wait: while the sixth failure's reply waits
	// 32× base (1.28 s), another address logs in, and is done first.
	cl := dialFrom(t, "127.0.0.2", s.addr)
	cl.expect("+OK postie POP3 server ready")
	cl.cmd("USER user1", "+OK send PASS")
	cl.send("PASS guess")
	type reply struct {
		line string
		at   time.Time
	}
	replied := make(chan reply, 1)
	go func() {
		l, _ := cl.line()
		replied <- reply{l, time.Now()}
	}()
	goodLogin()
	goodDone := time.Now()
	r := <-replied
	if r.line != "-ERR [AUTH] invalid user name or password" {
		t.Errorf("sixth failure answered %q", r.line)
	}
	if r.at.Before(goodDone) {
		t.Errorf("the login from another address ended %v after the flood's delayed reply", goodDone.Sub(r.at))
	}
	// Banned now.
	c := dialFrom(t, "127.0.0.2", s.addr)
	if l, _ := c.line(); l != "-ERR [SYS/TEMP] too many failed logins from your address, try again later" {
		t.Fatalf("banned address got %q", l)
	}
	// The good address is not.
	good := dialFrom(t, "127.0.0.3", s.addr)
	good.expect("+OK postie POP3 server ready")
}

// SASL failures count against the user the client named, as failed PASS
// commands do: guesses at user1's password through AUTH PLAIN and LOGIN
// raise user1's delay for USER/PASS too (and the reverse), while one typo
// by user2 from another address waits only the base delay. The delays
// are read from the "authentication failed" lines, which name the user.
func TestSASLFailuresCountPerUser(t *testing.T) {
	logs := &syncBuf{}
	s := startPostie(t, func(o *pop3server.Options) {
		withSASL(o)
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "session" {
				return slog.Attr{}
			}
			return a
		}}))
		o.TrustedNets = []netip.Prefix{}
		o.AllowCleartext = true
		o.Limits.AuthFailDelay = time.Millisecond
		o.Limits.MaxAuthFailDelay = time.Second
	})
	s.deliverCorpus(t, "user2")
	guess := func(from string, cmds ...[2]string) {
		t.Helper()
		cl := dialFrom(t, from, s.addr)
		cl.expect("+OK postie POP3 server ready")
		for _, c := range cmds {
			cl.cmd(c[0], c[1])
		}
		cl.c.Close()
	}
	const failed = "-ERR [AUTH] authentication failed"
	// An attacker from .2 guesses user1's password through both
	// mechanisms, and once with a name in another case.
	guess("127.0.0.2",
		[2]string{"AUTH PLAIN " + b64("\x00user1\x00guess1"), failed},
		[2]string{"AUTH LOGIN", "+ " + b64("Username:")},
		[2]string{b64("USER1"), "+ " + b64("Password:")},
		[2]string{b64("guess2"), failed})
	// user2 mistypes once from .3, then logs in through PLAIN.
	guess("127.0.0.3",
		[2]string{"AUTH PLAIN " + b64("\x00user2\x00typo"), failed},
		[2]string{"AUTH PLAIN " + b64("\x00user2\x00pass2"), "+OK logged in, 3 messages (" + itoa(totalSize()) + " octets)"})
	// A guess at user1 by USER/PASS from .4 meets user1's record.
	guess("127.0.0.4",
		[2]string{"USER user1", "+OK send PASS"},
		[2]string{"PASS guess3", "-ERR [AUTH] invalid user name or password"})
	// And a SCRAM guess from .5 meets it too: a wrong proof.
	cl := dialFrom(t, "127.0.0.5", s.addr)
	cl.expect("+OK postie POP3 server ready")
	cl.send("AUTH SCRAM-SHA-256 " + b64("n,,n=user1,r=abcdefghijkl"))
	l, err := cl.line()
	first, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(l, "+ "))
	nonce, _, _ := strings.Cut(strings.TrimPrefix(string(first), "r="), ",")
	if err != nil || !strings.HasPrefix(nonce, "abcdefghijkl") {
		t.Fatalf("SCRAM server-first %q (%q), %v", l, first, err)
	}
	cl.cmd(b64("c=biws,r="+nonce+",p="+b64(strings.Repeat("x", 32))), failed)

	var got []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="authentication failed"`) {
			got = append(got, l)
		}
	}
	want := []string{
		`level=WARN msg="authentication failed" remote=127.0.0.2 user=user1 delay=1ms mech=PLAIN`,
		`level=WARN msg="authentication failed" remote=127.0.0.2 user=USER1 delay=2ms mech=LOGIN`,
		`level=WARN msg="authentication failed" remote=127.0.0.3 user=user2 delay=1ms mech=PLAIN`,
		`level=WARN msg="authentication failed" remote=127.0.0.4 user=user1 delay=4ms`,
		`level=WARN msg="authentication failed" remote=127.0.0.5 user=user1 delay=8ms mech=SCRAM-SHA-256`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("failure lines:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoginDelay(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) { o.Limits.LoginDelay = time.Hour })
	s.deliverCorpus(t, "user1")
	cl := dial(t, s.addr)
	cl.send("CAPA")
	found := false
	for l, _ := cl.line(); l != "."; l, _ = cl.line() {
		found = found || l == "LOGIN-DELAY 3600"
	}
	if !found {
		t.Fatal("CAPA lacks LOGIN-DELAY 3600")
	}
	cl.login("user1", "pass1")
	cl.cmd("QUIT", "+OK bye, 0 messages deleted")
	cl = dial(t, s.addr)
	cl.cmd("USER user1", "+OK send PASS")
	cl.cmd("PASS pass1", "-ERR [LOGIN-DELAY] minimum time between logins not yet passed")
}

// Clients such as mpop send a long OAuth token as the initial response on
// the AUTH line itself (against RFC 5034 §4); it is accepted, while other
// commands stay limited to 255 octets.
func TestAuthLongInitialResponse(t *testing.T) {
	s := startPostie(t, withSASL)
	s.deliverCorpus(t, "user1")
	token := b64("user=user1\x01auth=Bearer " + strings.Repeat("t", 4000) + "\x01\x01")
	script := greet +
		"C: USER " + strings.Repeat("u", 300) + "\nS: -ERR line too long\n" +
		"C: AUTH XOAUTH2 " + token + "\nS: +OK logged in, 3 messages ({total} octets)\n" +
		"C: NOOP " + strings.Repeat("x", 300) + "\nS: -ERR line too long\n" +
		"C: QUIT\nS: +OK bye, 0 messages deleted\nE:"
	runScript(t, s.addr, testenv.Exact, expand(script, "user1", nil))
}
