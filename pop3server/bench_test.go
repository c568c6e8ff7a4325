package pop3server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
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

// wrappedListener hands out connections wrapped in another type: the
// server then cannot send files to them (no *net.TCPConn), and RETR
// converts in user space as it did before sendfile.
type wrappedListener struct{ net.Listener }

type wrappedConn struct{ net.Conn }

func (l wrappedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return wrappedConn{c}, nil
}

// BenchmarkRetrFile measures RETR of a 50 MiB message stored with CRLF
// line ends (as LMTP delivers) over loopback, with no line beginning with
// '.', with four (sent in pieces) and with one in 500 (dots500: too many
// to record, so converted in user space): "file" is
// postie as it runs (sendfile where it can), "user" the same server made
// to convert in user space (the path before sendfile), and "raw" a sender
// that writes the same wire bytes from memory, the ceiling. The client
// reads raw octets up to the terminator. cpu-ms/GB is the process's CPU
// time (getrusage: server and client together) per GB sent; the raw
// sender's is the client's share plus the least a sender can cost. For
// the message without dot lines, "tls" and "rawtls" do the same over
// implicit TLS (user space only); tls-in16K and tls-in256K with the big
// message writer reading 16 or 256 KiB at a time (and buffering four
// times that) instead of 64 KiB.
//
//	go test -run '^$' -bench RetrFile -benchtime 20x -count 6 ./pop3server
func BenchmarkRetrFile(b *testing.B) {
	for _, v := range []struct {
		name     string
		dotEvery int
	}{{"50MB", 0}, {"50MB-4dots", 150000}, {"50MB-dots500", 500}} {
		benchRetrFile(b, v.name, v.dotEvery)
	}
}

func benchRetrFile(b *testing.B, name string, dotEvery int) {
	var msg bytes.Buffer
	for i := 1; msg.Len() < 50<<20; i++ {
		if dotEvery > 0 && i%dotEvery == 0 {
			msg.WriteString(".")
		}
		msg.WriteString("0123456789 abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789\r\n")
	}
	var stuffed bytes.Buffer
	dw := wire.NewDotWriter(&stuffed, 256<<10)
	dw.Write(msg.Bytes())
	dw.Close()
	dw.Flush()
	status := "+OK " + itoa(msg.Len()) + " octets\r\n"

	modes := []string{"file", "user", "raw"}
	if dotEvery == 0 {
		modes = append(modes, "tls", "tls-in16K", "tls-in256K", "rawtls")
	}
	var srvTLS, cliTLS *tls.Config
	if dotEvery == 0 {
		srvTLS, _ = testenv.ServerTLSConfig(b)
		cliTLS = &tls.Config{InsecureSkipVerify: true}
	}
	for _, mode := range modes {
		b.Run(name+"/"+mode, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			var login string
			var sl net.Listener = ln
			if strings.HasPrefix(mode, "tls") || mode == "rawtls" {
				sl = tls.NewListener(ln, srvTLS)
			}
			switch mode {
			case "tls-in16K":
				defer pop3server.SetBigMsgWriterSize(16 << 10)()
			case "tls-in256K":
				defer pop3server.SetBigMsgWriterSize(256 << 10)()
			}
			if mode == "raw" || mode == "rawtls" {
				go rawSender(sl, status, stuffed.Bytes())
			} else {
				login = "USER user1\r\nPASS pass1\r\n"
				st, err := maildir.New(maildir.Options{Root: b.TempDir(), Logger: quietLogger(b)})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := st.Deliver(context.Background(), "user1", bytes.NewReader(msg.Bytes())); err != nil {
					b.Fatal(err)
				}
				srv, err := pop3server.New(pop3server.Options{Logger: quietLogger(b), Store: st, Authenticator: users, Limits: pop3server.Limits{AuthFailDelay: -1}})
				if err != nil {
					b.Fatal(err)
				}
				l := sl
				if mode == "user" {
					l = wrappedListener{ln}
				}
				go srv.Serve(l)
				defer srv.Close()
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			if sl != ln {
				c = tls.Client(c, cliTLS)
			}
			br := bufio.NewReaderSize(c, 256<<10)
			if login != "" {
				io.WriteString(c, login)
			}
			lines := 3 // greeting, USER, PASS
			if mode == "raw" || mode == "rawtls" {
				lines = 1 // greeting
			}
			for range lines {
				if _, err := wire.ReadLine(br, 512); err != nil {
					b.Fatal(err)
				}
			}
			want := int64(len(status) + stuffed.Len())
			b.SetBytes(int64(msg.Len()))
			var ru0, ru1 syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
			n := 0
			for b.Loop() {
				io.WriteString(c, "RETR 1\r\n")
				got, err := io.CopyN(io.Discard, br, want)
				if err != nil || got != want {
					b.Fatalf("read %d of %d: %v", got, want, err)
				}
				n++
			}
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
			cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
			gb := float64(n) * float64(msg.Len()) / 1e9
			b.ReportMetric(float64(cpu.Milliseconds())/gb, "cpu-ms/GB")
		})
	}
}

// rawSender answers each line read on the one connection it accepts
// with status and body: a POP3 server's least possible work.
func rawSender(ln net.Listener, status string, body []byte) {
	c, err := ln.Accept()
	if err != nil {
		return
	}
	defer c.Close()
	br := bufio.NewReader(c)
	io.WriteString(c, "+OK raw\r\n")
	for {
		if _, err := br.ReadSlice('\n'); err != nil {
			return
		}
		io.WriteString(c, status)
		if _, err := c.Write(body); err != nil {
			return
		}
	}
}
