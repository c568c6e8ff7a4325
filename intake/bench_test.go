package intake

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// BenchmarkLMTP measures LMTP deliveries per second into a Maildir (each
// one fsynced, file and directory, before its 250), for 2 KB and 100 KB
// messages, one client connection delivering one message after the other
// to one recipient, and the same against Dovecot's LMTP (dovecot-lmtpd,
// defaults: mail_fsync = optimized, indexes on) in the same run, into a
// Maildir on the same file system. Run with
//
//	go test -run '^$' -bench LMTP -benchtime 3s ./intake
//
// The Dovecot lines carry the ratio of the postie line above them
// ("postie/dovecot": above 1, postie delivers faster).
func BenchmarkLMTP(b *testing.B) {
	// Dovecot lives as long as the whole benchmark (a sub-benchmark's
	// function runs several times).
	var dove *testenv.DovecotLMTP
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err == nil && os.Geteuid() == 0 {
		dove = testenv.StartDovecotLMTP(b, 1)
	}
	for _, size := range []int{2 << 10, 100 << 10} {
		name := fmt.Sprintf("%dKB", size>>10)
		msg := benchMessage(size)
		rates := map[string]float64{}
		b.Run(name+"/postie", func(b *testing.B) {
			e := newEnv(b, func(o *Options) { o.Logger = discardLogger() })
			_, addr := e.serve(b, ServerOptions{LMTP: true})
			rates["postie"] = runLMTP(b, addr, "alice@example.org", msg)
		})
		b.Run(name+"/dovecot", func(b *testing.B) {
			if dove == nil {
				testenv.StartDovecotLMTP(b, 1) // skips (fails under CI), saying why
			}
			rate := runLMTP(b, dove.Addr, "user1@example.org", msg)
			if p := rates["postie"]; p > 0 {
				b.ReportMetric(p/rate, "postie/dovecot")
			}
		})
	}
}

// benchMessage is a plain text message of about size octets, CRLF ends.
func benchMessage(size int) []byte {
	var s strings.Builder
	s.WriteString("From: bench@example.net\r\nTo: alice@example.org\r\nSubject: benchmark\r\nMessage-ID: <bench@example.net>\r\n\r\n")
	line := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 1)[:44] + "0123456789012345678901234567890\r\n"
	for s.Len() < size {
		s.WriteString(line)
	}
	return []byte(s.String())
}

// runLMTP delivers b.N messages over one connection, each in its own
// pipelined transaction, and returns deliveries per second.
func runLMTP(b *testing.B, addr, rcpt string, msg []byte) float64 {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	bw := bufio.NewWriterSize(c, 64<<10)
	reply := func() string {
		var last string
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				b.Fatalf("reading a reply: %v", err)
			}
			if len(l) < 4 || l[3] != '-' {
				last = l
				break
			}
		}
		return last
	}
	expect := func(code string) {
		if r := reply(); !strings.HasPrefix(r, code) {
			b.Fatalf("reply %q, want %s", r, code)
		}
	}
	expect("220")
	fmt.Fprintf(bw, "LHLO bench.example.net\r\n")
	bw.Flush()
	expect("250")
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		fmt.Fprintf(bw, "MAIL FROM:<bench@example.net>\r\nRCPT TO:<%s>\r\nDATA\r\n", rcpt)
		bw.Flush()
		expect("250")
		expect("250")
		expect("354")
		bw.Write(msg)
		bw.WriteString(".\r\n")
		bw.Flush()
		expect("250")
	}
	elapsed := time.Since(start)
	b.StopTimer()
	rate := float64(b.N) / elapsed.Seconds()
	b.ReportMetric(rate, "deliveries/s")
	fmt.Fprintf(bw, "QUIT\r\n")
	bw.Flush()
	return rate
}
