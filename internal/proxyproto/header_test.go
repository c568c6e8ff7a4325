package proxyproto

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
	"net/netip"
	"strings"
	"testing"
)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// v2 builds a version 2 header from its parts: version/command byte,
// family/protocol byte, and the body (addresses and TLVs).
func v2(verCmd, famProto byte, body ...[]byte) []byte {
	var rest []byte
	for _, b := range body {
		rest = append(rest, b...)
	}
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, verCmd, famProto)
	b = binary.BigEndian.AppendUint16(b, uint16(len(rest)))
	return append(b, rest...)
}

func hex(s string) []byte {
	var out []byte
	for i := 0; i+1 < len(s); i += 2 {
		var v byte
		for _, c := range s[i : i+2] {
			v <<= 4
			switch {
			case c >= '0' && c <= '9':
				v |= byte(c - '0')
			default:
				v |= byte(c-'a') + 10
			}
		}
		out = append(out, v)
	}
	return out
}

// inet4 is the IPv4 address block 192.0.2.10:40000 → 198.51.100.1:110.
var inet4 = hex("c000020a" + "c6336401" + "9c40" + "006e")

// inet6 is 2001:db8::10:40000 → 2001:db8::1:995.
var inet6 = hex("20010db8000000000000000000000010" + "20010db8000000000000000000000001" + "9c40" + "03e3")

func TestParseGood(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want Header
		n    int // bytes of header; the rest of in is the client's
	}{
		{"v1 tcp4", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\nUSER a\r\n",
			Header{Version: 1, Source: ap("192.0.2.10:40000"), Dest: ap("198.51.100.1:110")}, 46},
		{"v1 tcp6", "PROXY TCP6 2001:db8::10 2001:db8::1 40000 995\r\n",
			Header{Version: 1, Source: ap("[2001:db8::10]:40000"), Dest: ap("[2001:db8::1]:995")}, 47},
		{"v1 tcp6 mapped", "PROXY TCP6 ::ffff:192.0.2.10 ::1 1 0\r\n",
			Header{Version: 1, Source: ap("[::ffff:192.0.2.10]:1"), Dest: ap("[::1]:0")}, 38},
		{"v1 ports at the bounds", "PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n",
			Header{Version: 1, Source: ap("0.0.0.0:0"), Dest: ap("255.255.255.255:65535")}, 44},
		{"v1 unknown", "PROXY UNKNOWN\r\n+rest", Header{Version: 1}, 15},
		{"v1 unknown with addresses", "PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 65535 65535\r\n", Header{Version: 1}, 51},
		{"v1 longest", "PROXY UNKNOWN " + strings.Repeat("x", 91) + "\r\n", Header{Version: 1}, 107},
		{"v2 inet stream", string(v2(0x21, 0x11, inet4)) + "\x16\x03\x01",
			Header{Version: 2, Source: ap("192.0.2.10:40000"), Dest: ap("198.51.100.1:110")}, 28},
		{"v2 inet6 stream", string(v2(0x21, 0x21, inet6)),
			Header{Version: 2, Source: ap("[2001:db8::10]:40000"), Dest: ap("[2001:db8::1]:995")}, 52},
		{"v2 local", string(v2(0x20, 0x00)) + "+OK", Header{Version: 2, Command: CmdLocal}, 16},
		{"v2 local with addresses ignored", string(v2(0x20, 0x11, inet4)), Header{Version: 2, Command: CmdLocal}, 28},
		{"v2 proxy unspec", string(v2(0x21, 0x00)), Header{Version: 2}, 16},
		{"v2 proxy unix", string(v2(0x21, 0x31, make([]byte, 216))), Header{Version: 2}, 232},
		{"v2 proxy inet, protocol unspec", string(v2(0x21, 0x10, inet4)), Header{Version: 2}, 28},
		{"v2 with TLVs", string(v2(0x21, 0x11, inet4, hex("05000461626364"), hex("040000"))),
			Header{Version: 2, Source: ap("192.0.2.10:40000"), Dest: ap("198.51.100.1:110")}, 38},
		{"v2 with a good CRC32C", string(withCRC(v2(0x21, 0x11, inet4, hex("0300040000000005000178")))),
			Header{Version: 2, Source: ap("192.0.2.10:40000"), Dest: ap("198.51.100.1:110")}, 39},
	} {
		h, n, err := Parse([]byte(tc.in))
		if err != nil || h != tc.want || n != tc.n {
			t.Errorf("%s: Parse = %+v, %d, %v; want %+v, %d", tc.name, h, n, err, tc.want, tc.n)
		}
		// Every proper prefix asks for more.
		for i := range tc.n {
			if _, _, err := Parse([]byte(tc.in[:i])); !errors.Is(err, ErrIncomplete) {
				t.Errorf("%s: Parse of the first %d bytes: %v, want ErrIncomplete", tc.name, i, err)
				break
			}
		}
	}
}

