package intake

import (
	"bufio"
	"context"
	"github.com/postie-mail/postie/internal/testenv"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/store/maildir"
)

// users is a user database for tests: names matched ASCII
// case-insensitively, as auth.DB does.
type users []string

func (u users) LookupContext(_ context.Context, name string) (string, bool, error) {
	for _, n := range u {
		if asciiEqualFold(n, name) {
			return n, true, nil
		}
	}
	return "", false, nil
}

// syncBuffer is testenv.SyncBuffer under this package's old name.
type syncBuffer = testenv.SyncBuffer

// fixedNow is the clock of tests that check exact bytes.
var fixedNow = time.Date(2025, 1, 14, 10, 0, 0, 0, time.FixedZone("", 3600))

// env is a maildir store, a Deliverer on it, and the log.
type env struct {
	root string
	st   *maildir.Store
	d    *Deliverer
	logs *syncBuffer
}

// newEnv makes a Deliverer over a fresh Maildir root for users alice, bob
// and carol; change adjusts the options first.
func newEnv(t testing.TB, change func(*Options)) *env {
	t.Helper()
	root := t.TempDir()
	return newEnvAt(t, root, change)
}

func newEnvAt(t testing.TB, root string, change func(*Options)) *env {
	t.Helper()
	e := &env{root: root, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := maildir.New(maildir.Options{Root: root, Hostname: "mx.test", Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.st = st
	opts := Options{
		Store:              st,
		Users:              users{"alice", "bob", "carol", "a+b"},
		LocalDomains:       []string{"example.org", "Example.NET"},
		RecipientDelimiter: "+",
		Hostname:           "mail.example.org",
		Logger:             log,
		Now:                func() time.Time { return fixedNow },
	}
	if change != nil {
		change(&opts)
	}
	if e.d, err = New(opts); err != nil {
		t.Fatal(err)
	}
	return e
}

// messages returns the contents of the messages in user's new/, oldest
// first (names sort by delivery time).
func (e *env) messages(t testing.TB, user string) []string {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(e.root, user, "new", "*"))
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// serve starts a Server on a loopback port and returns its address; it is
// closed when the test ends.
func (e *env) serve(t testing.TB, opts ServerOptions) (*Server, string) {
	t.Helper()
	opts.Deliverer = e.d
	s, err := NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != ErrServerClosed {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return s, ln.Addr().String()
}

// client is a raw SMTP/LMTP client: tests check exact reply lines.
type client struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dial(t testing.TB, network, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// script plays a transcript: "C: line" is sent (CRLF added; consecutive
// ones in one write: pipelining), "S: line" must be the next reply line
// exactly, "S~ prefix" must start it, "S* code" reads a multi-line reply
// of that code to its last line, "E:" expects the connection to end.
func (cl *client) script(s string) {
	cl.t.Helper()
	var pending strings.Builder
	flush := func() {
		if pending.Len() > 0 {
			if _, err := io.WriteString(cl.c, pending.String()); err != nil {
				cl.t.Fatalf("write: %v", err)
			}
			pending.Reset()
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		line = strings.TrimLeft(line, "\t")
		kind, text := line[:2], ""
		if len(line) > 3 {
			text = line[3:]
		}
		switch kind {
		case "C:":
			pending.WriteString(text + "\r\n")
		case "S:", "S~":
			flush()
			got, err := cl.br.ReadString('\n')
			if err != nil {
				cl.t.Fatalf("reading the reply for %q: %v (got %q)", text, err, got)
			}
			if !strings.HasSuffix(got, "\r\n") {
				cl.t.Fatalf("reply %q does not end in CRLF", got)
			}
			got = strings.TrimSuffix(got, "\r\n")
			if kind == "S:" && got != text || kind == "S~" && !strings.HasPrefix(got, text) {
				cl.t.Fatalf("reply\n got %q\nwant %q", got, text)
			}
		case "S*":
			flush()
			for {
				got, err := cl.br.ReadString('\n')
				if err != nil || !strings.HasPrefix(got, text) {
					cl.t.Fatalf("reading a %s reply: %q, %v", text, got, err)
				}
				if strings.HasPrefix(got, text+" ") {
					break
				}
			}
		case "E:":
			flush()
			if got, err := cl.br.ReadString('\n'); err == nil {
				cl.t.Fatalf("connection still open, got %q", got)
			}
		default:
			cl.t.Fatalf("bad script line %q", line)
		}
	}
	flush()
}

// send writes raw bytes.
func (cl *client) send(s string) {
	cl.t.Helper()
	if _, err := io.WriteString(cl.c, s); err != nil {
		cl.t.Fatal(err)
	}
}

// countFiles counts the entries of root/user/sub.
func countFiles(t testing.TB, root, user, sub string) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, user, sub))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return len(ents)
}

var osStat = os.Stat

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
