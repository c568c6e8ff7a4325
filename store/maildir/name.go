package maildir

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/postie-mail/postie/internal/maildirname"
)

// msgName is what a message's file name says about it. A Maildir name is
// <unique>[,KEY=value...][:2,FLAGS]; only the part before ':' (the base)
// identifies the message, whatever directory and flags it has.
type msgName struct {
	base   string // the name without its ":info" part
	unique string // base without its ",KEY=value" fields
	ts     uint64 // the leading decimal timestamp, 0 if none
	fsize  int64  // S= (file size), -1 if absent
	wsize  int64  // W= (wire size), -1 if absent
	uidl   string // U= (a UIDL given at delivery, see uidl.go), "" if absent
	dots   string // D= (lines beginning with '.', see parseDots), "" if absent
}

// uid returns the message's UIDL: the one its name records, else its
// unique part's.
func (n *msgName) uid() string {
	if n.uidl != "" {
		return n.uidl
	}
	return uidOf(n.unique)
}

// parseName parses the name of a file in new/ or cur/. It reports false for
// names that cannot be a message: control characters or invalid UTF-8 in
// the name, or an empty unique part. Dot-files are the caller's business.
func parseName(name string) (msgName, bool) {
	if !utf8.ValidString(name) {
		return msgName{}, false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return msgName{}, false
		}
	}
	n := msgName{fsize: -1, wsize: -1}
	n.base, _, _ = strings.Cut(name, ":")
	first, rest, _ := strings.Cut(n.base, ",")
	if first == "" {
		return msgName{}, false
	}
	n.unique = first
	var kept []string // components after the first that are not fields
	for rest != "" {
		var comp string
		comp, rest, _ = strings.Cut(rest, ",")
		key, val, ok := field(comp)
		if !ok {
			kept = append(kept, comp)
			continue
		}
		switch key {
		case "S":
			n.fsize = maildirname.ParseNumber(val)
		case "W":
			n.wsize = maildirname.ParseNumber(val)
		case "U":
			n.uidl = parseUIDLField(val)
		case "D":
			n.dots = val
		}
	}
	if len(kept) > 0 {
		n.unique = first + "," + strings.Join(kept, ",")
	}
	n.ts = leadingNumber(first)
	return n, true
}

// withSizes returns the file name name with its ,S= and ,W= fields set to
// fsize and wsize (added at the end of the base name where missing), its
// ,D= field removed (it was counted for the content that changed), its
// other fields and ":info" part unchanged.
func withSizes(name string, fsize, wsize int64) string {
	base, info, hasInfo := strings.Cut(name, ":")
	comps := strings.Split(base, ",")
	var haveS, haveW bool
	kept := comps[:1]
	for _, comp := range comps[1:] {
		switch key, _, ok := field(comp); {
		case ok && key == "S":
			comp, haveS = "S="+strconv.FormatInt(fsize, 10), true
		case ok && key == "W":
			comp, haveW = "W="+strconv.FormatInt(wsize, 10), true
		case ok && key == "D":
			continue
		}
		kept = append(kept, comp)
	}
	comps = kept
	if !haveS {
		comps = append(comps, "S="+strconv.FormatInt(fsize, 10))
	}
	if !haveW {
		comps = append(comps, "W="+strconv.FormatInt(wsize, 10))
	}
	name = strings.Join(comps, ",")
	if hasInfo {
		name += ":" + info
	}
	return name
}

// field splits a ",KEY=value" component (KEY: ASCII letters, as Dovecot
// writes S=, W= and friends).
func field(comp string) (key, val string, ok bool) {
	key, val, ok = strings.Cut(comp, "=")
	if !ok || key == "" {
		return "", "", false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i] | 0x20; c < 'a' || c > 'z' {
			return "", "", false
		}
	}
	return key, val, true
}

// leadingNumber returns the value of the decimal digits s begins with (the
// delivery time of a Maildir name), saturating; 0 when there are none.
func leadingNumber(s string) uint64 {
	var n uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			break
		}
		d := uint64(c - '0')
		if n > (math.MaxUint64-d)/10 {
			return math.MaxUint64
		}
		n = n*10 + d
	}
	return n
}

// uidOf returns the UIDL of a message with the given unique name: the name
// itself when it is a valid unique-id listing (RFC 1939 §7: 1 to 70
// characters in 0x21–0x7E), otherwise "X" and 40 hex digits of its SHA-256.
func uidOf(unique string) string {
	if validUID(unique) {
		return unique
	}
	sum := sha256.Sum256([]byte(unique))
	return "X" + hex.EncodeToString(sum[:20])
}

func validUID(s string) bool {
	if len(s) < 1 || len(s) > 70 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}
