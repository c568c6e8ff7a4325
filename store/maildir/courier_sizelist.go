package maildir

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Courier's courierpop3dsizelist, read (never written) so that postie
// answers the UIDLs Courier's POP3 server (courierpop3d, courier-imap 2.1
// of 2003 and later) gave (see "Taking over from Courier" in the package doc).
// Courier's POP3 server keeps it in the Maildir and rewrites it whenever
// the maildrop changed; it does not use courierimapuiddb (Courier IMAP's
// UIDs), and has no setting for the UIDL's form.
//
// The file, as Courier writes it (list version 3, courier-imap 5.0 of 2018
// and later; version 2, from 2003, lacks the last field of each record):
//
//	/3 <next uid> <uidvalidity>
//	<file name> <size> <uid>:<uidvalidity>:<utf8 flag>
//
// one record per message, the file name with its ":2,FLAGS" part as it
// was in cur/ then. The UIDL of a record is "UID<uid>-<uidvalidity>"
// ("UID<uid>" when its UIDVALIDITY is 0; Courier never writes one); a
// record with UID 0 (none Courier writes) gets the file name's part
// before ':', each byte outside 0x21–0x7E and each of ' " + written
// "+XX" (hexadecimal, upper case), as Courier's UIDLs were before it kept
// this list. Courier matches a record to a message by that part of the
// name; postie by its unique part (msgName.unique), so that a message
// postie renamed for its true sizes is still found.
const (
	sizelistName = "courierpop3dsizelist"
	// maxSizelist bounds the file: about 800,000 records of the usual
	// form.
	maxSizelist = 64 << 20
	// maxSizelistLine bounds one record: Courier reads a line into 2048
	// octets and keeps at most 2028 of it.
	maxSizelistLine = 2027
)

// errSizelist reports a courierpop3dsizelist that postie does not use.
var errSizelist = errors.New("maildir: courierpop3dsizelist")

// courierRecord is one message listed in a courierpop3dsizelist.
type courierRecord struct {
	uid      uint64
	validity uint64
	size     int64 // the size Courier's LIST gave
}

// courierSizelist is a parsed courierpop3dsizelist.
type courierSizelist struct {
	byUnique map[string]courierRecord
	// bad counts the record lines refused (Courier skips them too, and
	// gives their messages new UIDs); badLine is the first one's number.
	bad, badLine int
}

// parseSizelist parses a courierpop3dsizelist of list version 2 or 3. A
// header it does not understand makes the file unusable (an error
// wrapping errSizelist), as it makes Courier start a new list. A record
// line Courier would skip, or one postie cannot read exactly (a number
// with a sign, a space or an overflow, a name that cannot be a message,
// trailing text), is skipped and counted; so are records naming the same
// message twice (which one Courier used depends on its sort), and an
// unfinished last line, which Courier ignores. Its message gets postie's
// own UIDL, as it would get a new one from Courier.
func parseSizelist(data []byte) (*courierSizelist, error) {
	if len(data) > maxSizelist {
		return nil, fmt.Errorf("%w: larger than %d octets", errSizelist, maxSizelist)
	}
	text := string(data)
	header, text, ok := strings.Cut(text, "\n")
	if !ok {
		return nil, fmt.Errorf("%w: no complete header line", errSizelist)
	}
	if err := parseSizelistHeader(header); err != nil {
		return nil, fmt.Errorf("%w: line 1: %v", errSizelist, err)
	}
	l := &courierSizelist{byUnique: map[string]courierRecord{}}
	dup := map[string]bool{}
	refuse := func(n int) {
		if l.bad == 0 {
			l.badLine = n
		}
		l.bad++
	}
	for n := 2; text != ""; n++ {
		line, rest, ok := strings.Cut(text, "\n")
		if !ok {
			refuse(n)
			break
		}
		text = rest
		unique, r, ok := parseSizelistRecord(line)
		if !ok {
			refuse(n)
			continue
		}
		if _, seen := l.byUnique[unique]; seen || dup[unique] {
			if !dup[unique] {
				refuse(n) // the first of the pair
			}
			refuse(n)
			dup[unique] = true
			delete(l.byUnique, unique)
			continue
		}
		l.byUnique[unique] = r
	}
	return l, nil
}

