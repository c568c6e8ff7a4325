package pop3client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
)

// mini is a small scripted POP3 server over raw TCP, with knobs for the
// extensions it lacks. It holds the client to its rules: without
// PIPELINING, a command sent before the previous reply fails the test.
type mini struct {
	t          testing.TB
	capa       []string // nil: CAPA is an unknown command
	uidl       bool
	pipelining bool
	msgs       []string // wire form

	mu       sync.Mutex
	deleted  []int          // removed at QUIT
	batched  int            // commands that came with the next one already waiting
	batchedV map[string]int // the same, by verb
}

func (m *mini) start() string {
	m.batchedV = map[string]int{}
	return startFake(m.t, m.serve)
}

func (m *mini) serve(fc *fakeConn) {
	fc.send("+OK mini ready")
	del := map[int]bool{}
	msg := func(arg string) (int, bool) {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(m.msgs) || del[n] {
			fc.send("-ERR no such message")
			return 0, false
		}
		return n, true
	}
	for {
		l, ok := fc.line()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(l, " ")
		verb = strings.ToUpper(verb)
		if fc.waiting() {
			m.mu.Lock()
			m.batched++
			m.batchedV[verb]++
			m.mu.Unlock()
			if !m.pipelining {
				m.t.Errorf("client sent %q with more commands behind it, but PIPELINING was not announced", l)
			}
		}
		switch verb {
		case "CAPA":
			if m.capa == nil {
				fc.send("-ERR unknown command")
				continue
			}
			fc.send(append(append([]string{"+OK"}, m.capa...), ".")...)
		case "USER":
			fc.send("+OK")
		case "PASS":
			if arg == "secret" {
				fc.send("+OK")
			} else {
				fc.send("-ERR [AUTH] no")
			}
		case "STAT":
			n, size := 0, 0
			for i, w := range m.msgs {
				if !del[i+1] {
					n++
					size += len(w)
				}
			}
			fc.send(fmt.Sprintf("+OK %d %d", n, size))
		case "LIST":
			if arg != "" {
				if n, ok := msg(arg); ok {
					fc.send(fmt.Sprintf("+OK %d %d", n, len(m.msgs[n-1])))
				}
				continue
			}
			lines := []string{"+OK"}
			for i, w := range m.msgs {
				if !del[i+1] {
					lines = append(lines, fmt.Sprintf("%d %d", i+1, len(w)))
				}
			}
			fc.send(append(lines, ".")...)
		case "UIDL":
			if !m.uidl {
				fc.send("-ERR unknown command")
				continue
			}
			lines := []string{"+OK"}
			for i := range m.msgs {
				if !del[i+1] {
					lines = append(lines, fmt.Sprintf("%d uid-%d", i+1, i+1))
				}
			}
			fc.send(append(lines, ".")...)
		case "RETR":
			if n, ok := msg(arg); ok {
				fc.c.Write([]byte(fmt.Sprintf("+OK %d octets\r\n", len(m.msgs[n-1])) + stuff(m.msgs[n-1])))
			}
		case "DELE":
			if n, ok := msg(arg); ok {
				del[n] = true
				fc.send("+OK")
			}
		case "RSET":
			clear(del)
			fc.send("+OK")
		case "NOOP":
			fc.send("+OK")
		case "QUIT":
			m.mu.Lock()
			for n := range del {
				m.deleted = append(m.deleted, n)
			}
			slices.Sort(m.deleted)
			m.mu.Unlock()
			fc.send("+OK bye")
			return
		default:
			fc.send("-ERR unknown command")
		}
	}
}

