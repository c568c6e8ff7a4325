package pop3server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/store/maildir"
)

// The messages every transcript's maildrop starts with, as stored and in
// the wire form RFC 1939 requires (CRLF ends, final line end, before
// stuffing) — written out by hand, not computed by the code under test.
var corpus = []struct{ stored, wire string }{
	{ // LF line ends
		"From: a@example.com\nSubject: one\n\nHello\n",
		"From: a@example.com\r\nSubject: one\r\n\r\nHello\r\n",
	},
	{ // CRLF, lines beginning with dots (stuffed on the wire)
		"From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
		"From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
	},
	{ // no final line end
		"Subject: three\n\nline1\nline2\nline3\nno final newline",
		"Subject: three\r\n\r\nline1\r\nline2\r\nline3\r\nno final newline\r\n",
	},
}

func wireSize(i int) int { return len(corpus[i].wire) }

func totalSize() int {
	n := 0
	for i := range corpus {
		n += wireSize(i)
	}
	return n
}

// stuffed is the multi-line body of message i as "D:" script lines.
func stuffed(i int) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(corpus[i].wire, "\r\n") {
		if l == "" {
			continue
		}
		l = strings.TrimSuffix(l, "\r\n")
		if strings.HasPrefix(l, ".") {
			l = "." + l
		}
		b.WriteString("S: " + l + "\n")
	}
	return strings.ReplaceAll(b.String(), "S: ", "D: ")
}

type server struct {
	pop   *pop3test.Server
	addr  string
	srv   *pop3server.Server
	store *maildir.Store
	uids  []string
}

var users = pop3test.Users

// startPostie runs a server on a real loopback socket over a real Maildir
// (pop3test), logging to the test log with -v.
func startPostie(t testing.TB, tweak func(*pop3server.Options)) *server {
	t.Helper()
	p := pop3test.Start(t, pop3test.Options{Logger: quietLogger(t), Tweak: func(o *pop3server.Options) {
		o.Implementation = "postie"
		if tweak != nil {
			tweak(o)
		}
	}})
	return &server{pop: p, addr: p.Addr, srv: p.Server, store: p.Store}
}

func (s *server) deliverCorpus(t testing.TB, user string) {
	t.Helper()
	for _, m := range corpus {
		info, err := s.store.Deliver(context.Background(), user, strings.NewReader(m.stored))
		if err != nil {
			t.Fatal(err)
		}
		s.uids = append(s.uids, info.UID)
	}
}

func quietLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

type transcript struct {
	name   string
	script string
	// dovecot, when set, says why Dovecot answers differently and the
	// transcript is not held against it.
	dovecot string
	// dovecotSizes replaces {sizeN} placeholders in the Dovecot run where
	// Dovecot's LIST size is known to differ (see dovecotNoFinalNewline).
	dovecotSizes []string
}

// dovecotNoFinalNewline: for a stored message without a final line end,
// Dovecot's LIST reports the stored size (55) while its RETR sends the
// line end it supplies (57 octets before the terminator), so a client that
// checks RETR against LIST sees a mismatch. postie counts the supplied
// CRLF in the size, so LIST and RETR agree (RFC 1939 §11: the size is of
// the message as sent).
var dovecotNoFinalNewline = []string{"{size3}", "55"}

const greet = "S: +OK postie POP3 server ready\n"
const login = greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n"

