package pop3server_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/postie-mail/postie/internal/wire"
)

// BenchmarkRetr measures RETR throughput over loopback through a real
// Maildir: the client reads and unstuffs each message whole.
//
//	go test -run '^$' -bench Retr -benchtime 3s ./pop3server
func BenchmarkRetr(b *testing.B) {
	for _, size := range []struct {
		name string
		n    int
	}{{"100KB", 100 << 10}, {"10MB", 10 << 20}, {"50MB", 50 << 20}} {
		b.Run(size.name, func(b *testing.B) {
			s := startPostie(b, nil)
			line := "0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\n"
			var msg strings.Builder
			msg.WriteString("Subject: bench\n\n")
			for msg.Len() < size.n {
				msg.WriteString(line)
			}
			info, err := s.store.Deliver(context.Background(), "user1", strings.NewReader(msg.String()))
			if err != nil {
				b.Fatal(err)
			}
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReaderSize(c, 64<<10)
			readStatus := func() string {
				l, err := wire.ReadLine(br, 512)
				if err != nil {
					b.Fatal(err)
				}
				return string(l)
			}
			readStatus()
			c.Write([]byte("USER user1\r\nPASS pass1\r\n"))
			readStatus()
			readStatus()
			b.SetBytes(info.Size)
			b.ResetTimer()
			for b.Loop() {
				c.Write([]byte("RETR 1\r\n"))
				if l := readStatus(); !strings.HasPrefix(l, "+OK") {
					b.Fatal(l)
				}
				n, err := io.Copy(io.Discard, wire.NewDotReader(br))
				if err != nil || n != info.Size {
					b.Fatalf("read %d of %d: %v", n, info.Size, err)
				}
			}
		})
	}
}

// BenchmarkSession measures whole sessions: connect, USER/PASS, STAT, QUIT
// (the authenticator is trivial here; see auth for hashing costs).
//
//	go test -run '^$' -bench Session -benchtime 3s ./pop3server
func BenchmarkSession(b *testing.B) {
	s := startPostie(b, nil)
	s.deliverCorpus(b, "user1")
	buf := make([]byte, 4096)
	for b.Loop() {
		c, err := net.Dial("tcp", s.addr)
		if err != nil {
			b.Fatal(err)
		}
		c.Write([]byte("USER user1\r\nPASS pass1\r\nSTAT\r\nQUIT\r\n"))
		var got []byte
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		c.Close()
		if !strings.Contains(string(got), "+OK bye") {
			b.Fatalf("%q", got)
		}
	}
}
