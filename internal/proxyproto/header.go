// Package proxyproto reads the PROXY protocol header that a TCP load
// balancer (HAProxy's send-proxy and send-proxy-v2) writes before the
// client's bytes, so that a server behind it sees the client's address
// instead of the balancer's.
//
// It owns two things: the codec of both versions of the header (Parse,
// Header.AppendV1, Header.AppendV2; standard library only, fuzzed), and
// the policy of a listener (Listener): a header is required from the
// trusted proxies and refused from everyone else, and a connection whose
// header is missing, malformed, too long or too slow is closed, logged and
// counted before the server sees it. The connections a Listener returns
// answer RemoteAddr with the client's address from the header, so
// everything that reads the remote address (access policy, per-address
// limits, logs, trace header fields) sees the client.
//
// The format is HAProxy's "The PROXY protocol" (versions 1 and 2,
// doc/proxy-protocol.txt of HAProxy).
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"net/netip"
	"strconv"
)

// Command is what the proxy says of the connection.
type Command uint8

const (
	// CmdProxy: the connection was relayed for a client; the header
	// carries the client's address when its family is known.
	CmdProxy Command = iota
	// CmdLocal (version 2 only): the proxy opened the connection itself,
	// e.g. for a health check; the addresses are the connection's own.
	CmdLocal
)

// Header is a parsed PROXY protocol header.
type Header struct {
	Version int // 1 or 2
	Command Command
	// Source is the client's address and Dest the address it connected
	// to. Both are invalid (zero) for CmdLocal, for version 1 "UNKNOWN",
	// and for version 2 families other than IPv4 and IPv6 (AF_UNSPEC,
	// AF_UNIX): the receiver then uses the connection's own addresses.
	Source, Dest netip.AddrPort
}

// HasAddrs reports whether h carries the client's address.
func (h Header) HasAddrs() bool {
	return h.Command == CmdProxy && h.Source.IsValid()
}

// Sizes and signatures (proxy-protocol.txt §2.1, §2.2).
const (
	// MaxV1Len is the longest version 1 header, CRLF included.
	MaxV1Len = 107
	// MaxV2Len is the longest version 2 header Parse accepts, its 16
	// fixed bytes included. The protocol allows 65,551; the address
	// block is at most 216 bytes and the rest are TLVs (TLS details, a
	// unique id, cloud endpoint ids), which fit well within it.
	MaxV2Len = 2048
	// MaxLen is the most bytes a header of either version can take.
	MaxLen = MaxV2Len

	v2FixedLen = 16
)

