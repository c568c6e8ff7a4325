package proxyproto

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"v1", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\n"},
		{"v2", string(v2(0x21, 0x11, inet4))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			in := []byte(bc.in)
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Parse(in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAccept is one connection's accept, first byte and close over
// loopback: a bare listener, a Listener's direct client, and a trusted
// proxy's connection with a v2 header.
//
//	go test -run '^$' -bench Accept -count 6 ./internal/proxyproto/
func BenchmarkAccept(b *testing.B) {
	header := string(v2(0x21, 0x11, inet4))
	for _, bc := range []struct {
		name    string
		trusted []netip.Prefix
		write   string
		wrap    bool
	}{
		{"bare", nil, "+", false},
		{"direct", nil, "+", true},
		{"header-v2", []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, header + "+", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var ln net.Listener = raw
			if bc.wrap {
				ln = NewListener(raw, Options{Trusted: bc.trusted, Timeout: time.Minute})
			}
			defer ln.Close()
			buf := make([]byte, 1)
			for b.Loop() {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				io.WriteString(c, bc.write)
				a, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(a, buf); err != nil {
					b.Fatal(err)
				}
				a.Close()
				c.Close()
			}
		})
	}
}
