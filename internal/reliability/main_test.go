package reliability

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// long reports whether the long variants run (POSTIE_LONG=1).
func long() bool { return os.Getenv("POSTIE_LONG") == "1" }

// iterations is short by default, many with POSTIE_LONG=1.
func iterations(short, many int) int {
	if long() {
		return many
	}
	return short
}

// users of every instance; the password of U is "pw-U".
var users = []string{"alice", "bob", "carol"}

func password(user string) string { return "pw-" + user }

// inst is one postie installation: a config file, a passwd file with
// users, a Maildir root, and at most one running `postie serve`.
//
// The server is never built with -race, even when the tests run with it:
// the crash tests need a server of normal speed for their kills to fall
// inside deliveries and UPDATEs (cmd/postie's tests run a race-enabled
// one).
type inst struct {
	t        *testing.T
	dir      string // data_dir
	mailRoot string
	cfg      string
	cred     *syscall.Credential // of the server, when not ours

	srv     *testenv.Postie
	running bool
	pop3    string
	lmtp    string
}

// instOptions change a new installation.
type instOptions struct {
	mailRoot string              // default <dir>/mail
	cred     *syscall.Credential // run serve as another user
}

// newInst writes a config and the users; the server is not started.
func newInst(t *testing.T, o instOptions) *inst {
	t.Helper()
	dir := t.TempDir()
	in := &inst{t: t, dir: dir, mailRoot: o.mailRoot, cred: o.cred}
	if in.mailRoot == "" {
		in.mailRoot = filepath.Join(dir, "mail")
	}
	in.srv = testenv.NewPostie(t, testenv.PostieOptions{Dir: dir, NoRace: true, Credential: o.cred, Config: fmt.Sprintf(`[log]
level = "info"
[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
shutdown_grace = "1s"
max_connections_per_ip = 1000
[storage]
maildir_root = %q
[auth]
default_scheme = "SHA512-CRYPT"
[intake]
local_domains = ["example.org"]
hostname = "mx.example.org"
[lmtp]
listen = ["127.0.0.1:0"]
`, in.mailRoot)})
	in.cfg = in.srv.Config
	for _, u := range users {
		if r := in.run(password(u)+"\n", "user", "add", "--password-stdin", u); r.code != 0 {
			t.Fatalf("user add %s: exit %d: %s", u, r.code, r.stderr)
		}
	}
	return in
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// result of a finished postie command.
type result struct {
	stderr string
	code   int // -1 when killed by a signal
}

// run runs a postie command (with the installation's --config) to
// completion.
func (in *inst) run(stdin string, args ...string) result {
	in.t.Helper()
	return in.runAs(nil, stdin, args...)
}

// runAs is run as another user (cred nil: ours).
func (in *inst) runAs(cred *syscall.Credential, stdin string, args ...string) result {
	in.t.Helper()
	cmd := in.srv.Command(args...)
	cmd.SysProcAttr.Credential = cred
	r := testenv.RunPostieCommand(in.t, cmd, stdin)
	return result{r.Stderr, r.Code}
}

// deliver runs `postie deliver` for user with msg on stdin, as the
// server's user.
func (in *inst) deliver(user, msg string) result {
	in.t.Helper()
	return in.runAs(in.cred, msg, "deliver", user)
}

// start runs `postie serve` and waits until it listens.
func (in *inst) start() {
	in.t.Helper()
	if in.running {
		in.t.Fatal("start: already running")
	}
	in.srv.Credential = in.cred
	in.srv.Start(in.t)
	in.running = true
	in.pop3, in.lmtp = in.srv.POP3, in.srv.LMTP
}

// log returns what the current (or last) run of the server logged.
func (in *inst) log() string { return in.srv.Log() }

// kill ends the server with SIGKILL and waits for it.
func (in *inst) kill() {
	in.t.Helper()
	in.srv.Kill(in.t)
	in.running = false
}

// maildir is user's Maildir.
func (in *inst) maildir(user string) string { return filepath.Join(in.mailRoot, user) }

// ---- POP3 ----

// popConn is a raw POP3 client: the tests look at exact bytes, not at a
// library's reading of them.
type popConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func (in *inst) dialPOP3() *popConn {
	in.t.Helper()
	c, err := net.DialTimeout("tcp", in.pop3, 10*time.Second)
	if err != nil {
		in.t.Fatal(err)
	}
	in.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	p := &popConn{t: in.t, c: c, br: bufio.NewReaderSize(c, 64<<10)}
	if g := p.line(); !strings.HasPrefix(g, "+OK") {
		in.t.Fatalf("greeting %q", g)
	}
	return p
}

// login opens a session as user; it fails the test unless the reply is
// +OK (so a stale lock, [IN-USE], fails it).
func (in *inst) login(user string) *popConn {
	in.t.Helper()
	p := in.dialPOP3()
	p.cmd("+OK", "USER "+user)
	p.cmd("+OK", "PASS "+password(user))
	return p
}

// readLine returns one reply line without its CRLF.
func (p *popConn) readLine() (string, error) {
	l, err := p.br.ReadString('\n')
	if err != nil {
		return l, err
	}
	if !strings.HasSuffix(l, "\r\n") {
		return l, fmt.Errorf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

func (p *popConn) line() string {
	p.t.Helper()
	l, err := p.readLine()
	if err != nil {
		p.t.Fatalf("reading a reply: %v (got %q)", err, l)
	}
	return l
}

func (p *popConn) send(s string) {
	p.t.Helper()
	if _, err := p.c.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

// cmd sends line and returns the reply line, which must start with want.
func (p *popConn) cmd(want, line string) string {
	p.t.Helper()
	p.send(line + "\r\n")
	r := p.line()
	if !strings.HasPrefix(r, want) {
		p.t.Fatalf("%s: reply %q, want %s", strings.Fields(line)[0], r, want)
	}
	return r
}

// multi reads the body of a multi-line reply, byte-stuffing undone, with
// CRLF line ends. An error means the body did not end with ".".
func (p *popConn) multi() (string, error) {
	var b strings.Builder
	for {
		l, err := p.readLine()
		if err != nil {
			return b.String(), err
		}
		if l == "." {
			return b.String(), nil
		}
		b.WriteString(strings.TrimPrefix(l, "."))
		b.WriteString("\r\n")
	}
}

// listing runs LIST or UIDL and returns message number → field.
func (p *popConn) listing(verb string) map[int]string {
	p.t.Helper()
	p.cmd("+OK", verb)
	body, err := p.multi()
	if err != nil {
		p.t.Fatalf("%s: %v", verb, err)
	}
	m := map[int]string{}
	for l := range strings.Lines(body) {
		n, v, ok := strings.Cut(strings.TrimSuffix(l, "\r\n"), " ")
		i, err := strconv.Atoi(n)
		if !ok || err != nil {
			p.t.Fatalf("%s line %q", verb, l)
		}
		m[i] = v
	}
	return m
}

// ---- messages and what must be in a maildrop ----

// idHeader carries the test's own id of a message.
const idHeader = "X-Rel-Id: "

// newMessage returns a message with id and about size octets of body: LF
// and CRLF line ends, lines starting with a dot, no final newline
// sometimes, so that the wire form differs from the stored one.
func newMessage(r *rand.Rand, id string, size int) string {
	var b strings.Builder
	eol := "\n"
	if r.IntN(2) == 0 {
		eol = "\r\n"
	}
	b.WriteString("From: sender@example.net" + eol + "To: someone@example.org" + eol)
	b.WriteString(idHeader + id + eol + "Subject: message " + id + eol + eol)
	for n := 0; b.Len() < size; n++ {
		switch n % 7 {
		case 3:
			b.WriteString("." + eol)
		case 5:
			b.WriteString(".leading dot " + strconv.Itoa(n) + "\r\n")
		default:
			b.WriteString(strings.Repeat(string(rune('a'+n%26)), 10+n%70) + eol)
		}
	}
	if r.IntN(4) == 0 {
		b.WriteString("no final newline")
	}
	return b.String()
}

// wireForm is msg as RETR sends it before byte-stuffing: CRLF line ends
// and a final line end (RFC 1939 §11 sizes).
func wireForm(msg string) string {
	s := strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}

// idOf returns the id of a retrieved message.
func idOf(msg string) string {
	i := strings.Index(msg, "\r\n"+idHeader)
	if i < 0 {
		return ""
	}
	rest := msg[i+2+len(idHeader):]
	id, _, _ := strings.Cut(rest, "\r\n")
	return id
}

// want is what a maildrop must (or may) hold of one message.
type want struct {
	wire string // the wire form of the message as sent; RETR ends with it
	// must: it has to be there (acknowledged, not deleted by an
	// acknowledged QUIT). gone: it must not be there. Neither: either.
	must, gone bool
	dele       bool   // marked deleted by a session that may not end well
	uidl       string // when known: it must keep it
}

// seen is one message found in a maildrop.
type seen struct {
	num  int
	uidl string
	size int
}

// check logs in as user and holds the maildrop against wants: every
// message listed is retrieved whole (LIST size == octets received) and
// ends with the wire form of a wanted message, no message is there twice,
// none is unknown, every must is there, no gone is, and UIDLs are those
// recorded. It records the UIDLs of messages seen for the first time and
// returns what it found. The login itself must succeed: a lock left by a
// killed server fails it.
func (in *inst) check(user string, wants map[string]*want) map[string]seen {
	t := in.t
	t.Helper()
	p := in.login(user)
	sizes := p.listing("LIST")
	uidls := p.listing("UIDL")
	if len(sizes) != len(uidls) {
		t.Fatalf("%s: LIST has %d messages, UIDL %d", user, len(sizes), len(uidls))
	}
	// Pipelined RETRs: a big maildrop takes one round trip.
	go func() {
		var b bytes.Buffer
		for i := 1; i <= len(sizes); i++ {
			fmt.Fprintf(&b, "RETR %d\r\n", i)
		}
		b.WriteString("QUIT\r\n")
		p.c.Write(b.Bytes())
	}()
	found := map[string]seen{}
	uidOwner := map[string]int{}
	for i := 1; i <= len(sizes); i++ {
		size, err := strconv.Atoi(sizes[i])
		if err != nil {
			t.Fatalf("%s: LIST %d = %q", user, i, sizes[i])
		}
		if other, dup := uidOwner[uidls[i]]; dup {
			t.Errorf("%s: messages %d and %d have the same UIDL %s", user, other, i, uidls[i])
		}
		uidOwner[uidls[i]] = i
		r := p.line()
		if want := "+OK " + sizes[i] + " octets"; r != want {
			t.Fatalf("%s: RETR %d: %q, want %q", user, i, r, want)
		}
		msg, err := p.multi()
		if err != nil {
			t.Fatalf("%s: RETR %d: %v after %d octets", user, i, err, len(msg))
		}
		if len(msg) != size {
			t.Errorf("%s: message %d: LIST says %d octets, RETR sent %d", user, i, size, len(msg))
		}
		id := idOf(msg)
		w := wants[id]
		switch {
		case w == nil:
			t.Errorf("%s: message %d (UIDL %s) is not one the test sent (id %q, %d octets)", user, i, uidls[i], id, len(msg))
			continue
		case !strings.HasSuffix(msg, w.wire):
			t.Errorf("%s: message %d (%s) is damaged: %d octets, ends %q, want the %d octets sent", user, i, id, len(msg), tail([]byte(msg), 60), len(w.wire))
		case w.gone:
			t.Errorf("%s: message %d (%s) is still there after an acknowledged QUIT deleted it", user, i, id)
		}
		if prev, dup := found[id]; dup {
			t.Errorf("%s: message %s is there twice (messages %d and %d)", user, id, prev.num, i)
		}
		if w.uidl != "" && w.uidl != uidls[i] {
			t.Errorf("%s: message %s changed its UIDL from %s to %s", user, id, w.uidl, uidls[i])
		}
		w.uidl = uidls[i]
		found[id] = seen{num: i, uidl: uidls[i], size: size}
	}
	if r := p.line(); !strings.HasPrefix(r, "+OK") {
		t.Errorf("%s: QUIT: %q", user, r)
	}
	for id, w := range wants {
		if _, ok := found[id]; w.must && !ok {
			t.Errorf("%s: acknowledged message %s is missing", user, id)
		}
	}
	return found
}

// ---- LMTP ----

// lmtpConn is a raw LMTP client.
type lmtpConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialLMTP(addr string) (*lmtpConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(time.Minute))
	l := &lmtpConn{c: c, br: bufio.NewReader(c)}
	if _, err := l.reply(); err != nil {
		c.Close()
		return nil, err
	}
	if err := l.cmd("LHLO test.example.net"); err != nil {
		c.Close()
		return nil, err
	}
	return l, nil
}

// reply reads a whole (multi-line) reply and returns its last line.
func (l *lmtpConn) reply() (string, error) {
	for {
		s, err := l.br.ReadString('\n')
		if err != nil {
			return "", err
		}
		s = strings.TrimRight(s, "\r\n")
		if len(s) < 4 || s[3] != '-' {
			return s, nil
		}
	}
}

// cmd sends a command whose reply must be 2xx or 3xx.
func (l *lmtpConn) cmd(line string) error {
	if _, err := l.c.Write([]byte(line + "\r\n")); err != nil {
		return err
	}
	r, err := l.reply()
	if err != nil {
		return err
	}
	if r[0] != '2' && r[0] != '3' {
		return fmt.Errorf("%s: %s", line, r)
	}
	return nil
}

// send delivers msg to rcpts in one transaction and returns the reply of
// each recipient after DATA (nil entries after an error).
func (l *lmtpConn) send(rcpts []string, msg string) ([]string, error) {
	if err := l.cmd("MAIL FROM:<sender@example.net>"); err != nil {
		return nil, err
	}
	for _, r := range rcpts {
		if err := l.cmd("RCPT TO:<" + r + "@example.org>"); err != nil {
			return nil, err
		}
	}
	if err := l.cmd("DATA"); err != nil {
		return nil, err
	}
	var b strings.Builder
	for line := range strings.Lines(wireForm(msg)) {
		if line[0] == '.' {
			b.WriteByte('.')
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	if _, err := l.c.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	replies := make([]string, len(rcpts))
	for i := range rcpts {
		r, err := l.reply()
		if err != nil {
			return replies, err
		}
		replies[i] = r
	}
	return replies, nil
}

func (l *lmtpConn) close() {
	l.c.Write([]byte("QUIT\r\n"))
	l.c.Close()
}
