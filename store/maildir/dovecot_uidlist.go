package maildir

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/postie-mail/postie/internal/maildirname"
)

// Dovecot's dovecot-uidlist, read (never written) so that postie answers
// the UIDLs Dovecot's POP3 server gave (see "Taking over from Dovecot" in
// the package doc).
//
// Version 3 of the file, as Dovecot 2.x writes it in the Maildir:
//
//	3 V<uidvalidity> N<next uid> [<key><value> ...]
//	<uid> [<key><value> ...] :<file name>
//
// one record per line, in ascending UID order, each key one letter. The
// record keys postie uses are W (the message's size with CRLF line ends,
// the size Dovecot's LIST gave), P (the UIDL pop3_save_uidl saved) and G
// (the message's GUID). The file name is the message's name when Dovecot
// last saw it, without its ":2,FLAGS" part.
const (
	uidlistName = "dovecot-uidlist"
	// maxUidlist bounds the file: about 300,000 records of the longest
	// usual form, 600,000 of the common one.
	maxUidlist = 64 << 20
	// maxUidlistLine bounds one record.
	maxUidlistLine = 4096
)

// errUidlist reports a dovecot-uidlist that postie does not understand.
var errUidlist = errors.New("maildir: dovecot-uidlist")

// dovecotRecord is one message listed in a dovecot-uidlist.
type dovecotRecord struct {
	uid   uint32
	base  string // the file name as listed, without ":info"
	vsize int64  // W, -1 when absent
	pop3  string // P, "" when absent
	guid  string // G, "" when absent
}

// dovecotUidlist is a parsed dovecot-uidlist.
type dovecotUidlist struct {
	validity uint32
	// byUnique finds a record by the unique part of its file name (the
	// name without ",KEY=value" fields and ":info", as msgName.unique), so
	// that a message renamed with other sizes or flags is still found.
	byUnique map[string]*dovecotRecord
}

// parseUidlist parses a version-3 dovecot-uidlist. It is strict: any line
// it does not understand, a UID out of order or a file name listed twice
// makes the whole file unusable (an error wrapping errUidlist that names
// the line), since a record read wrong would give a message a UIDL Dovecot
// never gave it.
func parseUidlist(data []byte) (*dovecotUidlist, error) {
	if len(data) > maxUidlist {
		return nil, fmt.Errorf("%w: larger than %d octets", errUidlist, maxUidlist)
	}
	text := string(data)
	header, text, ok := strings.Cut(text, "\n")
	if !ok {
		return nil, fmt.Errorf("%w: no complete header line", errUidlist)
	}
	l := &dovecotUidlist{byUnique: map[string]*dovecotRecord{}}
	fields := strings.Split(header, " ")
	if fields[0] != "3" {
		return nil, fmt.Errorf("%w: version %.10q is not supported (only 3, Dovecot 1.1 and later)", errUidlist, fields[0])
	}
	for _, f := range fields[1:] {
		if len(f) < 2 || !isUpperAlpha(f[0]) || !printableField(f[1:]) {
			return nil, fmt.Errorf("%w: line 1: bad header field", errUidlist)
		}
		if f[0] == 'V' {
			v, err := strconv.ParseUint(f[1:], 10, 32)
			if err != nil || v == 0 {
				return nil, fmt.Errorf("%w: line 1: bad UIDVALIDITY", errUidlist)
			}
			l.validity = uint32(v)
		}
	}
	if l.validity == 0 {
		return nil, fmt.Errorf("%w: line 1: no UIDVALIDITY", errUidlist)
	}
	var last uint32
	for n := 2; text != ""; n++ {
		line, rest, ok := strings.Cut(text, "\n")
		if !ok {
			// Dovecot ends every record with a line end: a last line
			// without one is a write still going on, or damage.
			return nil, fmt.Errorf("%w: line %d: incomplete", errUidlist, n)
		}
		text = rest
		r, err := parseUidlistRecord(line)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", errUidlist, n, err)
		}
		if r.uid <= last {
			return nil, fmt.Errorf("%w: line %d: UID %d not above the one before", errUidlist, n, r.uid)
		}
		last = r.uid
		nm, ok := parseName(r.base)
		if !ok {
			return nil, fmt.Errorf("%w: line %d: bad file name", errUidlist, n)
		}
		if _, dup := l.byUnique[nm.unique]; dup {
			return nil, fmt.Errorf("%w: line %d: file name listed twice", errUidlist, n)
		}
		l.byUnique[nm.unique] = r
	}
	return l, nil
}