// withCRC fills in the CRC32C TLV of a v2 header whose value is zero.
func withCRC(b []byte) []byte {
	i := strings.Index(string(b), "\x03\x00\x04\x00\x00\x00\x00")
	c := crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli))
	binary.BigEndian.PutUint32(b[i+3:], c)
	return b
}

func TestParseMalformed(t *testing.T) {
	long := "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110" + strings.Repeat(" ", 70)
	for _, tc := range []struct {
		name, in, reason string
	}{
		{"v1 LF only", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\n", "line does not end in CRLF"},
		{"v1 CR alone", "PROXY TCP4 192.0.2.10\r198.51.100.1 40000 110\r\n", "CR not followed by LF"},
		{"v1 no line end in 107 bytes", long, "no line end within 107 bytes"},
		{"v1 108 bytes", "PROXY UNKNOWN " + strings.Repeat("x", 92) + "\r\n", "no line end within 107 bytes"},
		{"v1 empty protocol", "PROXY \r\n", "want protocol, two addresses and two ports separated by single spaces"},
		{"v1 two spaces", "PROXY TCP4  192.0.2.10 198.51.100.1 40000 110\r\n", "want protocol, two addresses and two ports separated by single spaces"},
		{"v1 trailing space", "PROXY TCP4 192.0.2.10 198.51.100.1 40000 110 \r\n", "want protocol, two addresses and two ports separated by single spaces"},
		{"v1 missing port", "PROXY TCP4 192.0.2.10 198.51.100.1 40000\r\n", "want protocol, two addresses and two ports separated by single spaces"},
		{"v1 udp", "PROXY UDP4 192.0.2.10 198.51.100.1 40000 110\r\n", `unknown protocol "UDP4"`},
		{"v1 lower case", "PROXY tcp4 192.0.2.10 198.51.100.1 40000 110\r\n", `unknown protocol "tcp4"`},
		{"v1 v6 in tcp4", "PROXY TCP4 2001:db8::10 198.51.100.1 40000 110\r\n", `"2001:db8::10" is not an TCP4 address`},
		{"v1 v4 in tcp6", "PROXY TCP6 2001:db8::10 198.51.100.1 40000 110\r\n", `"198.51.100.1" is not an TCP6 address`},
		{"v1 zone", "PROXY TCP6 fe80::1%eth0 ::1 40000 110\r\n", `"fe80::1%eth0" is not an TCP6 address`},
		{"v1 host name", "PROXY TCP4 client.example 198.51.100.1 40000 110\r\n", `"client.example" is not an TCP4 address`},
		{"v1 leading zero address", "PROXY TCP4 192.0.2.010 198.51.100.1 40000 110\r\n", `"192.0.2.010" is not an TCP4 address`},
		{"v1 port 65536", "PROXY TCP4 192.0.2.10 198.51.100.1 65536 110\r\n", `"65536" is not a port`},
		{"v1 leading zero port", "PROXY TCP4 192.0.2.10 198.51.100.1 040000 110\r\n", `"040000" is not a port`},
		{"v1 signed port", "PROXY TCP4 192.0.2.10 198.51.100.1 +4000 110\r\n", `"+4000" is not a port`},
		{"v1 NUL in unknown", "PROXY UNKNOWN \x00\r\n", "control character in UNKNOWN line"},
		{"v2 version 1", string(v2(0x11, 0x11, inet4)), "version 1, want 2"},
		{"v2 version 3", string(v2(0x31, 0x11, inet4)), "version 3, want 2"},
		{"v2 command 2", string(v2(0x22, 0x11, inet4)), "unknown command 0x2"},
		{"v2 family 4", string(v2(0x21, 0x41, inet4)), "unknown address family 0x4"},
		{"v2 protocol 3", string(v2(0x21, 0x13, inet4)), "unknown transport protocol 0x3"},
		{"v2 datagram", string(v2(0x21, 0x12, inet4)), "a datagram connection on a stream listener"},
		{"v2 short inet", string(v2(0x21, 0x11, inet4[:11])), "11 bytes of addresses, family 0x1 needs 12"},
		{"v2 short inet6", string(v2(0x21, 0x21, inet4)), "12 bytes of addresses, family 0x2 needs 36"},
		{"v2 truncated TLV", string(v2(0x21, 0x11, inet4, hex("0500"))), "truncated TLV at byte 28"},
		{"v2 TLV overrun", string(v2(0x21, 0x11, inet4, hex("050005616263"))), "TLV 0x5 of 5 bytes overruns the header"},
		{"v2 bad CRC32C", string(v2(0x21, 0x11, inet4, hex("0300041234567805000178"))), "CRC32C mismatch"},
		{"v2 CRC32C of 2 bytes", string(v2(0x21, 0x11, inet4, hex("0300021234"))), "CRC32C TLV of 2 bytes, want 4"},
		// Oversized: decided from the 16 fixed bytes, without waiting
		// for the 65,535 announced.
		{"v2 oversized", "\r\n\r\n\x00\r\nQUIT\n\x21\x11\xff\xff", "65551 bytes long, more than the 2048 accepted"},
		{"v2 one byte over", string(v2(0x21, 0x11, inet4, make([]byte, MaxV2Len-16-12+1))), "2049 bytes long, more than the 2048 accepted"},
	} {
		_, _, err := Parse([]byte(tc.in))
		var e *Error
		if !errors.As(err, &e) || e.Reason != tc.reason {
			t.Errorf("%s: Parse: %v, want a malformed-header error %q", tc.name, err, tc.reason)
		}
	}
	// The largest v2 header accepted.
	in := v2(0x21, 0x11, inet4, hex("0407e1"), make([]byte, MaxV2Len-16-12-3))
	if _, n, err := Parse(in); err != nil || n != MaxV2Len {
		t.Errorf("largest v2 header: %d, %v", n, err)
	}
}

func TestParseNoHeader(t *testing.T) {
	for _, in := range []string{
		"USER alice\r\n",
		"LHLO mta.example\r\n",
		"\x16\x03\x01\x02\x00",   // a TLS ClientHello
		"PROXX TCP4\r\n",         // not the signature
		"proxy TCP4 1.2.3.4\r\n", // the signature is upper case
		"\r\n\r\n\x00\r\nQUIT\r", // the last byte of the v2 signature differs
		"\r\nUSER a\r\n",
		"QUIT\r\n",
	} {
		if _, _, err := Parse([]byte(in)); !errors.Is(err, ErrNoHeader) {
			t.Errorf("Parse(%q): %v, want ErrNoHeader", in, err)
		}
		if yes, complete := HasSignature([]byte(in)); yes || !complete {
			t.Errorf("HasSignature(%q) = %v, %v; want false, true", in, yes, complete)
		}
	}
	for _, in := range []string{"", "P", "PROXY", "\r\n", "\r\n\r\n\x00\r\nQUIT"} {
		if yes, complete := HasSignature([]byte(in)); yes || complete {
			t.Errorf("HasSignature(%q) = %v, %v; want undecided", in, yes, complete)
		}
	}
	for _, in := range []string{"PROXY ", "PROXY garbage", "\r\n\r\n\x00\r\nQUIT\n", "\r\n\r\n\x00\r\nQUIT\n\xff"} {
		if yes, complete := HasSignature([]byte(in)); !yes || !complete {
			t.Errorf("HasSignature(%q) = %v, %v; want a signature", in, yes, complete)
		}
	}
}

func TestAppend(t *testing.T) {
	for _, tc := range []struct {
		h      Header
		v1, v2 string
	}{
		{Header{Source: ap("192.0.2.10:40000"), Dest: ap("198.51.100.1:110")},
			"PROXY TCP4 192.0.2.10 198.51.100.1 40000 110\r\n", string(v2(0x21, 0x11, inet4))},
		{Header{Source: ap("[2001:db8::10]:40000"), Dest: ap("[2001:db8::1]:995")},
			"PROXY TCP6 2001:db8::10 2001:db8::1 40000 995\r\n", string(v2(0x21, 0x21, inet6))},
		{Header{Source: ap("192.0.2.10:1"), Dest: ap("[::1]:2")},
			"PROXY TCP6 ::ffff:192.0.2.10 ::1 1 2\r\n", string(v2(0x21, 0x21, hex("00000000000000000000ffffc000020a"+"00000000000000000000000000000001"+"0001"+"0002")))},
		{Header{Command: CmdLocal}, "PROXY UNKNOWN\r\n", string(v2(0x20, 0x00))},
		{Header{}, "PROXY UNKNOWN\r\n", string(v2(0x21, 0x00))},
	} {
		if got := string(tc.h.AppendV1(nil)); got != tc.v1 {
			t.Errorf("AppendV1(%+v) = %q, want %q", tc.h, got, tc.v1)
		}
		if got := string(tc.h.AppendV2(nil)); got != tc.v2 {
			t.Errorf("AppendV2(%+v) = %q, want %q", tc.h, got, tc.v2)
		}
	}
}
