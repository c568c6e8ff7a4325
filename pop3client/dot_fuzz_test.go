package pop3client_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3client"
)

// FuzzDotStuffRoundTrip sends stored messages through the server's writer
// (wire.DotWriter, as pop3server streams RETR, in two writes split at an
// arbitrary point) over a real TCP connection to this package's RETR
// reader, and checks that the client gets exactly the wire form of the
// message: nothing lost to, or added by, dot-stuffing. One connection
// carries every message, so a terminator misread anywhere also breaks the
// next RETR.
func FuzzDotStuffRoundTrip(f *testing.F) {
	for _, s := range []string{
		"",
		".",
		"..",
		".\r\n",
		".\n.\n",
		"a\r\n.\r\nb",
		"Subject: x\n\n.leading dot\n..two\n.\nend",
		"no final newline",
		"ends with CR\r",
		"lone\rCR\r\r\n",
		"\r\n.\r\n",
		"\n\n\n",
		"\x00\xff.\n.\x00",
		strings.Repeat("x", 5000) + "\n." + strings.Repeat(".", 5000) + "\r\n.",
		strings.Repeat(".\r\n", 100),
	} {
		f.Add([]byte(s), uint16(len(s)/2))
	}
	msgs := make(chan []byte)
	addr := startFake(f, func(fc *fakeConn) {
		fc.send("+OK fuzz ready")
		bw := bufio.NewWriterSize(fc.c, 4096)
		for {
			l, ok := fc.line()
			if !ok {
				return
			}
			if l != "RETR 1" {
				fc.send("-ERR unexpected " + l)
				continue
			}
			m := <-msgs
			split := int(m[0]) | int(m[1])<<8
			m = m[2:]
			split %= len(m) + 1
			bw.WriteString("+OK message follows\r\n")
			dw := wire.NewDotWriter(bw, 4096)
			dw.Write(m[:split])
			dw.Write(m[split:])
			dw.Close()
			dw.Flush()
			fc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if bw.Flush() != nil {
				return
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	c, err := pop3client.Dial(ctx, addr, &pop3client.Options{Logger: quiet()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { c.Close() })

	f.Fuzz(func(t *testing.T, m []byte, split uint16) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		go func() {
			select {
			case msgs <- append([]byte{byte(split), byte(split >> 8)}, m...):
			case <-ctx.Done():
			}
		}()
		r, err := c.Retr(ctx, 1)
		if err != nil {
			t.Fatalf("RETR: %v", err)
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading the message: %v", err)
		}
		r.Close()
		if want := testenv.WireForm(m); !bytes.Equal(got, want) {
			t.Fatalf("message %q (split at %d) came back as\n%q\nwant\n%q", m, split, got, want)
		}
	})
}