// parseUidlistRecord parses "<uid> [<key><value> ...] :<file name>".
func parseUidlistRecord(line string) (*dovecotRecord, error) {
	if len(line) > maxUidlistLine {
		return nil, errors.New("too long")
	}
	head, name, ok := strings.Cut(line, " :")
	if !ok {
		return nil, errors.New("no file name")
	}
	// The name ends the line; Dovecot lists it without ":info", but a
	// name that has one is cut there as Maildir names are.
	name, _, _ = strings.Cut(name, ":")
	if name == "" || strings.ContainsAny(name, "/\x00") || name[0] == '.' {
		return nil, errors.New("bad file name")
	}
	fields := strings.Split(head, " ")
	uid, err := strconv.ParseUint(fields[0], 10, 32)
	if err != nil || uid == 0 || fields[0][0] == '+' {
		return nil, errors.New("bad UID")
	}
	r := &dovecotRecord{uid: uint32(uid), base: name, vsize: -1}
	for _, f := range fields[1:] {
		if len(f) < 2 || !isUpperAlpha(f[0]) || !printableField(f[1:]) {
			return nil, errors.New("bad field")
		}
		v := f[1:]
		switch f[0] {
		case 'W':
			if r.vsize = maildirname.ParseNumber(v); r.vsize < 0 {
				return nil, errors.New("bad W field")
			}
		case 'P':
			r.pop3 = v
		case 'G':
			r.guid = v
		}
	}
	return r, nil
}

func isUpperAlpha(c byte) bool { return c >= 'A' && c <= 'Z' }

// printableField reports whether s is all 0x21–0x7E (a field value).
func printableField(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// readUidlist reads the dovecot-uidlist of the open Maildir dirfd: nil,
// nil when there is none. It is Dovecot's file, writable by the
// maildrop's user, so it is opened without following a symbolic link or
// blocking on a FIFO, used only if it is a regular file, and read up to
// maxUidlist octets.
func readUidlist(dirfd int) (*dovecotUidlist, error) {
	data, err := readStateFile(dirfd, uidlistName, maxUidlist)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUidlist, err)
	}
	return parseUidlist(data)
}

// UIDLFormat is a parsed pop3_uidl_format of Dovecot 2.x: literal text and
// the variables %u (IMAP UID), %v (UIDVALIDITY), %g (the GUID: the G
// field, else the file name), %f (the file name without ":info"), and %%
// for '%'. As in Dovecot, a variable may carry a width and an offset
// ("%08u": at least 8 digits, padded with '0'; "%8f": the first 8
// characters; "%2.4f": 4 characters from the third; "%-2.2f": the last
// 2) and modifiers applied in order: X (the decimal number in
// hexadecimal, lower case, as Dovecot writes it; %u and %v only; x is
// taken as X), U and L (upper and lower case).
type UIDLFormat struct {
	parts []fmtPart
}

type fmtPart struct {
	lit    string // literal text, when v is 0
	v      byte   // 'u', 'v', 'g', 'f'
	zero   bool   // width pads with '0' instead of cutting
	offset int    // substring start (negative: from the end)
	width  int    // 0: no width
	mods   string // 'X', 'U', 'L', in order
}

