package intake

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// errorRecorder is a slog handler that keeps the first panic reported at
// Error and drops everything else, so that a long fuzz run keeps no log.
// (go-smtp's recovered panic when a client hangs up right after BDAT is
// logged at Info: TestBDATHangupIsNoError.)
type errorRecorder struct {
	mu  sync.Mutex
	msg string
}

func (r *errorRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelError }
func (r *errorRecorder) Handle(_ context.Context, rec slog.Record) error {
	if strings.Contains(rec.Message, "panic") {
		r.mu.Lock()
		if r.msg == "" {
			r.msg = rec.Message
		}
		r.mu.Unlock()
	}
	return nil
}
func (r *errorRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *errorRecorder) WithGroup(string) slog.Handler      { return r }

// take returns the first panic recorded since the last call, and forgets
// it.
func (r *errorRecorder) take() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := r.msg
	r.msg = ""
	return msg
}

// FuzzLMTPSession plays arbitrary client bytes against the LMTP server
// over loopback, from each point of a transaction: connected, after LHLO,
// after MAIL, after RCPT, inside DATA. The server must not panic, must
// answer only with well-formed replies (a 2xx–5xx code, then a space or a
// hyphen), must end the session when the client is done, and must deliver
// nothing unless the client sent DATA or BDAT.
func FuzzLMTPSession(f *testing.F) {
	prefixes := []string{
		"",
		"LHLO fuzz.example\r\n",
		"LHLO fuzz.example\r\nMAIL FROM:<a@example.org>\r\n",
		"LHLO fuzz.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.org>\r\n",
		"LHLO fuzz.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob+x@example.net>\r\nDATA\r\n",
	}
	for _, s := range []string{
		"",
		"QUIT\r\n",
		"Subject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
		"..dot\r\n.\r\nRSET\r\nNOOP\r\n",
		"MAIL FROM:<>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:<carol@other.org>\r\nDATA\r\n",
		"BDAT 5 LAST\r\nhello",
		"LHLO\r\nHELO x\r\nEHLO x\r\nSTARTTLS\r\nAUTH PLAIN\r\nVRFY alice\r\n",
		"RCPT TO:<alice\x00@example.org>\r\nMAIL FROM:<a@b> SIZE=99999999999999999999\r\n",
		strings.Repeat("A", 2000) + "\r\n",
		"\x00\xff\r\n\n\r.\r\n",
	} {
		for state := range prefixes {
			f.Add(uint8(state), []byte(s))
		}
	}
	panics := &errorRecorder{}
	e := newEnv(f, func(o *Options) { o.Logger = slog.New(panics) })
	_, addr := e.serve(f, ServerOptions{LMTP: true, ReadTimeout: 2 * time.Second})
	reply := regexp.MustCompile(`^[2-5][0-9][0-9]([ -].*)?\r\n$`)
	f.Fuzz(func(t *testing.T, state uint8, input []byte) {
		prefix := prefixes[int(state)%len(prefixes)]
		before := len(e.messages(t, "alice")) + len(e.messages(t, "bob"))
		c, err := net.Dial("tcp", addr)
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
		br := bufio.NewReader(bytes.NewReader(out))
		for first := true; ; first = false {
			l, err := br.ReadString('\n')
			if err == io.EOF {
				if l != "" {
					t.Fatalf("unterminated reply %q", l)
				}
				break
			}
			if !reply.MatchString(l) {
				t.Fatalf("not an LMTP reply: %q", l)
			}
			if first && !strings.HasPrefix(l, "220") {
				t.Fatalf("greeting %q", l)
			}
		}
		if msg := panics.take(); msg != "" {
			t.Fatalf("server panicked: %s", msg)
		}
		after := len(e.messages(t, "alice")) + len(e.messages(t, "bob"))
		all := bytes.ToUpper(append([]byte(prefix), input...))
		if after > before && !bytes.Contains(all, []byte("DATA")) && !bytes.Contains(all, []byte("BDAT")) {
			t.Fatalf("%d messages delivered without DATA or BDAT", after-before)
		}
	})
}
