package maildir

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParseName holds the Maildir file-name parser to what the store
// relies on: it never panics; a name it accepts has a non-empty unique part
// and a valid UIDL (RFC 1939 §7: 1–70 octets in 0x21–0x7E); the ":info"
// part (flags, the new/ → cur/ move) never changes the identity or the
// sizes; and the sizes postie writes into a name (",S=", ",W=") read back
// exactly, whatever unique part precedes them.
func FuzzParseName(f *testing.F) {
	for _, s := range []string{
		"1733312345.M123456P4242Q1R0a1b2c3d.host,S=1234,W=1260",
		"1733312345.M123456P4242Q1R0a1b2c3d.host,S=1234,W=1260:2,S",
		"1733312345.M123456P4242Q1R0a1b2c3d.host,S=1234,W=1260:2,FRS",
		"1234567890.12345_1.mail.example.org",          // courier
		"1234567890.V803I1a2bM123456.host:2,",          // dovecot
		"1234567890.P1234Q5.host,S=12,W=13,X=abc:2,ab", // unknown field
		"name,with,commas,S=5",
		",S=5",
		"",
		":2,S",
		"a:b:c",
		"x,S=-1,W=99999999999999999999",
		"x,=,S=,W=12a",
		"\x00bad",
		"\xff\xfe",
		"é.host,S=1",
		strings.Repeat("9", 40) + ".host",
		strings.Repeat("a", 71),
		"has space.host",
		".hidden",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		n, ok := parseName(name)
		if !ok {
			return
		}
		if n.unique == "" {
			t.Fatalf("parseName(%q): empty unique part", name)
		}
		if base, _, _ := strings.Cut(name, ":"); n.base != base {
			t.Fatalf("parseName(%q).base = %q, want %q", name, n.base, base)
		}
		if first, _, _ := strings.Cut(n.base, ","); !strings.HasPrefix(n.unique, first) {
			t.Fatalf("parseName(%q): unique %q does not start the name", name, n.unique)
		}
		if n.fsize < -1 || n.wsize < -1 {
			t.Fatalf("parseName(%q): sizes %d, %d", name, n.fsize, n.wsize)
		}
		if uid := uidOf(n.unique); !validUID(uid) {
			t.Fatalf("uidOf(%q) = %q: not a valid UIDL", n.unique, uid)
		} else if uidOf(n.unique) != uid {
			t.Fatalf("uidOf(%q) is not stable", n.unique)
		}
		// Flags never change identity or sizes.
		for _, info := range []string{":2,", ":2,S", ":2,DFRST"} {
			m, ok := parseName(n.base + info)
			if !ok || m.unique != n.unique || m.fsize != n.fsize || m.wsize != n.wsize || m.base != n.base {
				t.Fatalf("parseName(%q) = %+v, %v; want the identity of %q (%+v)", n.base+info, m, ok, name, n)
			}
		}
		// The sizes a delivery appends read back exactly.
		const fs, ws = 123456789, 123456999
		m, ok := parseName(fmt.Sprintf("%s,S=%d,W=%d:2,S", n.unique, fs, ws))
		if !ok || m.fsize != fs || m.wsize != ws {
			t.Fatalf("sizes appended to %q read back as %+v, %v", n.unique, m, ok)
		}
		if m.unique != n.unique {
			t.Fatalf("unique %q became %q once sizes were appended", n.unique, m.unique)
		}
	})
}