// ParseUIDLFormat parses a Dovecot pop3_uidl_format. "" is refused (the
// caller decides what no format means).
func ParseUIDLFormat(s string) (UIDLFormat, error) {
	var f UIDLFormat
	if s == "" {
		return f, errors.New("empty format")
	}
	if len(s) > 256 {
		return f, errors.New("longer than 256 characters")
	}
	hasVar := false
	var lit strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e {
			return f, fmt.Errorf("character %q: a UIDL is printable ASCII without spaces", c)
		}
		if c != '%' {
			lit.WriteByte(c)
			continue
		}
		i++
		if i < len(s) && s[i] == '%' {
			lit.WriteByte('%')
			continue
		}
		// [-][0]<width>[.<width>]<modifiers><variable>
		var p fmtPart
		neg := false
		if i < len(s) && s[i] == '-' {
			neg = true
			i++
		}
		if i < len(s) && s[i] == '0' {
			p.zero = true
			i++
		}
		n, i2 := digits(s, i)
		i = i2
		if i < len(s) && s[i] == '.' {
			// An offset: the zero was one of its digits.
			p.zero = false
			p.offset = n
			if neg {
				p.offset = -n
			}
			n, i = digits(s, i+1)
		}
		p.width = n
		var mods []byte
	modifiers:
		for ; i < len(s); i++ {
			switch m := s[i]; m {
			case 'X', 'x':
				mods = append(mods, 'X')
			case 'U', 'L':
				mods = append(mods, m)
			default:
				break modifiers
			}
		}
		p.mods = string(mods)
		if i >= len(s) {
			return f, errors.New("'%' at the end")
		}
		switch c := s[i]; c {
		case 'u', 'v', 'g', 'f':
			p.v = c
		case 'm':
			return f, errors.New("%m (the MD5 of the headers) is not supported: Dovecot gives it for mbox only")
		default:
			return f, fmt.Errorf("%%%c is not a supported modifier or variable (X, U, L; u, v, g, f)", c)
		}
		if strings.IndexByte(p.mods, 'X') >= 0 && p.v != 'u' && p.v != 'v' {
			return f, errors.New("the modifier X applies to %u and %v only")
		}
		if lit.Len() > 0 {
			f.parts = append(f.parts, fmtPart{lit: lit.String()})
			lit.Reset()
		}
		f.parts = append(f.parts, p)
		hasVar = true
	}
	if lit.Len() > 0 {
		f.parts = append(f.parts, fmtPart{lit: lit.String()})
	}
	if !hasVar {
		return f, errors.New("no variable: every message would have the same UIDL")
	}
	return f, nil
}

// digits reads a decimal number of at most 4 digits at s[i:].
func digits(s string, i int) (n, next int) {
	for k := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		if k++; k <= 4 {
			n = n*10 + int(s[i]-'0')
		}
	}
	return n, i
}

// expand returns the UIDL Dovecot would give record r of a uidlist with
// UIDVALIDITY validity. A UIDL saved by pop3_save_uidl (P) wins.
func (f UIDLFormat) expand(r *dovecotRecord, validity uint32) string {
	if r.pop3 != "" {
		return r.pop3
	}
	var b strings.Builder
	for _, p := range f.parts {
		if p.v == 0 {
			b.WriteString(p.lit)
			continue
		}
		var val string
		switch p.v {
		case 'u':
			val = strconv.FormatUint(uint64(r.uid), 10)
		case 'v':
			val = strconv.FormatUint(uint64(validity), 10)
		case 'g':
			val = r.guid
			if val == "" {
				// Dovecot's Maildir GUID of a message without one
				// recorded is its file name.
				val = r.base
			}
		case 'f':
			val = r.base
		}
		for _, m := range []byte(p.mods) {
			switch m {
			case 'X':
				// Only on %u and %v, decimal until an X.
				if n, err := strconv.ParseUint(val, 10, 64); err == nil {
					val = strconv.FormatUint(n, 16)
				}
			case 'U':
				val = strings.ToUpper(val)
			case 'L':
				val = strings.ToLower(val)
			}
		}
		b.WriteString(p.cut(val))
	}
	return b.String()
}

// uidl is expand made a valid UIDL (RFC 1939 §7: 1–70 characters in
// 0x21–0x7E): one that is not (a file name with a space, a long %f) is
// hashed as postie's own are (uidOf).
func (f UIDLFormat) uidl(r *dovecotRecord, validity uint32) string {
	u := f.expand(r, validity)
	if !validUID(u) {
		return uidOf(u)
	}
	return u
}

// cut applies the offset and width of p to val.
func (p fmtPart) cut(val string) string {
	if p.zero {
		if len(val) < p.width {
			val = strings.Repeat("0", p.width-len(val)) + val
		}
		return val
	}
	if p.offset == 0 && p.width == 0 {
		return val
	}
	start := p.offset
	if start < 0 {
		start = max(len(val)+start, 0)
	}
	start = min(start, len(val))
	val = val[start:]
	if p.width > 0 && p.width < len(val) {
		val = val[:p.width]
	}
	return val
}