// parseSizelistHeader checks "/<version> <next uid>[ <uidvalidity>]".
func parseSizelistHeader(h string) error {
	rest, ok := strings.CutPrefix(h, "/")
	if !ok {
		return errors.New("not a list header")
	}
	f := strings.Split(rest, " ")
	if len(f) < 2 || len(f) > 3 {
		return errors.New("not a list header")
	}
	if f[0] != "2" && f[0] != "3" {
		return fmt.Errorf("list version %.10q is not supported (only 2 and 3, courier-imap 2.1 and later)", f[0])
	}
	for _, v := range f[1:] {
		if _, ok := decimal(v); !ok {
			return errors.New("bad number")
		}
	}
	return nil
}

// parseSizelistRecord parses "<file name> <size> <uid>:<uidvalidity>[:<0|1>]",
// returning the unique part of the file name.
func parseSizelistRecord(line string) (string, courierRecord, bool) {
	var r courierRecord
	if len(line) > maxSizelistLine {
		return "", r, false
	}
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", r, false
	}
	j := strings.LastIndexByte(line[:i], ' ')
	if j <= 0 {
		return "", r, false
	}
	name, size, ids := line[:j], line[j+1:i], line[i+1:]
	if name[0] == '.' || strings.ContainsAny(name, "/\x00") {
		return "", r, false
	}
	nm, ok := parseName(name)
	if !ok {
		return "", r, false
	}
	sz, ok := decimal(size)
	if !ok || sz > 1<<62 {
		return "", r, false
	}
	r.size = int64(sz)
	f := strings.Split(ids, ":")
	if len(f) == 3 && f[2] != "0" && f[2] != "1" || len(f) < 2 || len(f) > 3 {
		return "", r, false
	}
	if r.uid, ok = decimal(f[0]); !ok {
		return "", r, false
	}
	if r.validity, ok = decimal(f[1]); !ok {
		return "", r, false
	}
	return nm.unique, r, true
}

// decimal parses an unsigned decimal number of up to 20 digits, without
// a sign or spaces, that fits 64 bits.
func decimal(s string) (uint64, bool) {
	if s == "" || len(s) > 20 || s[0] < '0' || s[0] > '9' {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}

// uidl returns the UIDL Courier gives record r of the message whose name,
// without its ":info" part, is base; always a valid UIDL (a long or odd
// name-derived one is hashed as postie's own are).
func (r courierRecord) uidl(base string) string {
	var u string
	switch {
	case r.uid != 0 && r.validity != 0:
		u = "UID" + strconv.FormatUint(r.uid, 10) + "-" + strconv.FormatUint(r.validity, 10)
	case r.uid != 0:
		u = "UID" + strconv.FormatUint(r.uid, 10)
	default:
		var b strings.Builder
		for i := 0; i < len(base); i++ {
			c := base[i]
			if c < 0x21 || c > 0x7e || c == '\'' || c == '"' || c == '+' {
				fmt.Fprintf(&b, "+%02X", c)
			} else {
				b.WriteByte(c)
			}
		}
		u = b.String()
	}
	if !validUID(u) {
		return uidOf(u)
	}
	return u
}

// lookup finds the record of the message with unique name unique; ok
// false when l is nil or does not list it.
func (l *courierSizelist) lookup(unique string) (courierRecord, bool) {
	if l == nil {
		return courierRecord{}, false
	}
	r, ok := l.byUnique[unique]
	return r, ok
}

// readSizelist reads the courierpop3dsizelist of the open Maildir dirfd:
// nil, nil when there is none. It is Courier's file, writable by the
// maildrop's user, so it is opened without following a symbolic link or
// blocking on a FIFO, used only if it is a regular file, and read up to
// maxSizelist octets.
func readSizelist(dirfd int) (*courierSizelist, error) {
	data, err := readStateFile(dirfd, sizelistName, maxSizelist)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSizelist, err)
	}
	return parseSizelist(data)
}