var (
	sigV1 = []byte("PROXY ")
	sigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// ErrIncomplete is returned by Parse when its input is a proper prefix of
// a header that may still be valid: read more and parse again.
var ErrIncomplete = errors.New("proxyproto: incomplete header")

// ErrNoHeader is returned by Parse when the input does not start with the
// signature of either version: the peer sent no PROXY header.
var ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")

// Error is a malformed header: the signature was there, what follows is
// not a header this package accepts.
type Error struct {
	Version int
	Reason  string
}

func (e *Error) Error() string {
	return fmt.Sprintf("proxyproto: malformed version %d header: %s", e.Version, e.Reason)
}

func bad(version int, format string, args ...any) error {
	return &Error{Version: version, Reason: fmt.Sprintf(format, args...)}
}

// Parse reads one header from the start of b and returns it with its
// length in bytes; the bytes after it are the client's. It returns
// ErrIncomplete when b is too short to decide, ErrNoHeader when b does not
// start with a header, and an *Error when the header is malformed. Parse
// never needs more than MaxLen bytes to decide.
func Parse(b []byte) (Header, int, error) {
	switch {
	case len(b) == 0:
		return Header{}, 0, ErrIncomplete
	case b[0] == sigV1[0]:
		if !bytes.HasPrefix(b, sigV1[:min(len(b), len(sigV1))]) {
			return Header{}, 0, ErrNoHeader
		}
		if len(b) < len(sigV1) {
			return Header{}, 0, ErrIncomplete
		}
		return parseV1(b)
	case b[0] == sigV2[0]:
		if !bytes.HasPrefix(b, sigV2[:min(len(b), len(sigV2))]) {
			return Header{}, 0, ErrNoHeader
		}
		if len(b) < v2FixedLen {
			return Header{}, 0, ErrIncomplete
		}
		return parseV2(b)
	}
	return Header{}, 0, ErrNoHeader
}

// HasSignature reports whether b starts with a PROXY header's signature
// (complete reports that b was long enough to decide): a client that
// starts so is sending a header.
func HasSignature(b []byte) (yes, complete bool) {
	for _, sig := range [][]byte{sigV1, sigV2} {
		n := min(len(b), len(sig))
		if bytes.Equal(b[:n], sig[:n]) {
			if n == len(sig) {
				return true, true
			}
			return false, false
		}
	}
	return false, true
}

// parseV1 parses the human-readable form (§2.1):
//
//	"PROXY" SP ( "TCP4" | "TCP6" ) SP src SP dst SP sport SP dport CRLF
//	"PROXY" SP "UNKNOWN" [ anything but CR LF ] CRLF
func parseV1(b []byte) (Header, int, error) {
	end := bytes.IndexByte(b[:min(len(b), MaxV1Len)], '\n')
	if end < 0 {
		if len(b) >= MaxV1Len {
			return Header{}, 0, bad(1, "no line end within %d bytes", MaxV1Len)
		}
		if i := bytes.IndexByte(b, '\r'); i >= 0 && i+1 < len(b) {
			return Header{}, 0, bad(1, "CR not followed by LF")
		}
		return Header{}, 0, ErrIncomplete
	}
	if end == 0 || b[end-1] != '\r' {
		return Header{}, 0, bad(1, "line does not end in CRLF")
	}
	if bytes.IndexByte(b[:end-1], '\r') >= 0 {
		return Header{}, 0, bad(1, "CR not followed by LF")
	}
	line := string(b[len(sigV1) : end-1])
	n := end + 1
	h := Header{Version: 1, Command: CmdProxy}
	if line == "UNKNOWN" || (len(line) > len("UNKNOWN") && line[:len("UNKNOWN ")] == "UNKNOWN ") {
		if i := indexCtl(line); i >= 0 {
			return Header{}, 0, bad(1, "control character in UNKNOWN line")
		}
		return h, n, nil
	}
	f := splitSpaces(line)
	if len(f) != 5 {
		return Header{}, 0, bad(1, "want protocol, two addresses and two ports separated by single spaces")
	}
	var want6 bool
	switch f[0] {
	case "TCP4":
	case "TCP6":
		want6 = true
	default:
		return Header{}, 0, bad(1, "unknown protocol %q", clip(f[0]))
	}
	var addrs [2]netip.Addr
	for i := range addrs {
		a, err := netip.ParseAddr(f[1+i])
		if err != nil || a.Zone() != "" || a.Is6() != want6 {
			return Header{}, 0, bad(1, "%q is not an %s address", clip(f[1+i]), f[0])
		}
		addrs[i] = a
	}
	var ports [2]uint16
	for i := range ports {
		p, ok := parsePort(f[3+i])
		if !ok {
			return Header{}, 0, bad(1, "%q is not a port", clip(f[3+i]))
		}
		ports[i] = p
	}
	h.Source = netip.AddrPortFrom(addrs[0], ports[0])
	h.Dest = netip.AddrPortFrom(addrs[1], ports[1])
	return h, n, nil
}

// splitSpaces splits at single spaces; an empty field (two spaces, or one
// at either end) makes the result invalid (nil).
func splitSpaces(s string) []string {
	var out []string
	for {
		i := indexByte(s, ' ')
		if i < 0 {
			break
		}
		if i == 0 {
			return nil
		}
		out = append(out, s[:i])
		s = s[i+1:]
	}
	if s == "" {
		return nil
	}
	return append(out, s)
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func indexCtl(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return i
		}
	}
	return -1
}

// parsePort takes a decimal port of 0 to 65535 without sign or leading
// zeros (§2.1: "[...] digits [...] without any leading zero").
func parsePort(s string) (uint16, bool) {
	if s == "" || len(s) > 5 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > 65535 {
		return 0, false
	}
	return uint16(n), true
}

// clip shortens a field of a malformed header for the error message (the
// log line); %q then escapes what is not printable.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// Version 2 families and transport protocols (§2.2, the 14th byte).
const (
	famUnspec = 0x0
	famInet   = 0x1
	famInet6  = 0x2
	famUnix   = 0x3

	protoUnspec = 0x0
	protoStream = 0x1
	protoDgram  = 0x2
)

// TLV types of §2.2.1 that Parse looks at.
const (
	tlvCRC32C = 0x03
)

