package proxyproto

import (
	"bytes"
	"errors"
	"testing"
	"testing/iotest"
)

// FuzzParse: Parse never panics, decides within MaxLen bytes, is
// consistent on prefixes, reads what it parsed back from its own encoding,
// and readHeader fed a byte at a time agrees with it.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 10s ./internal/proxyproto/
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\nUSER a\r\n",
		"PROXY TCP6 2001:db8::10 2001:db8::1 40000 995\r\n",
		"PROXY UNKNOWN\r\n",
		"PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n",
		"USER alice\r\n",
		string(v2(0x21, 0x11, inet4)) + "\x16\x03\x01",
		string(v2(0x21, 0x21, inet6)),
		string(v2(0x20, 0x00)),
		string(v2(0x21, 0x31, make([]byte, 216))),
		string(v2(0x21, 0x11, inet4, hex("05000461626364"))),
		string(withCRC(v2(0x21, 0x11, inet4, hex("0300040000000005000178")))),
		"\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := Parse(b)
		var perr *Error
		switch {
		case errors.Is(err, ErrIncomplete):
			if len(b) >= MaxLen {
				t.Fatalf("undecided after %d bytes", len(b))
			}
		case errors.Is(err, ErrNoHeader), errors.As(err, &perr):
		case err != nil:
			t.Fatalf("unexpected error type %T: %v", err, err)
		default:
			if n <= 0 || n > len(b) || n > MaxLen {
				t.Fatalf("length %d of %d bytes", n, len(b))
			}
			if h.Version != 1 && h.Version != 2 {
				t.Fatalf("version %d", h.Version)
			}
			if h2, n2, err := Parse(b[:n]); err != nil || h2 != h || n2 != n {
				t.Fatalf("the header alone: %+v %d %v, want %+v %d", h2, n2, err, h, n)
			}
			for _, i := range []int{0, n / 2, n - 1} {
				if _, _, err := Parse(b[:i]); !errors.Is(err, ErrIncomplete) {
					t.Fatalf("prefix of %d bytes of a %d-byte header: %v", i, n, err)
				}
			}
			var enc []byte
			if h.Version == 1 {
				enc = h.AppendV1(nil)
			} else {
				enc = h.AppendV2(nil)
			}
			if h3, n3, err := Parse(enc); err != nil || h3 != h || n3 != len(enc) {
				t.Fatalf("re-encoded %q: %+v %v, want %+v", enc, h3, err, h)
			}
		}

		rh, rest, rerr := readHeader(iotest.OneByteReader(bytes.NewReader(b)))
		switch {
		case err == nil:
			if rerr != nil || rh != h || len(rest) != 0 {
				t.Fatalf("readHeader: %+v %q %v, want %+v", rh, rest, rerr, h)
			}
		case errors.Is(err, ErrNoHeader):
			if !errors.Is(rerr, ErrNoHeader) {
				t.Fatalf("readHeader: %v, want ErrNoHeader", rerr)
			}
		case len(b) == 0:
			if !errors.Is(rerr, errClosedEarly) {
				t.Fatalf("readHeader of nothing: %v", rerr)
			}
		default: // malformed, or cut short
			if !errors.As(rerr, &perr) {
				t.Fatalf("readHeader: %v, want a malformed-header error", rerr)
			}
		}
	})
}
