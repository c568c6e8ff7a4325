package pop3server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3server"
)

// panicCatcher is a slog handler that remembers the records of bugs (a
// recovered session panic, an error no handler expected, masked as
// [SYS/TEMP]), so that they still fail the fuzz run. It takes every
// level, so that the protocol trace runs too.
type panicCatcher struct {
	mu   sync.Mutex
	msgs []string
}

func (p *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "session panic" || r.Message == "unexpected error" {
		var b strings.Builder
		r.Attrs(func(a slog.Attr) bool { b.WriteString(a.String() + " "); return true })
		p.mu.Lock()
		p.msgs = append(p.msgs, b.String())
		p.mu.Unlock()
	}
	return nil
}
func (p *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCatcher) WithGroup(string) slog.Handler      { return p }

// FuzzSession plays arbitrary client bytes from each session state —
// AUTHORIZATION, after USER, inside a SASL exchange (PLAIN awaiting its
// response, LOGIN awaiting the password, SCRAM awaiting client-first),
// TRANSACTION, and TRANSACTION with a message marked deleted — against a
// real server over loopback, and checks that the server never panics, answers only with
// +OK/-ERR status lines or multi-line data, ends the session when the
// client is done, and loses no message unless the input itself QUITs.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"CAPA\r\nQUIT\r\n",
		"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nDELE 3\r\nRSET\r\nNOOP\r\nLAST\r\nQUIT\r\n",
		"LIST 0\r\nLIST 99999999999\r\nRETR -1\r\nTOP 1\r\nDELE x\r\n",
		"\x00\xff\r\n\r\n\n",
		"USER a\r\nPASS b\r\nPASS c\r\n",
		"STLS\r\nAUTH PLAIN\r\nAPOP a b\r\n",
		strings.Repeat("A", 300) + "\r\nNOOP\r\n",
		"DELE 1\r\nDELE 1\r\nQUIT\r\n",
	}
	prefixes := []string{
		"",
		"USER user1\r\n",
		"USER user1\r\nPASS pass1\r\n",
		"AUTH PLAIN\r\n",
		"AUTH LOGIN\r\n" + base64.StdEncoding.EncodeToString([]byte("user1")) + "\r\n",
		"AUTH SCRAM-SHA-256\r\n",
		"USER user1\r\nPASS pass1\r\nDELE 1\r\n",
	}
	seeds = append(seeds,
		base64.StdEncoding.EncodeToString([]byte("\x00user1\x00pass1"))+"\r\nSTAT\r\nQUIT\r\n",
		base64.StdEncoding.EncodeToString([]byte("pass1"))+"\r\nRETR 1\r\n",
		base64.StdEncoding.EncodeToString([]byte("n,,n=user1,r=abcdefgh"))+"\r\n*\r\n",
		"*\r\nAUTH\r\n",
		"=\r\n",
		"!!!notbase64\r\n",
	)
	for _, s := range seeds {
		for state := range prefixes {
			f.Add(uint8(state), []byte(s))
		}
	}
	pc := &panicCatcher{}
	s := startPostie(f, func(o *pop3server.Options) {
		o.Logger = slog.New(pc)
		o.Limits.AuthTimeout = 2 * time.Second
		o.Limits.IdleTimeout = 2 * time.Second
		withSASL(o)
		o.Trace = &pop3server.Trace{}
		o.Trace.Set(nil, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	})
	s.deliverCorpus(f, "user1")

	f.Fuzz(func(t *testing.T, state uint8, input []byte) {
		prefix := prefixes[int(state)%len(prefixes)]
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		go func() {
			c.Write([]byte(prefix))
			c.Write(input)
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		out, err := io.ReadAll(c)
		if err != nil && !strings.Contains(err.Error(), "reset") {
			t.Fatalf("session did not end: %v (output %q)", err, out)
		}
		pc.mu.Lock()
		if len(pc.msgs) > 0 {
			t.Fatalf("session panicked: %s", pc.msgs[0])
		}
		pc.mu.Unlock()
		checkReplies(t, out)
		// Every session is over (the lock is free) before the next.
		waitSessions(t, s, 0)
		md, err := s.store.Open(context.Background(), "user1")
		if err != nil {
			t.Fatal(err)
		}
		n := len(md.Messages())
		md.Close()
		if n < len(corpus) && !bytes.Contains(bytes.ToUpper(input), []byte("QUIT")) {
			t.Fatalf("%d messages left without a QUIT", n)
		}
		for n < len(corpus) {
			s.store.Deliver(context.Background(), "user1", strings.NewReader(corpus[n].stored))
			n++
		}
	})
}

// checkReplies holds the output to the reply grammar: every line ends in
// CRLF, and is a status line or part of a multi-line response.
func checkReplies(t *testing.T, out []byte) {
	br := bufio.NewReader(bytes.NewReader(out))
	inMulti := false
	for {
		l, err := br.ReadString('\n')
		if err == io.EOF {
			if l != "" {
				t.Fatalf("unterminated output line %q", l)
			}
			return
		}
		if !strings.HasSuffix(l, "\r\n") {
			t.Fatalf("line without CRLF: %q", l)
		}
		if inMulti {
			if l == ".\r\n" {
				inMulti = false
			}
			continue
		}
		switch {
		case strings.HasPrefix(l, "+OK"):
			inMulti = isMultiLineStart(l)
		case strings.HasPrefix(l, "-ERR"):
		case strings.HasPrefix(l, "+ "):
			// A SASL challenge (RFC 5034 §4): base64, possibly empty.
			if _, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(l[2:], "\r\n")); err != nil {
				t.Fatalf("challenge line %q is not base64", l)
			}
		default:
			t.Fatalf("not a status line: %q", l)
		}
	}
}

func isMultiLineStart(l string) bool {
	for _, p := range []string{"+OK capability list follows", "+OK unique-id listing follows", "+OK top of message follows", "+OK mechanisms follow"} {
		if strings.HasPrefix(l, p) {
			return true
		}
	}
	// "+OK n octets" (RETR) and "+OK n messages (m octets)" (LIST).
	return strings.HasSuffix(l, " octets\r\n") && !strings.Contains(l, "logged in") && !strings.Contains(l, "maildrop has") ||
		strings.HasSuffix(l, " octets)\r\n") && strings.Contains(l, " messages (") && !strings.Contains(l, "logged in") && !strings.Contains(l, "maildrop has")
}
