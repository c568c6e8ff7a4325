package pop3client_test

import (
	"context"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// exercise runs every kind of call once, ignoring the outcomes: the fuzz
// target cares only that the client neither panics nor hangs.
func exercise(ctx context.Context, addr string) {
	c, err := pop3client.Dial(ctx, addr, &pop3client.Options{Logger: quiet()})
	if err != nil {
		return
	}
	defer c.Close()
	c.Capabilities(ctx)
	c.APOP(ctx, "u", "s")
	c.Auth(ctx, pop3client.SASLScramSHA256("u", "p"))
	c.Auth(ctx, pop3client.SASLXOAuth2("u", strings.Repeat("t", 300)))
	c.Auth(ctx, pop3client.SASLLogin("u", "p"))
	c.Login(ctx, "u", "p")
	c.Stat(ctx)
	c.ListAndUIDL(ctx)
	c.List(ctx)
	c.UIDL(ctx)
	c.ListOne(ctx, 1)
	c.UIDLOne(ctx, 1)
	if r, err := c.Retr(ctx, 1); err == nil {
		io.Copy(io.Discard, r)
		r.Close()
	}
	if r, err := c.Top(ctx, 1, 2); err == nil {
		io.CopyN(io.Discard, r, 10) // left open: the next call drains it
	}
	c.DeleMany(ctx, []int{1, 2, 3})
	c.Dele(ctx, 4)
	c.Rset(ctx)
	c.Noop(ctx)
	c.STLS(ctx)
	c.Quit(ctx)
}

// FuzzClientResponses feeds arbitrary server bytes after a greeting to a
// client running every command. The client must not panic, and must
// return by the context's deadline (plus scheduling slack) whether the
// server then closes the connection or stalls.
func FuzzClientResponses(f *testing.F) {
	ok := strings.Repeat("+OK\r\n", 4)
	seeds := []string{
		"",
		"+OK\r\nTOP\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n-ERR no\r\n-ERR no\r\n-ERR no\r\n+OK\r\n+OK\r\n+OK 2 20\r\n+OK\r\n1 10\r\n2 10\r\n.\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n",
		"-ERR\r\n" + ok + "+OK 1 5\r\n+OK\r\n1 5\r\n.\r\n-ERR [SYS/TEMP] x\r\n+OK 5\r\nab\r\n..\r\n.\r\n",
		"+ " + base64.StdEncoding.EncodeToString([]byte("r=xyz,s=c2FsdA==,i=4096")) + "\r\n-ERR\r\n+ e30=\r\n-ERR\r\n+ VXNlcm5hbWU6\r\n+\r\n+OK\r\n",
		"+ cj1meXosaT05OTk5OTk5OTk5OSxzPWFBPT0=\r\n", // a SCRAM challenge asking for 99999999999 iterations
		"+OK\r\n" + strings.Repeat("X", 600) + "\r\n",
		"+OK\r\n1 10\r\n",
		"+OK 10 octets\r\nline\r\n..\r\n.\r\n+OK\r\n.\r\n",
		"+OK begin TLS\r\n+OK\r\n",
		"+ \r\n+ \r\n+ !!\r\n-ERR\r\n",
		"\x00\xff\r\n\n\r\r\n.\r\n",
	}
	for _, s := range seeds {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ln.Close() })
	addr := ln.Addr().String()

	f.Fuzz(func(t *testing.T, stall bool, data []byte) {
		served := make(chan struct{})
		go func() {
			defer close(served)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			c.Write(append([]byte("+OK fuzz <1.2@example>\r\n"), data...))
			if !stall {
				c.(*net.TCPConn).CloseWrite()
			}
			io.Copy(io.Discard, c)
		}()
		budget := 2 * time.Second
		if stall {
			budget = 150 * time.Millisecond
		}
		ctx, cancel := context.WithTimeout(context.Background(), budget)
		defer cancel()
		start := time.Now()
		exercise(ctx, addr)
		if d := time.Since(start); d > budget+2*time.Second {
			t.Fatalf("client ran for %v with a %v deadline", d, budget)
		}
		<-served
	})
}
