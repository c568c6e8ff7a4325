package auth

import (
	"bytes"
	"errors"
	"strings"
)

// lineKind sorts the lines of a passwd-file.
type lineKind int

const (
	lineBlank lineKind = iota
	lineComment
	lineEntry
	lineMalformed
)

// line is one line of a passwd-file, without its line end. Every kind
// keeps its raw text so that a rewrite reproduces untouched lines byte for
// byte (a CR before the LF included).
type line struct {
	kind lineKind
	raw  string // the line as read, without "\n" (with its "\r" if any)
	// For lineEntry only:
	user     string
	password string // "{SCHEME}hash", a bare crypt string, or empty (no login)
	rest     string // everything after the password, starting with ':' if present
	// For lineMalformed only: why (never containing the line itself).
	problem string
}

// parseLine parses one line (without its "\n"). A trailing "\r" is
// tolerated. It never fails: what it cannot use is lineMalformed.
func parseLine(raw string) line {
	l := line{raw: raw}
	s := strings.TrimSuffix(raw, "\r")
	trimmed := strings.TrimLeft(s, " \t")
	switch {
	case trimmed == "":
		l.kind = lineBlank
		return l
	case trimmed[0] == '#':
		l.kind = lineComment
		return l
	}
	l.kind = lineMalformed
	if strings.ContainsAny(s, "\r\n\x00") {
		l.problem = "CR, LF or NUL inside the line"
		return l
	}
	user, after, ok := strings.Cut(s, ":")
	if !ok {
		l.problem = "no ':' after the user name"
		return l
	}
	if err := ValidUsername(user); err != nil {
		l.problem = err.Error()
		return l
	}
	password, rest := after, ""
	if i := strings.IndexByte(after, ':'); i >= 0 {
		password, rest = after[:i], after[i:]
	}
	for i := 0; i < len(password); i++ {
		if c := password[i]; c < 0x20 || c == 0x7f {
			l.problem = "control character in the password field"
			return l
		}
	}
	l.kind, l.user, l.password, l.rest = lineEntry, user, password, rest
	return l
}

// home returns the home field of an entry: the 6th field of the line
// (user:password:uid:gid:gecos:home:shell:extra), "" when absent.
func (l line) home() string {
	f := strings.SplitN(l.rest, ":", 6) // "", uid, gid, gecos, home, rest
	if len(f) < 5 {
		return ""
	}
	return f[4]
}

// format returns the text of an entry built from its fields (for the
// lines an edit changes or adds).
func (l line) format() string {
	return l.user + ":" + l.password + l.rest
}

// passwdFile is a parsed passwd-file.
type passwdFile struct {
	lines []line
	crlf  bool // the file's first line ends "\r\n": new lines do too
}

// parseFile splits data into lines. It never fails.
func parseFile(data []byte) *passwdFile {
	f := &passwdFile{}
	if i := bytes.IndexByte(data, '\n'); i > 0 && data[i-1] == '\r' {
		f.crlf = true
	}
	s := string(data)
	for s != "" {
		raw, after, _ := strings.Cut(s, "\n")
		f.lines = append(f.lines, parseLine(raw))
		s = after
	}
	return f
}

// bytes serialises the file, every line ended by "\n" (a raw line keeps
// its own "\r"; a last line that had no line end gets one).
func (f *passwdFile) bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(l.raw)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// newEntry returns an entry line in the file's line-end style.
func (f *passwdFile) newEntry(user, password, rest string) line {
	l := line{kind: lineEntry, user: user, password: password, rest: rest}
	l.raw = l.format()
	if f.crlf {
		l.raw += "\r"
	}
	return l
}

// errBadPasswordField is returned when a hash cannot be stored in a
// passwd-file field (a PLAIN password containing ':' or a line break).
var errBadPasswordField = errors.New("auth: the stored password would contain ':' or a control character; use another scheme (or PLAIN.B64)")

func checkPasswordField(stored string) error {
	if strings.ContainsRune(stored, ':') {
		return errBadPasswordField
	}
	for i := 0; i < len(stored); i++ {
		if c := stored[i]; c < 0x20 || c == 0x7f {
			return errBadPasswordField
		}
	}
	return nil
}