var transcripts = []transcript{
	{name: "quit before login", script: greet + "C: QUIT\nS: +OK bye\nE:"},
	{name: "login stat quit", script: login + "C: STAT\nS: +OK 3 {total}\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "keywords case-insensitive", script: login + "C: stat\nS: +OK 3 {total}\nC: LiSt 2\nS: +OK 2 {size2}\nC: quit\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "wrong password", script: greet + "C: USER {user}\nS: +OK send PASS\nC: PASS wrong\nS: -ERR [AUTH] invalid user name or password\n" +
		"C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "unknown user looks like wrong password", script: greet + "C: USER nosuchuser\nS: +OK send PASS\nC: PASS {pass}\nS: -ERR [AUTH] invalid user name or password\nC: QUIT\nS: +OK bye\nE:"},
	{name: "PASS without USER", script: greet + "C: PASS {pass}\nS: -ERR send USER first\nC: QUIT\nS: +OK bye\nE:"},
	{name: "USER without name", script: greet + "C: USER\nS: -ERR missing user name\nC: QUIT\nS: +OK bye\nE:",
		dovecot: "Dovecot answers +OK to USER without a name; RFC 1939 §7 requires the name, and an error now is clearer than a failed PASS later"},
	{name: "transaction commands before login", script: greet + "C: STAT\nS: -ERR command not valid before login\nC: LIST\nS: -ERR command not valid before login\nC: QUIT\nS: +OK bye\nE:\n--\n" +
		greet + "C: RETR 1\nS: -ERR command not valid before login\nC: DELE 1\nS: -ERR command not valid before login\nC: QUIT\nS: +OK bye\nE:"},
	{name: "unknown command", script: greet + "C: FOO\nS: -ERR unknown command\n" + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n" +
		"C: XYZZY 1 2\nS: -ERR unknown command\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "empty line", script: greet + "C: \nS: -ERR unknown command\nC: QUIT\nS: +OK bye\nE:",
		dovecot: "Dovecot ignores an empty line without a reply; RFC 1939 defines no empty command and a reply keeps the client in step"},
	{name: "LIST all and one", script: login + "C: LIST\nS: +OK 3 messages ({total} octets)\nD: 1 {size1}\nD: 2 {size2}\nD: 3 {size3}\nD: .\n" +
		"C: LIST 3\nS: +OK 3 {size3}\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecotSizes: dovecotNoFinalNewline},
	{name: "LIST bad arguments", script: login +
		"C: LIST 0\nS: -ERR no such message\nC: LIST 4\nS: -ERR no such message\nC: LIST abc\nS: -ERR invalid message number\n" +
		"C: LIST -1\nS: -ERR invalid message number\nC: LIST +1\nS: -ERR invalid message number\nC: LIST 1x\nS: -ERR invalid message number\n" +
		"C: LIST 99999999999999999999\nS: -ERR invalid message number\nC: LIST 1 2\nS: -ERR too many arguments\n" +
		"C: LIST 1\nS: +OK 1 {size1}\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "Dovecot reads a number with trailing junk ('1x') and ignores extra arguments ('LIST 1 2') and answers +OK; RFC 1939 arguments are exact decimal message numbers, so postie refuses them"},
	{name: "UIDL all and one", script: login + "C: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid1}\nU: 2 {uid2}\nU: 3 {uid3}\nD: .\n" +
		"C: UIDL 2\nS: +OK 2 {uid2}\nC: UIDL 9\nS: -ERR no such message\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "UIDL n replies carry Dovecot's own UIDs in the status line; the multi-line listing is checked in the 'UIDL listing' transcript"},
	{name: "UIDL listing", script: login + "C: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid1}\nU: 2 {uid2}\nU: 3 {uid3}\nD: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "RETR LF message", script: login + "C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "RETR dot-stuffed", script: login + "C: RETR 2\nS: +OK {size2} octets\n" + stuffed(1) + "D: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "RETR no final newline", script: login + "C: RETR 3\nS: +OK {size3} octets\n" + stuffed(2) + "D: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "RETR errors", script: login + "C: RETR\nS: -ERR usage: RETR message-number\nC: RETR 0\nS: -ERR no such message\nC: RETR 4\nS: -ERR no such message\n" +
		"C: RETR x\nS: -ERR invalid message number\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "TOP 0 lines", script: login + "C: TOP 1 0\nS: +OK top of message follows\nD: From: a@example.com\nD: Subject: one\nD: \nD: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "TOP 2 lines", script: login + "C: TOP 3 2\nS: +OK top of message follows\nD: Subject: three\nD: \nD: line1\nD: line2\nD: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "TOP more lines than body", script: login + "C: TOP 2 100\nS: +OK top of message follows\n" + stuffed(1) + "D: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "TOP errors", script: login + "C: TOP 1\nS: -ERR usage: TOP message-number lines\nC: TOP 1 -1\nS: -ERR invalid number of lines\nC: TOP 9 1\nS: -ERR no such message\nC: TOP a 1\nS: -ERR invalid message number\n" +
		"C: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "DELE then QUIT removes", script: login + "C: DELE 2\nS: +OK message 2 deleted\nC: STAT\nS: +OK 2 {total-2}\nC: LIST 2\nS: -ERR message already deleted\nC: RETR 2\nS: -ERR message already deleted\n" +
		"C: DELE 2\nS: -ERR message already deleted\nC: LIST\nS: +OK 2 messages ({total-2} octets)\nD: 1 {size1}\nD: 3 {size3}\nD: .\nC: QUIT\nS: +OK bye, 1 messages deleted\nE:\n" +
		"--\n" + greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 2 messages ({total-2} octets)\nC: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid1}\nU: 2 {uid3}\nD: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecotSizes: dovecotNoFinalNewline},
	{name: "RSET undeletes", script: login + "C: DELE 1\nS: +OK message 1 deleted\nC: DELE 3\nS: +OK message 3 deleted\nC: RSET\nS: +OK maildrop has 3 messages ({total} octets)\nC: STAT\nS: +OK 3 {total}\n" +
		"C: QUIT\nS: +OK bye, 0 messages deleted\nE:\n--\n" + login + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "drop without QUIT deletes nothing", script: login + "C: DELE 1\nS: +OK message 1 deleted\n--\n" + login + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	{name: "NOOP", script: login + "C: NOOP\nS: +OK\nC: NOOP x\nS: -ERR NOOP takes no arguments\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "Dovecot ignores arguments to NOOP; RFC 1939 defines NOOP without arguments"},
	{name: "pipelined batch answered in order", script: greet + "C: USER {user}\nC: PASS {pass}\nC: STAT\nC: LIST 1\nC: UIDL\nC: RETR 1\nC: NOOP\nC: QUIT\n" +
		"S: +OK send PASS\nS: +OK logged in, 3 messages ({total} octets)\nS: +OK 3 {total}\nS: +OK 1 {size1}\nS: +OK unique-id listing follows\nU: 1 {uid1}\nU: 2 {uid2}\nU: 3 {uid3}\nD: .\n" +
		"S: +OK {size1} octets\n" + stuffed(0) + "D: .\nS: +OK\nS: +OK bye, 0 messages deleted\nE:"},
	// 6,000 octets of commands in one write: more than the session's
	// read buffer, so the socket still holds input when the buffer has
	// been answered (an idle session waits for readiness without a
	// buffer, which must not miss it); 3,000 octets of replies.
	{name: "pipelined batch larger than the buffers", script: login + strings.Repeat("C: NOOP\n", 1000) + "C: QUIT\n" +
		strings.Repeat("S: +OK\n", 1000) + "S: +OK bye, 0 messages deleted\nE:"},
	{name: "longest command line accepted", script: greet + "C: USER " + strings.Repeat("u", 248) + "\nS: +OK send PASS\nC: QUIT\nS: +OK bye\nE:"},
	{name: "over-long line refused, session goes on", script: greet + "C: USER " + strings.Repeat("u", 249) + "\nS: -ERR line too long\n" +
		"C: NOOP " + strings.Repeat("x", 5000) + "\nS: -ERR line too long\nC: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "Dovecot accepts lines far over 255 octets (it buffers several KB); RFC 2449 §4 caps command lines at 255 octets, and postie bounds what a client can make it hold"},
	{name: "garbage and NUL bytes", script: greet + "R: \\x00\\x01\\xff\\r\\n\nS: -ERR unknown command\nC: QUIT\nS: +OK bye\nE:",
		dovecot: "Dovecot answers an unknown command made of control bytes in its own way; the check here is postie's"},
	{name: "too many bad commands", script: greet + strings.Repeat("C: BAD\n", 10) + strings.Repeat("S: -ERR unknown command\n", 10) + "S: -ERR too many bad commands, closing connection\nE:",
		dovecot: "Dovecot closes after 3 bad commands before login; postie allows 10"},
	{name: "commands not valid after login", script: login + "C: USER {user}\nS: -ERR already logged in\nC: PASS x\nS: -ERR already logged in\nC: STLS\nS: -ERR already logged in\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "Dovecot calls these unknown commands; the reply is -ERR either way, but the wording under test is postie's"},
	{name: "LAST", script: login + "C: LAST\nS: +OK 0\nC: RETR 2\nS: +OK {size2} octets\n" + stuffed(1) + "D: .\nC: LAST\nS: +OK 2\nC: RSET\nS: +OK maildrop has 3 messages ({total} octets)\nC: LAST\nS: +OK 0\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "Dovecot does not implement LAST (RFC 1460, dropped from RFC 1939); postie answers it for old clients"},
	{name: "CAPA before and after login", script: greet + "C: CAPA\nS: +OK capability list follows\nD: TOP\nD: USER\nD: UIDL\nD: RESP-CODES\nD: AUTH-RESP-CODE\nD: PIPELINING\nD: IMPLEMENTATION postie\nD: .\n" +
		"C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n" +
		"C: CAPA\nS: +OK capability list follows\nD: TOP\nD: USER\nD: UIDL\nD: RESP-CODES\nD: AUTH-RESP-CODE\nD: PIPELINING\nD: IMPLEMENTATION postie\nD: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:",
		dovecot: "Dovecot's capability list differs (SASL, STLS, no IMPLEMENTATION)"},
	{name: "STLS and SASL not configured", script: greet + "C: STLS\nS: -ERR STLS not available\nC: AUTH PLAIN\nS: -ERR unrecognized authentication type\nC: APOP u d\nS: -ERR APOP not enabled\nC: QUIT\nS: +OK bye\nE:",
		dovecot: "the Dovecot under test has TLS and SASL configured"},
}

// expand fills the script's placeholders for the maildrop of user.
func expand(script, user string, uids []string) string {
	pass := "pass" + strings.TrimPrefix(user, "user")
	r := []string{"{user}", user, "{pass}", pass,
		"{total}", strconv.Itoa(totalSize()), "{total-2}", strconv.Itoa(totalSize() - wireSize(1)),
		"{total-1}", strconv.Itoa(totalSize() - wireSize(0))}
	for i := range corpus {
		r = append(r, fmt.Sprintf("{size%d}", i+1), strconv.Itoa(wireSize(i)))
		uid := "?"
		if i < len(uids) {
			uid = uids[i]
		}
		r = append(r, fmt.Sprintf("{uid%d}", i+1), uid)
	}
	return strings.NewReplacer(r...).Replace(script)
}

// runScript plays each "--"-separated part of a script on its own
// connection, in order.
func runScript(t *testing.T, addr string, mode testenv.Mode, script string) {
	for part := range strings.SplitSeq(script, "--\n") {
		testenv.RunTranscript(t, addr, mode, part)
	}
}

func TestTranscripts(t *testing.T) {
	for _, tc := range transcripts {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := startPostie(t, nil)
			s.deliverCorpus(t, "user1")
			runScript(t, s.addr, testenv.Exact, expand(tc.script, "user1", s.uids))
		})
	}
}

// TestTranscriptsDovecot holds the same transcripts against a real
// Dovecot, comparing what the protocol fixes (see testenv.Protocol). The
// transcripts it skips name the difference and why postie's answer is the
// right one.
func TestTranscriptsDovecot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Dovecot")
	}
	d := testenv.StartDovecot(t, len(transcripts))
	for i, tc := range transcripts {
		user := "user" + strconv.Itoa(i+1)
		t.Run(tc.name, func(t *testing.T) {
			if tc.dovecot != "" {
				t.Skip("differs by design: " + tc.dovecot)
			}
			for _, m := range corpus {
				d.Deliver(t, user, []byte(m.stored))
			}
			script := strings.ReplaceAll(tc.script, greet, "S: +OK\n")
			script = strings.NewReplacer(tc.dovecotSizes...).Replace(script)
			runScript(t, d.Addr, testenv.Protocol, expand(script, user, nil))
		})
	}
}

// TestInUse: a second session for a locked maildrop gets [IN-USE], and
// the lock dies with the first session however it ends.
func TestInUse(t *testing.T) {
	s := startPostie(t, nil)
	s.deliverCorpus(t, "user1")
	first, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 512)
	first.Write([]byte("USER user1\r\nPASS pass1\r\n"))
	readUntil(t, first, buf, "+OK logged in")
	testenv.RunTranscript(t, s.addr, testenv.Exact, expand(greet+"C: USER user1\nS: +OK send PASS\nC: PASS pass1\nS: -ERR [IN-USE] maildrop already locked by another session\nC: QUIT\nS: +OK bye\nE:", "user1", nil))
	first.Close() // dropped, not QUIT
	deadline := time.Now().Add(5 * time.Second)
	for s.srv.Sessions() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	testenv.RunTranscript(t, s.addr, testenv.Exact, expand(login+"C: QUIT\nS: +OK bye, 0 messages deleted\nE:", "user1", nil))
}

func readUntil(t testing.TB, c net.Conn, buf []byte, want string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got []byte
	for !strings.Contains(string(got), want) {
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q, got %q: %v", want, got, err)
		}
		got = append(got, buf[:n]...)
	}
}

var _ store.Store = (*maildir.Store)(nil)
