package intake

import (
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// A client that hangs up right after BDAT makes go-smtp panic (its chunk
// goroutine finds the session closed) and recover. Any client can do it at
// will, so it must not write an Error with a stack trace each time.
// Found by FuzzLMTPSession.
func TestBDATHangupIsNoError(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(o *Options) {
		o.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	_, addr := e.serve(t, ServerOptions{LMTP: true, ReadTimeout: 5 * time.Second})
	for range 200 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("LHLO x\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<alice@example.org>\r\nBDAT 0\r\n"))
		c.(*net.TCPConn).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.ReadAll(c)
		c.Close()
	}
	// The recovered panics are logged after the connections close.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "client hung up during BDAT") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := logs.String()
	if strings.Contains(out, "level=ERROR") {
		i := strings.Index(out, "level=ERROR")
		t.Fatalf("hang-ups during BDAT logged as errors:\n%.600s", out[i:])
	}
	if !strings.Contains(out, "client hung up during BDAT") {
		t.Fatal("no hang-up during BDAT seen in 200 tries: the test no longer reproduces go-smtp's race")
	}
	if n := len(e.messages(t, "alice")); n != 0 {
		t.Fatalf("%d messages delivered by clients that hung up", n)
	}
}
