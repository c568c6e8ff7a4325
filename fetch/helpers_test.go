package fetch

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3server"
)

// TestMain doubles as the child process of the crash tests: with
// POSTIE_FETCH_TEST_CHILD=1 the test binary runs one fetch of every
// account of $POSTIE_FETCH_TEST_CONFIG and kills itself with SIGKILL at
// $POSTIE_FETCH_CRASHPOINT ("after-write:3"). Only the test binary reads
// these variables.
func TestMain(m *testing.M) {
	if os.Getenv("POSTIE_FETCH_TEST_CHILD") == "1" {
		os.Exit(child())
	}
	os.Exit(m.Run())
}

func child() int {
	cfg, err := Load(os.Getenv("POSTIE_FETCH_TEST_CONFIG"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 78
	}
	opts := Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if b, err := strconv.Atoi(os.Getenv("POSTIE_FETCH_TEST_BATCH")); err == nil {
		opts.batch = b
	}
	if cp := os.Getenv("POSTIE_FETCH_CRASHPOINT"); cp != "" {
		point, nstr, _ := strings.Cut(cp, ":")
		n, _ := strconv.Atoi(nstr)
		opts.crash = func(p string, i int) {
			if p == point && (i == n || n == 0) {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // never returns
			}
		}
	}
	code := 0
	for _, a := range cfg.Accounts {
		res := New(cfg, a, opts).Run(context.Background())
		fmt.Println(res.Summary())
		if res.Err != nil {
			fmt.Fprintln(os.Stderr, res.Err)
			if res.Err.Kind == KindTemporary {
				code = 75
			} else {
				code = 1
			}
		}
	}
	return code
}

// postie is postie's POP3 server in the test process (pop3test).
type postie struct {
	*pop3test.Server
	addr string
	root string
	srv  *pop3server.Server
}

// startPostie runs postie's POP3 server on loopback over a Maildir store,
// in this process.
func startPostie(t testing.TB, tweak func(*pop3server.Options)) *postie {
	t.Helper()
	s := pop3test.Start(t, pop3test.Options{Tweak: tweak})
	return &postie{Server: s, addr: s.Addr, root: s.Root, srv: s.Server}
}

func (p *postie) serveTLS(t testing.TB, cfg *tls.Config) string {
	t.Helper()
	return p.ServeTLS(t, cfg)
}

func (p *postie) deliver(t testing.TB, user string, msgs ...string) {
	t.Helper()
	p.Deliver(t, user, msgs...)
}

// count is the number of messages in user's maildrop on the server.
func (p *postie) count(t testing.TB, user string) int {
	t.Helper()
	return len(maildirContents(t, filepath.Join(p.root, user)))
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// logTo is a logger writing into the test's log.
func logTo(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// captureLog is a logger whose output is kept.
type captureLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (c *captureLog) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.Write(p)
}

func (c *captureLog) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.b.String()
}

func (c *captureLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// tlsPair makes a self-signed certificate for 127.0.0.1 and localhost.
func tlsPair(t testing.TB) (*tls.Config, []byte) {
	t.Helper()
	return testenv.ServerTLSConfig(t)
}

func certPool(pemData []byte) *x509.CertPool {
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(pemData)
	return p
}

// config parses a fetch configuration: the top-level keys (state_dir is
// set to a temporary directory unless given) and then the accounts.
func config(t testing.TB, text string) *Config {
	t.Helper()
	dir := t.TempDir()
	if !strings.Contains(text, "state_dir") {
		text = fmt.Sprintf("state_dir = %q\n", filepath.Join(dir, "state")) + text
	}
	path := filepath.Join(dir, "fetch.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// account is the TOML of an account for user1 on the server at addr, plain
// POP3 on loopback; extra lines ("key = value") add keys or replace them.
func account(name, addr string, extra ...string) string {
	host, port, _ := net.SplitHostPort(addr)
	keys := []string{"name", "server", "port", "tls", "insecure", "user", "password_env"}
	vals := map[string]string{
		"name": strconv.Quote(name), "server": strconv.Quote(host), "port": port,
		"tls": `"none"`, "insecure": "true", "user": `"user1"`, "password_env": `"POSTIE_FETCH_TEST_PASS"`,
	}
	for _, e := range extra {
		k, v, _ := strings.Cut(e, "=")
		k = strings.TrimSpace(k)
		if _, ok := vals[k]; !ok {
			keys = append(keys, k)
		}
		vals[k] = strings.TrimSpace(v)
	}
	var b strings.Builder
	b.WriteString("[[account]]\n")
	for _, k := range keys {
		if vals[k] != "" {
			fmt.Fprintf(&b, "%s = %s\n", k, vals[k])
		}
	}
	return b.String()
}

func init() { os.Setenv("POSTIE_FETCH_TEST_PASS", "pass1") }

// runOnce runs every account of c once and fails the test on an error.
func runOnce(t testing.TB, c *Config, opts Options) []*Result {
	t.Helper()
	var out []*Result
	for _, a := range c.Accounts {
		res := New(c, a, opts).Run(context.Background())
		if res.Err != nil {
			t.Fatalf("%s: %v", a.Name, res.Err)
		}
		out = append(out, res)
	}
	return out
}

// maildirContents returns the contents of the messages in a Maildir's new/
// and cur/, in the order of their names.
func maildirContents(t testing.TB, dir string) []string {
	t.Helper()
	var names []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for _, e := range ents {
			names = append(names, filepath.Join(sub, e.Name()))
		}
	}
	slices.SortFunc(names, func(a, b string) int { return compareMaildirNames(filepath.Base(a), filepath.Base(b)) })
	out := make([]string, len(names))
	for i, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	return out
}

// compareMaildirNames orders Maildir base names "secs.M<usecs>P<pid>..."
// (postie's and Dovecot's) by delivery time: the microseconds are not
// zero-padded, so plain string order puts M99 after M100000.
func compareMaildirNames(a, b string) int {
	key := func(n string) (int64, int64) {
		secs, rest, _ := strings.Cut(n, ".")
		s, _ := strconv.ParseInt(secs, 10, 64)
		var us int64
		if r, ok := strings.CutPrefix(rest, "M"); ok {
			end := strings.IndexFunc(r, func(c rune) bool { return c < '0' || c > '9' })
			if end < 0 {
				end = len(r)
			}
			us, _ = strconv.ParseInt(r[:end], 10, 64)
		}
		return s, us
	}
	as, au := key(a)
	bs, bu := key(b)
	if c := cmp.Compare(as, bs); c != 0 {
		return c
	}
	if c := cmp.Compare(au, bu); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// lfForm is a message as a Unix file holds it after retrieval: LF line
// ends and a final line end.
func lfForm(msg string) string {
	s := strings.ReplaceAll(msg, "\r\n", "\n")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

// corpus covers what retrieval must keep exact: LF and CRLF ends, leading
// dots (stuffed on the wire), a lone ".", "From " lines, 8-bit text, no
// final newline.
var corpus = []string{
	"From: a@example.com\nSubject: one\nMessage-ID: <1@example.com>\n\nHello\n",
	"From: b@example.com\r\nSubject: two\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
	"Return-Path: <c@example.com>\nSubject: three\n\nFrom here on\n>From quoted\n\xe2\x9c\x89 8-bit\nno final newline",
	"Subject: four\n\n" + strings.Repeat("a fairly long line of body text, to make the message bigger than one buffer\n", 4000),
	"Subject: five\n\n.\n",
}

// fake is a small POP3 server with knobs for what it lacks, holding the
// client to its rules (no command sent early without PIPELINING).
type fake struct {
	t          testing.TB
	capa       []string // nil: no CAPA
	noUIDL     bool
	noTop      bool
	pipelining bool
	// expire0: QUIT also deletes the messages the session retrieved
	// (RFC 2449 EXPIRE 0; announce it in capa).
	expire0 bool
	auth    func(user, pass string) bool // USER/PASS check (default: any)
	xoauth2 func(token string) bool      // AUTH XOAUTH2 check, when set

	mu    sync.Mutex
	msgs  []string // wire form; "" once deleted
	cmds  []string
	conns int
}

func (f *fake) start() string {
	f.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.t.Fatal(err)
	}
	var wg sync.WaitGroup
	f.t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { defer c.Close(); f.serve(c) })
		}
	})
	return ln.Addr().String()
}

