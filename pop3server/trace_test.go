package pop3server_test

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/postie-mail/postie/pop3server"
)

// The protocol trace: sessions selected by address or user log every
// command and reply line at debug level, with credentials redacted and
// message texts left out; other sessions log none, and the selection
// changes for sessions already running.
func TestTrace(t *testing.T) {
	logs := &syncBuf{}
	trace := &pop3server.Trace{}
	trace.Set([]string{"USER3"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})
	s := startPostie(t, func(o *pop3server.Options) {
		withSASL(o)
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == "session" {
				return slog.Attr{}
			}
			return a
		}}))
		o.Trace = trace
	})
	s.deliverCorpus(t, "user1")
	s.deliverCorpus(t, "user2")
	total := itoa(totalSize())
	multi := func(cl *client, cmd, status string) {
		t.Helper()
		cl.cmd(cmd, status)
		for {
			l, err := cl.line()
			if err != nil {
				t.Fatal(err)
			}
			if l == "." {
				return
			}
		}
	}

	// Selected by address: everything but secrets and texts.
	a := dialFrom(t, "127.0.0.2", s.addr)
	a.expect("+OK postie POP3 server ready")
	a.cmd("APOP user1 0123456789abcdef0123456789abcdef", "-ERR APOP not enabled")
	a.login("user1", "pass1")
	a.cmd("STAT", "+OK 3 "+total)
	multi(a, "LIST", "+OK 3 messages ("+total+" octets)")
	multi(a, "RETR 1", "+OK "+itoa(wireSize(0))+" octets")
	multi(a, "TOP 2 1", "+OK top of message follows")
	a.cmd("XTND XMIT", "-ERR unknown command")
	a.cmd("hunter2-is-my-password", "-ERR unknown command")
	a.cmd("\x01hunter3", "-ERR unknown command")
	a.cmd("NOOP "+strings.Repeat("hunter4", 40), "-ERR line too long")
	a.cmd("QUIT", "+OK bye, 0 messages deleted")

	// Not selected: nothing, until the selection takes in its address
	// while it runs, and after the selection is emptied, nothing again.
	b := dialFrom(t, "127.0.0.3", s.addr)
	b.expect("+OK postie POP3 server ready")
	b.login("user2", "pass2")
	b.cmd("STAT", "+OK 3 "+total)
	trace.Set(nil, []netip.Prefix{netip.MustParsePrefix("127.0.0.3/32")})
	b.cmd("NOOP", "+OK")
	trace.Set(nil, nil)
	b.cmd("QUIT", "+OK bye, 0 messages deleted")
	trace.Set([]string{"user3"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")})

	// Selected by the user logged in through AUTH: from the login on.
	c := dialFrom(t, "127.0.0.4", s.addr)
	c.expect("+OK postie POP3 server ready")
	c.cmd("AUTH PLAIN "+b64("\x00user3\x00pass3"), "+OK logged in, 0 messages (0 octets)")
	c.cmd("QUIT", "+OK bye, 0 messages deleted")

	// SASL lines by address: redacted both ways.
	d := dialFrom(t, "127.0.0.2", s.addr)
	d.expect("+OK postie POP3 server ready")
	d.cmd("AUTH LOGIN", "+ "+b64("Username:"))
	d.cmd(b64("user1"), "+ "+b64("Password:"))
	d.cmd(b64("pass1"), "+OK logged in, 3 messages ("+total+" octets)")
	d.cmd("QUIT", "+OK bye, 0 messages deleted")

	// Selected by the name given to USER: from that command on.
	e := dialFrom(t, "127.0.0.5", s.addr)
	e.expect("+OK postie POP3 server ready")
	e.cmd("NOOP", "-ERR command not valid before login")
	e.cmd("USER User3", "+OK send PASS")
	e.cmd("PASS pass3-typo", "-ERR [AUTH] invalid user name or password")
	e.cmd("QUIT", "+OK bye")

	top := len("From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\n")
	want := []string{
		`remote=127.0.0.2 s="+OK postie POP3 server ready"`,
		`remote=127.0.0.2 c="APOP user1 <redacted>"`,
		`remote=127.0.0.2 s="-ERR APOP not enabled"`,
		`remote=127.0.0.2 c="USER user1"`,
		`remote=127.0.0.2 s="+OK send PASS"`,
		`remote=127.0.0.2 c="PASS <redacted>"`,
		`remote=127.0.0.2 user=user1 s="+OK logged in, 3 messages (` + total + ` octets)"`,
		`remote=127.0.0.2 user=user1 c=STAT`,
		`remote=127.0.0.2 user=user1 s="+OK 3 ` + total + `"`,
		`remote=127.0.0.2 user=user1 c=LIST`,
		`remote=127.0.0.2 user=user1 s="+OK 3 messages (` + total + ` octets)"`,
		`remote=127.0.0.2 user=user1 s="1 ` + itoa(wireSize(0)) + `"`,
		`remote=127.0.0.2 user=user1 s="2 ` + itoa(wireSize(1)) + `"`,
		`remote=127.0.0.2 user=user1 s="3 ` + itoa(wireSize(2)) + `"`,
		`remote=127.0.0.2 user=user1 s=.`,
		`remote=127.0.0.2 user=user1 c="RETR 1"`,
		`remote=127.0.0.2 user=user1 s="+OK ` + itoa(wireSize(0)) + ` octets"`,
		`remote=127.0.0.2 user=user1 s="<message text not logged: ` + itoa(wireSize(0)) + ` octets and the terminating line>"`,
		`remote=127.0.0.2 user=user1 c="TOP 2 1"`,
		`remote=127.0.0.2 user=user1 s="+OK top of message follows"`,
		`remote=127.0.0.2 user=user1 s="<message text not logged: ` + itoa(top) + ` octets and the terminating line>"`,
		`remote=127.0.0.2 user=user1 c="XTND <arguments not logged>"`,
		`remote=127.0.0.2 user=user1 s="-ERR unknown command"`,
		`remote=127.0.0.2 user=user1 c="<unknown command>"`,
		`remote=127.0.0.2 user=user1 s="-ERR unknown command"`,
		`remote=127.0.0.2 user=user1 c="<unknown command>"`,
		`remote=127.0.0.2 user=user1 s="-ERR unknown command"`,
		`remote=127.0.0.2 user=user1 c="<line too long>"`,
		`remote=127.0.0.2 user=user1 s="-ERR line too long"`,
		`remote=127.0.0.2 user=user1 c=QUIT`,
		`remote=127.0.0.2 user=user1 s="+OK bye, 0 messages deleted"`,

		`remote=127.0.0.3 user=user2 c=NOOP`,
		`remote=127.0.0.3 user=user2 s=+OK`,

		`remote=127.0.0.4 user=user3 s="+OK logged in, 0 messages (0 octets)"`,
		`remote=127.0.0.4 user=user3 c=QUIT`,
		`remote=127.0.0.4 user=user3 s="+OK bye, 0 messages deleted"`,

		`remote=127.0.0.2 s="+OK postie POP3 server ready"`,
		`remote=127.0.0.2 c="AUTH LOGIN"`,
		`remote=127.0.0.2 s="+ <redacted>"`,
		`remote=127.0.0.2 c=<redacted>`,
		`remote=127.0.0.2 s="+ <redacted>"`,
		`remote=127.0.0.2 c=<redacted>`,
		`remote=127.0.0.2 user=user1 s="+OK logged in, 3 messages (` + total + ` octets)"`,
		`remote=127.0.0.2 user=user1 c=QUIT`,
		`remote=127.0.0.2 user=user1 s="+OK bye, 0 messages deleted"`,

		`remote=127.0.0.5 c="USER User3"`,
		`remote=127.0.0.5 s="+OK send PASS"`,
		`remote=127.0.0.5 c="PASS <redacted>"`,
		`remote=127.0.0.5 s="-ERR [AUTH] invalid user name or password"`,
		`remote=127.0.0.5 c=QUIT`,
		`remote=127.0.0.5 s="+OK bye"`,
	}
	all := logs.String()
	var got []string
	for l := range strings.SplitSeq(all, "\n") {
		if rest, ok := strings.CutPrefix(l, "level=DEBUG msg=trace "); ok {
			got = append(got, rest)
		} else if strings.Contains(l, "msg=trace") {
			t.Errorf("trace line not at debug level: %s", l)
		}
	}
	if g, w := strings.Join(got, "\n"), strings.Join(want, "\n"); g != w {
		t.Errorf("trace:\n%s\nwant:\n%s", g, w)
	}
	// No credential, in any form, and no message text, anywhere in the
	// log.
	for _, secret := range []string{
		"pass1", "pass3", "0123456789abcdef", "hunter", "XMIT",
		b64("\x00user3\x00pass3"), b64("pass1"), b64("user1"),
		"Subject", "Hello", "leading dot", "From: ",
	} {
		if strings.Contains(all, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
}

// Without a selection, or with the logger above debug, nothing is traced.
func TestTraceOff(t *testing.T) {
	for _, tc := range []struct {
		name  string
		level slog.Level
		set   bool
	}{{"no selection", slog.LevelDebug, false}, {"info logger", slog.LevelInfo, true}} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuf{}
			trace := &pop3server.Trace{}
			if tc.set {
				trace.Set([]string{"user1"}, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
			}
			s := startPostie(t, func(o *pop3server.Options) {
				o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: tc.level}))
				o.Trace = trace
			})
			s.deliverCorpus(t, "user1")
			cl := dial(t, s.addr)
			cl.login("user1", "pass1")
			cl.cmd("STAT", "+OK 3 "+itoa(totalSize()))
			cl.cmd("QUIT", "+OK bye, 0 messages deleted")
			waitSessions(t, s, 0)
			if all := logs.String(); strings.Contains(all, "msg=trace") || !strings.Contains(all, `msg="session end"`) {
				t.Errorf("log:\n%s", all)
			}
		})
	}
}