// A server with no CAPA, no UIDL and no PIPELINING: the client still
// lists, retrieves and deletes, one command at a time.
func TestMinimalServer(t *testing.T) {
	m := &mini{t: t, msgs: []string{corpus[0].wire, corpus[1].wire, corpus[2].wire}}
	addr := m.start()
	ctx := ctxT(t)
	c, err := pop3client.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Greeting() != "mini ready" {
		t.Errorf("Greeting() = %q", c.Greeting())
	}
	caps, err := c.Capabilities(ctx)
	if err != nil || caps == nil || len(caps) != 0 {
		t.Fatalf("Capabilities = %v, %v; want none and no error", caps, err)
	}
	if err := c.Login(ctx, "u", "secret"); err != nil {
		t.Fatal(err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 3 || list[1].Size != int64(len(corpus[1].wire)) {
		t.Fatalf("List = %v, %v", list, err)
	}
	var cerr *pop3client.Error
	if _, err := c.UIDL(ctx); !errors.As(err, &cerr) || cerr.Command != "UIDL" {
		t.Fatalf("UIDL = %v; want the server's -ERR", err)
	}
	if _, err := c.ListAndUIDL(ctx); !errors.As(err, &cerr) || cerr.Command != "UIDL" {
		t.Fatalf("ListAndUIDL = %v; want the server's -ERR to UIDL", err)
	}
	r, err := c.Retr(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil || string(b) != corpus[1].wire {
		t.Fatalf("RETR 2 = %q, %v", b, err)
	}
	if err := c.DeleMany(ctx, []int{1, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleMany(ctx, []int{3, 2}); !errors.As(err, &cerr) || cerr.Command != "DELE 3" {
		t.Fatalf("DeleMany of a deleted message = %v; want the -ERR for DELE 3", err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !slices.Equal(m.deleted, []int{1, 2, 3}) || m.batched != 0 {
		t.Fatalf("server deleted %v with %d pipelined commands; want [1 2 3], none", m.deleted, m.batched)
	}
}

// With PIPELINING, DELEs go out in batches and LIST with UIDL together.
func TestPipelining(t *testing.T) {
	m := &mini{t: t, capa: []string{"UIDL", "PIPELINING"}, uidl: true, pipelining: true}
	for i := range 150 {
		m.msgs = append(m.msgs, fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
	}
	addr := m.start()
	ctx := ctxT(t)
	c, err := pop3client.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(ctx, "u", "secret"); err != nil {
		t.Fatal(err)
	}
	all, err := c.ListAndUIDL(ctx)
	if err != nil || len(all) != 150 || all[149] != (pop3client.MessageInfo{Num: 150, Size: int64(len(m.msgs[149])), UID: "uid-150"}) {
		t.Fatalf("ListAndUIDL = %d messages, last %+v, %v", len(all), all[len(all)-1], err)
	}
	var nums []int
	for _, mi := range all {
		nums = append(nums, mi.Num)
	}
	if err := c.DeleMany(ctx, nums); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.deleted) != 150 {
		t.Fatalf("server deleted %d messages", len(m.deleted))
	}
	if m.batchedV["LIST"] != 1 || m.batchedV["DELE"] < 100 {
		t.Fatalf("pipelined commands by verb: %v; want LIST sent with UIDL and DELEs in batches", m.batchedV)
	}
}

// saslServer answers one AUTH exchange with a script: for each client
// line it records, the next reply is sent.
func saslServer(t *testing.T, replies ...string) (addr string, got func() []string) {
	var mu sync.Mutex
	var lines []string
	addr = startFake(t, func(fc *fakeConn) {
		fc.send("+OK ready")
		for _, r := range replies {
			l, ok := fc.line()
			if !ok {
				return
			}
			mu.Lock()
			lines = append(lines, l)
			mu.Unlock()
			fc.send(r)
		}
		for {
			l, ok := fc.line()
			if !ok {
				return
			}
			if l == "QUIT" {
				fc.send("+OK bye")
				return
			}
			fc.send("+OK")
		}
	})
	return addr, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(lines)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func dial(t *testing.T, addr string) *pop3client.Client {
	t.Helper()
	c, err := pop3client.Dial(ctxT(t), addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A 2 KB XOAUTH2 token never goes on the AUTH line (RFC 5034 §4: 255
// octets at most): it follows the server's empty challenge.
func TestXOAuth2LongToken(t *testing.T) {
	token := strings.Repeat("ya29.", 410) // 2050 octets
	ir := "user=me@example.com\x01auth=Bearer " + token + "\x01\x01"
	addr, got := saslServer(t, "+ ", "+OK welcome")
	c := dial(t, addr)
	ctx := ctxT(t)
	if err := c.Auth(ctx, pop3client.SASLXOAuth2("me@example.com", token)); err != nil {
		t.Fatal(err)
	}
	lines := got()
	if len(lines) != 2 || lines[0] != "AUTH XOAUTH2" || lines[1] != b64(ir) {
		t.Fatalf("server received %.80q", lines)
	}
	if len(lines[1]) < 2048 {
		t.Fatalf("continuation of %d octets", len(lines[1]))
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A refused token: the server's JSON error challenge is answered (empty
// for XOAUTH2, ^A for OAUTHBEARER) and its content returned.
func TestOAuthErrorChallenge(t *testing.T) {
	jsonErr := `{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`
	for _, tc := range []struct {
		mech     pop3client.SASLMechanism
		first    string // the AUTH line, initial response on it
		answer   string // the reply to the error challenge
		wantStat string
	}{
		{pop3client.SASLXOAuth2("me", "tok"), "AUTH XOAUTH2 " + b64("user=me\x01auth=Bearer tok\x01\x01"), "", "401"},
		{pop3client.SASLOAuthBearer("me,=x", "tok"), "AUTH OAUTHBEARER " + b64("n,a=me=2C=3Dx,\x01auth=Bearer tok\x01\x01"), "AQ==", "401"},
	} {
		addr, got := saslServer(t, "+ "+b64(jsonErr), "-ERR [AUTH] token refused")
		c := dial(t, addr)
		ctx := ctxT(t)
		err := c.Auth(ctx, tc.mech)
		var perr *pop3.Error
		var oerr *pop3client.OAuthError
		if !errors.As(err, &perr) || perr.Code != pop3.CodeAuth || !errors.As(err, &oerr) || oerr.Status != tc.wantStat || oerr.Scope != "https://mail.google.com/" {
			t.Errorf("Auth = %v; want [AUTH] with the OAuth status", err)
		}
		if lines := got(); !slices.Equal(lines, []string{tc.first, tc.answer}) {
			t.Errorf("server received %q; want %q", lines, []string{tc.first, tc.answer})
		}
		if err := c.Noop(ctx); err != nil {
			t.Errorf("Noop after a refused AUTH: %v", err)
		}
	}
}

// The initial response goes on the AUTH line exactly when the line fits
// in 255 octets.
func TestInitialResponseLimit(t *testing.T) {
	for _, passLen := range []int{170, 178, 179, 190} {
		pass := strings.Repeat("p", passLen)
		enc := b64("\x00u\x00" + pass)
		inline := len("AUTH PLAIN "+enc)+2 <= 255
		replies := []string{"+OK"}
		want := []string{"AUTH PLAIN " + enc}
		if !inline {
			replies = []string{"+ ", "+OK"}
			want = []string{"AUTH PLAIN", enc}
		}
		addr, got := saslServer(t, replies...)
		c := dial(t, addr)
		if err := c.Auth(ctxT(t), pop3client.SASLPlain("", "u", pass)); err != nil {
			t.Fatal(err)
		}
		if lines := got(); !slices.Equal(lines, want) {
			t.Errorf("password of %d: server received %q; want %q", passLen, lines, want)
		}
		for _, l := range got() {
			if strings.HasPrefix(l, "AUTH") && len(l)+2 > 255 {
				t.Errorf("AUTH line of %d octets", len(l)+2)
			}
		}
	}
}

func TestSASLLogin(t *testing.T) {
	addr, got := saslServer(t, "+ "+b64("Username:"), "+ "+b64("Password:"), "+OK")
	c := dial(t, addr)
	if err := c.Auth(ctxT(t), pop3client.SASLLogin("me", "secret")); err != nil {
		t.Fatal(err)
	}
	if lines := got(); !slices.Equal(lines, []string{"AUTH LOGIN", b64("me"), b64("secret")}) {
		t.Fatalf("server received %q", lines)
	}
}

type failingMech struct{ err error }

func (m failingMech) Start() (string, []byte, error) { return "X-FAIL", nil, nil }
func (m failingMech) Next([]byte) ([]byte, error)    { return nil, m.err }

// A mechanism that fails on a challenge cancels with "*"; the session
// goes on.
func TestSASLCancel(t *testing.T) {
	boom := errors.New("boom")
	addr, got := saslServer(t, "+ "+b64("challenge"), "-ERR authentication canceled")
	c := dial(t, addr)
	ctx := ctxT(t)
	err := c.Auth(ctx, failingMech{boom})
	if !errors.Is(err, boom) {
		t.Fatalf("Auth = %v; want the mechanism's error", err)
	}
	if lines := got(); !slices.Equal(lines, []string{"AUTH X-FAIL", "*"}) {
		t.Fatalf("server received %q", lines)
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatalf("Noop after a canceled AUTH: %v", err)
	}
	// A challenge that is not base64 is a protocol error, after "*".
	addr, got = saslServer(t, "+ !!!", "-ERR canceled")
	c = dial(t, addr)
	err = c.Auth(ctx, pop3client.SASLLogin("a", "b"))
	if !errors.Is(err, pop3client.ErrMalformed) {
		t.Fatalf("Auth with a bad challenge = %v", err)
	}
	if lines := got(); !slices.Equal(lines, []string{"AUTH LOGIN", "*"}) {
		t.Fatalf("server received %q", lines)
	}
}

// RFC 1939 §7's own example.
func TestAPOP(t *testing.T) {
	var mu sync.Mutex
	var got string
	addr := startFake(t, func(fc *fakeConn) {
		fc.send("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>")
		l, _ := fc.line()
		mu.Lock()
		got = l
		mu.Unlock()
		fc.send("+OK maildrop has 1 message (369 octets)")
		fc.line()
	})
	c := dial(t, addr)
	if err := c.APOP(ctxT(t), "mrose", "tanstaaf"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != "APOP mrose c4c9334bac560ecc979e58001b3e22fb" {
		t.Fatalf("server received %q", got)
	}

	addr, _ = saslServer(t)
	if err := dial(t, addr).APOP(ctxT(t), "mrose", "tanstaaf"); !errors.Is(err, pop3client.ErrNoAPOP) {
		t.Fatalf("APOP without a timestamp = %v", err)
	}
}

func TestResponseCodes(t *testing.T) {
	for _, tc := range []struct {
		reply string
		code  pop3.Code
		text  string
	}{
		{"-ERR [SYS/TEMP] try later", pop3.CodeSysTemp, "try later"},
		{"-ERR [in-use] locked", pop3.CodeInUse, "locked"},
		{"-ERR [AUTH]", pop3.CodeAuth, ""},
		{"-ERR [SYS/PERM/X-MORE] z", "SYS/PERM/X-MORE", "z"},
		{"-ERR [] x", "", "[] x"},
		{"-ERR [A//B] x", "", "[A//B] x"},
		{"-ERR [not a code", "", "[not a code"},
		{"-ERR [A B] x", "", "[A B] x"},
		{"-ERR", "", ""},
		{"-ERR plain text", "", "plain text"},
	} {
		addr, _ := saslServer(t, tc.reply)
		c := dial(t, addr)
		err := c.Noop(ctxT(t))
		var cerr *pop3client.Error
		if !errors.As(err, &cerr) || cerr.Code != tc.code || cerr.Text != tc.text || cerr.Command != "NOOP" {
			t.Errorf("%q: %#v", tc.reply, err)
		}
	}
}

// Protocol violations are errors of their own and close the connection.
func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		reply string // raw bytes after the client's command
		close bool   // the server closes after the reply
		do    func(ctx context.Context, c *pop3client.Client) error
		want  error
	}{
		{"long status line", "+OK " + strings.Repeat("x", 600) + "\r\n", false, noop, pop3client.ErrLineTooLong},
		{"endless status line", "+OK " + strings.Repeat("x", 1<<20), false, noop, pop3client.ErrLineTooLong},
		{"not a status", "HELLO\r\n", false, noop, pop3client.ErrMalformed},
		{"lower case", "+ok\r\n", false, noop, pop3client.ErrMalformed},
		{"bad listing", "+OK\r\n1 abc\r\n.\r\n", false, list, pop3client.ErrMalformed},
		{"bad uid", "+OK\r\n1 a\x01b\r\n.\r\n", false, uidl, pop3client.ErrMalformed},
		{"bad stat", "+OK three\r\n", false, stat, pop3client.ErrMalformed},
		{"LIST n for another message", "+OK 2 10\r\n", false, listOne, pop3client.ErrMalformed},
		{"listing cut off", "+OK\r\n1 10\r\n", true, list, pop3client.ErrNotTerminated},
		{"body cut off", "+OK\r\nSubject: x\r\n\r\nbo", true, retrAll, pop3client.ErrNotTerminated},
		{"long listing line", "+OK\r\n1 " + strings.Repeat("9", 10000) + "\r\n.\r\n", false, list, pop3client.ErrLineTooLong},
		{"data after STLS", "+OK begin TLS\r\n+OK injected\r\n", false, stls, pop3client.ErrUnexpectedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startFake(t, func(fc *fakeConn) {
				fc.send("+OK ready")
				fc.line()
				fc.c.Write([]byte(tc.reply))
				if !tc.close {
					fc.line()
				}
			})
			c := dial(t, addr)
			ctx := ctxT(t)
			start := time.Now()
			err := tc.do(ctx, c)
			var perr *pop3client.ProtocolError
			if !errors.Is(err, tc.want) || !errors.As(err, &perr) {
				t.Fatalf("got %v; want a protocol error %v", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
			if err := c.Noop(ctx); !errors.Is(err, pop3client.ErrClosed) {
				t.Fatalf("Noop after a protocol error = %v; want ErrClosed", err)
			}
		})
	}
}

func noop(ctx context.Context, c *pop3client.Client) error { return c.Noop(ctx) }
func stat(ctx context.Context, c *pop3client.Client) error { _, _, err := c.Stat(ctx); return err }
func list(ctx context.Context, c *pop3client.Client) error { _, err := c.List(ctx); return err }
func uidl(ctx context.Context, c *pop3client.Client) error { _, err := c.UIDL(ctx); return err }
func stls(ctx context.Context, c *pop3client.Client) error { return c.STLS(ctx) }
func listOne(ctx context.Context, c *pop3client.Client) error {
	_, err := c.ListOne(ctx, 1)
	return err
}
func retrAll(ctx context.Context, c *pop3client.Client) error {
	r, err := c.Retr(ctx, 1)
	if err != nil {
		return err
	}
	_, err = io.ReadAll(r)
	return err
}

func TestGreetingRefused(t *testing.T) {
	addr := startFake(t, func(fc *fakeConn) { fc.send("-ERR [SYS/TEMP] too many connections") })
	_, err := pop3client.Dial(ctxT(t), addr, nil)
	var cerr *pop3client.Error
	if !errors.As(err, &cerr) || cerr.Command != "greeting" || cerr.Code != pop3.CodeSysTemp {
		t.Fatalf("Dial = %v", err)
	}
}

// stalled serves a login and the start of a message, then nothing.
func stalled(t *testing.T) string {
	return startFake(t, func(fc *fakeConn) {
		fc.send("+OK ready")
		fc.line()
		fc.send("+OK 1000000 octets", "Subject: slow", "")
		fc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
		io.Copy(io.Discard, fc.br)
	})
}

// Canceling the context, its deadline passing, Options.Timeout running
// out and Close from another goroutine each end a read that is blocked.
func TestBlockedRead(t *testing.T) {
	for _, tc := range []struct {
		name  string
		opts  *pop3client.Options
		ctx   func() (context.Context, context.CancelFunc)
		abort func(c *pop3client.Client, cancel context.CancelFunc)
		check func(err error) bool
	}{
		{"cancel", nil,
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(_ *pop3client.Client, cancel context.CancelFunc) { cancel() },
			func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"deadline", nil,
			func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			nil,
			func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"timeout", &pop3client.Options{Timeout: 300 * time.Millisecond},
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			nil,
			func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }},
		{"close", nil,
			func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
			func(c *pop3client.Client, _ context.CancelFunc) { c.Close() },
			func(err error) bool { return errors.Is(err, pop3client.ErrClosed) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := pop3client.Dial(ctxT(t), stalled(t), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx, cancel := tc.ctx()
			defer cancel()
			r, err := c.Retr(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if tc.abort != nil {
				time.AfterFunc(300*time.Millisecond, func() { tc.abort(c, cancel) })
			}
			start := time.Now()
			b, err := io.ReadAll(r)
			d := time.Since(start)
			if string(b) != "Subject: slow\r\n\r\n" || !tc.check(err) {
				t.Fatalf("read %q, %v", b, err)
			}
			if d < 250*time.Millisecond || d > 3*time.Second {
				t.Fatalf("read returned after %v; want about 300ms", d)
			}
			if err := c.Noop(context.Background()); !errors.Is(err, pop3client.ErrClosed) {
				t.Fatalf("Noop afterwards = %v", err)
			}
		})
	}
}

// Dial's context ends with Dial; a context already done sends nothing
// and keeps the session.
func TestContextDoneBeforeCall(t *testing.T) {
	addr, got := saslServer(t, "+OK")
	ctx, cancel := context.WithCancel(context.Background())
	c, err := pop3client.Dial(ctx, addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cancel()
	if err := c.Noop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Noop = %v", err)
	}
	if err := c.Noop(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if lines := got(); !slices.Equal(lines, []string{"NOOP"}) {
		t.Fatalf("server received %q", lines)
	}
}