// parseV2 parses the binary form (§2.2): the 12-byte signature, version
// and command, family and protocol, the length of the rest, then the
// addresses and TLVs.
func parseV2(b []byte) (Header, int, error) {
	verCmd, famProto := b[12], b[13]
	length := int(binary.BigEndian.Uint16(b[14:16]))
	if verCmd>>4 != 2 {
		return Header{}, 0, bad(2, "version %d, want 2", verCmd>>4)
	}
	var h Header
	h.Version = 2
	switch verCmd & 0xf {
	case 0x0:
		h.Command = CmdLocal
	case 0x1:
		h.Command = CmdProxy
	default:
		return Header{}, 0, bad(2, "unknown command %#x", verCmd&0xf)
	}
	total := v2FixedLen + length
	if total > MaxV2Len {
		return Header{}, 0, bad(2, "%d bytes long, more than the %d accepted", total, MaxV2Len)
	}
	if len(b) < total {
		return Header{}, 0, ErrIncomplete
	}
	fam, proto := famProto>>4, famProto&0xf
	var addrLen int
	switch fam {
	case famUnspec:
	case famInet:
		addrLen = 12
	case famInet6:
		addrLen = 36
	case famUnix:
		addrLen = 216
	default:
		return Header{}, 0, bad(2, "unknown address family %#x", fam)
	}
	switch proto {
	case protoUnspec, protoStream:
	case protoDgram:
		if h.Command == CmdProxy && fam != famUnspec {
			return Header{}, 0, bad(2, "a datagram connection on a stream listener")
		}
	default:
		return Header{}, 0, bad(2, "unknown transport protocol %#x", proto)
	}
	if length < addrLen {
		return Header{}, 0, bad(2, "%d bytes of addresses, family %#x needs %d", length, fam, addrLen)
	}
	body := b[v2FixedLen:total]
	if err := checkTLVs(b[:total], body[addrLen:]); err != nil {
		return Header{}, 0, err
	}
	// LOCAL: the addresses are to be ignored (§2.2). A relayed
	// connection of an unknown family or protocol: the receiver uses the
	// connection's own addresses.
	if h.Command == CmdLocal || proto == protoUnspec {
		return h, total, nil
	}
	switch fam {
	case famInet:
		h.Source = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[0:4])), binary.BigEndian.Uint16(body[8:10]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom4([4]byte(body[4:8])), binary.BigEndian.Uint16(body[10:12]))
	case famInet6:
		h.Source = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[0:16])), binary.BigEndian.Uint16(body[32:34]))
		h.Dest = netip.AddrPortFrom(netip.AddrFrom16([16]byte(body[16:32])), binary.BigEndian.Uint16(body[34:36]))
	}
	return h, total, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// checkTLVs checks that tlvs is a sequence of whole type-length-value
// entries (§2.2.1) and, when one is a CRC32C, that it matches the header
// (§2.2.5: computed over the whole header with its own value zeroed).
func checkTLVs(header, tlvs []byte) error {
	for off := 0; off < len(tlvs); {
		if len(tlvs)-off < 3 {
			return bad(2, "truncated TLV at byte %d", len(header)-len(tlvs)+off)
		}
		typ, n := tlvs[off], int(binary.BigEndian.Uint16(tlvs[off+1:off+3]))
		start := off + 3
		if len(tlvs)-start < n {
			return bad(2, "TLV %#x of %d bytes overruns the header", typ, n)
		}
		if typ == tlvCRC32C {
			if n != 4 {
				return bad(2, "CRC32C TLV of %d bytes, want 4", n)
			}
			want := binary.BigEndian.Uint32(tlvs[start : start+4])
			at := len(header) - len(tlvs) + start
			c := crc32.Update(0, castagnoli, header[:at])
			c = crc32.Update(c, castagnoli, []byte{0, 0, 0, 0})
			c = crc32.Update(c, castagnoli, header[at+4:])
			if c != want {
				return bad(2, "CRC32C mismatch")
			}
		}
		off = start + n
	}
	return nil
}

// AppendV1 appends h in the version 1 form: "PROXY TCP4 ..." or "PROXY
// TCP6 ..." with addresses, "PROXY UNKNOWN" without (version 1 has no
// LOCAL command).
func (h Header) AppendV1(b []byte) []byte {
	b = append(b, sigV1...)
	if !h.HasAddrs() {
		return append(b, "UNKNOWN\r\n"...)
	}
	src, dst := h.Source.Addr(), h.Dest.Addr()
	if src.Is4() && dst.Is4() {
		b = append(b, "TCP4 "...)
	} else {
		src, dst = as16(src), as16(dst)
		b = append(b, "TCP6 "...)
	}
	b = src.AppendTo(b)
	b = append(b, ' ')
	b = dst.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Source.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(h.Dest.Port()), 10)
	return append(b, "\r\n"...)
}

func as16(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }

// AppendV2 appends h in the version 2 form, without TLVs: LOCAL with no
// addresses, PROXY over TCP with IPv4 addresses (both IPv4) or IPv6
// ones, or PROXY with AF_UNSPEC when h has no addresses.
func (h Header) AppendV2(b []byte) []byte {
	b = append(b, sigV2...)
	if h.Command == CmdLocal {
		return append(b, 0x20, 0x00, 0, 0)
	}
	if !h.Source.IsValid() {
		return append(b, 0x21, 0x00, 0, 0)
	}
	src, dst := h.Source.Addr(), h.Dest.Addr()
	if src.Is4() && dst.Is4() {
		b = append(b, 0x21, famInet<<4|protoStream, 0, 12)
		b = append(b, src.AsSlice()...)
		b = append(b, dst.AsSlice()...)
	} else {
		b = append(b, 0x21, famInet6<<4|protoStream, 0, 36)
		s, d := src.As16(), dst.As16()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, h.Source.Port())
	return binary.BigEndian.AppendUint16(b, h.Dest.Port())
}