func (f *fake) live() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.msgs {
		if m != "" {
			out = append(out, m)
		}
	}
	return out
}

func (f *fake) serve(c net.Conn) {
	f.mu.Lock()
	f.conns++
	f.mu.Unlock()
	br := bufio.NewReader(c)
	send := func(lines ...string) {
		c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	}
	send("+OK fake ready")
	f.mu.Lock()
	snapshot := slices.Clone(f.msgs)
	f.mu.Unlock()
	del := map[int]bool{}
	retrieved := map[int]bool{}
	msg := func(arg string) (int, bool) {
		n, err := strconv.Atoi(arg)
		if err != nil || n < 1 || n > len(snapshot) || del[n] || snapshot[n-1] == "" {
			send("-ERR no such message")
			return 0, false
		}
		return n, true
	}
	authed := false
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		l = strings.TrimRight(l, "\r\n")
		verb, arg, _ := strings.Cut(l, " ")
		verb = strings.ToUpper(verb)
		f.mu.Lock()
		f.cmds = append(f.cmds, verb)
		f.mu.Unlock()
		if br.Buffered() > 0 && !f.pipelining && verb != "AUTH" {
			f.t.Errorf("client sent %q with more behind it, but PIPELINING was not announced", l)
		}
		switch {
		case verb == "CAPA" && f.capa != nil:
			send(append(append([]string{"+OK"}, f.capa...), ".")...)
		case verb == "USER":
			send("+OK")
		case verb == "PASS":
			if f.auth == nil || f.auth("", arg) {
				authed = true
				send("+OK logged in")
			} else {
				send("-ERR [AUTH] invalid credentials")
			}
		case verb == "AUTH" && f.oauthCheck() != nil && strings.HasPrefix(strings.ToUpper(arg), "XOAUTH2"):
			_, resp, ok := strings.Cut(arg, " ")
			if !ok {
				send("+ ")
				resp, _ = br.ReadString('\n')
			}
			tok := decodeXOAuth2(strings.TrimSpace(resp))
			if f.oauthCheck()(tok) {
				authed = true
				send("+OK logged in")
			} else {
				send("+ eyJzdGF0dXMiOiI0MDEifQ==") // {"status":"401"}
				br.ReadString('\n')
				send("-ERR [AUTH] token refused")
			}
		case verb == "AUTH" && strings.HasPrefix(strings.ToUpper(arg), "SCRAM-"):
			send("-ERR [AUTH] no SCRAM keys for this user")
		case verb == "AUTH" && strings.HasPrefix(strings.ToUpper(arg), "PLAIN "):
			raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(arg[len("PLAIN "):]))
			parts := strings.Split(string(raw), "\x00")
			if len(parts) == 3 && (f.auth == nil || f.auth(parts[1], parts[2])) {
				authed = true
				send("+OK logged in")
			} else {
				send("-ERR [AUTH] invalid credentials")
			}
		case !authed && verb != "QUIT":
			send("-ERR unknown command or not logged in")
		case verb == "STAT":
			n, size := 0, 0
			for i, m := range snapshot {
				if m != "" && !del[i+1] {
					n++
					size += len(m)
				}
			}
			send(fmt.Sprintf("+OK %d %d", n, size))
		case verb == "LIST" && arg == "":
			lines := []string{"+OK"}
			for i, m := range snapshot {
				if m != "" && !del[i+1] {
					lines = append(lines, fmt.Sprintf("%d %d", i+1, len(m)))
				}
			}
			send(append(lines, ".")...)
		case verb == "UIDL" && !f.noUIDL && arg == "":
			lines := []string{"+OK"}
			for i, m := range snapshot {
				if m != "" && !del[i+1] {
					lines = append(lines, fmt.Sprintf("%d uid-%d", i+1, i+1))
				}
			}
			send(append(lines, ".")...)
		case verb == "RETR" || verb == "TOP" && !f.noTop:
			num, lines, _ := strings.Cut(arg, " ")
			n, ok := msg(num)
			if !ok {
				continue
			}
			body := snapshot[n-1]
			if verb == "RETR" {
				retrieved[n] = true
			}
			if verb == "TOP" {
				k, _ := strconv.Atoi(lines)
				head, rest, _ := strings.Cut(body, "\r\n\r\n")
				bl := strings.SplitAfter(rest, "\r\n")
				body = head + "\r\n\r\n" + strings.Join(bl[:min(k, len(bl))], "")
			}
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write([]byte("+OK\r\n" + stuff(body)))
		case verb == "DELE":
			if n, ok := msg(arg); ok {
				del[n] = true
				send("+OK")
			}
		case verb == "NOOP":
			send("+OK")
		case verb == "RSET":
			clear(del)
			send("+OK")
		case verb == "QUIT":
			f.mu.Lock()
			for n := range del {
				f.msgs[n-1] = ""
			}
			if f.expire0 {
				for n := range retrieved {
					f.msgs[n-1] = ""
				}
			}
			f.mu.Unlock()
			send("+OK bye")
			return
		default:
			send("-ERR unknown command")
		}
	}
}

func (f *fake) oauthCheck() func(string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.xoauth2
}

func (f *fake) connCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

func decodeXOAuth2(b64 string) string {
	raw, _ := base64.StdEncoding.DecodeString(b64)
	_, rest, _ := strings.Cut(string(raw), "auth=Bearer ")
	tok, _, _ := strings.Cut(rest, "\x01")
	return tok
}

// stuff dot-stuffs a wire-form message and appends the terminator.
func stuff(wire string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(wire, "\r\n") {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ".") {
			b.WriteString(".")
		}
		b.WriteString(l)
	}
	return b.String() + ".\r\n"
}

// wireForm is a message as RETR sends it before stuffing.
func wireForm(msg string) string {
	s := strings.ReplaceAll(strings.ReplaceAll(msg, "\r\n", "\n"), "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") {
		s += "\r\n"
	}
	return s
}
