package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ErrLineTooLong is returned by ReadLine when a line exceeds the limit. The
// whole over-long line has been consumed, so the next call reads the next line.
var ErrLineTooLong = errors.New("wire: line too long")

// ReadLine reads one line of at most max octets including its line end
// (CRLF, or a bare LF as lenient peers send). It returns the line without
// the line end. The returned slice is valid until the next read on br.
//
// A longer line is consumed up to its LF and reported as ErrLineTooLong, so
// a session can answer -ERR and go on. A line still unfinished at EOF is
// returned with io.ErrUnexpectedEOF.
//
// max may exceed br's buffer size: a line longer than the buffer but within
// max is then collected into a newly allocated slice.
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		if len(line) > max {
			return nil, ErrLineTooLong
		}
		return trimEOL(line), nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		// Longer than br's buffer. If max allows more than the buffer
		// holds, collect the line while it may still fit; in any case
		// consume it up to its LF.
		n := len(line)
		var long []byte
		if n < max {
			long = append(make([]byte, 0, min(max, 2*n)), line...)
		}
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = br.ReadSlice('\n')
			n += len(line)
			if n <= max {
				long = append(long, line...)
			} else {
				long = nil
			}
		}
		if err != nil {
			return nil, unexpected(err)
		}
		if n > max {
			return nil, ErrLineTooLong
		}
		return trimEOL(long), nil
	}
	if len(line) == 0 {
		return nil, err
	}
	return nil, unexpected(err)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func trimEOL(line []byte) []byte {
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line
}

// Command is one tokenized command line.
type Command struct {
	// Verb is the keyword, upper-cased (keywords are case-insensitive,
	// RFC 1939 §3).
	Verb string
	// Rest is everything after the keyword and the single space that
	// follows it, unmodified (PASS takes it whole: passwords may hold
	// spaces, RFC 1939 §7).
	Rest string
	// Args are the space-separated arguments of Rest.
	Args []string
}

// internVerb returns the interned keyword for the upper-cased up, so that
// parsing a known command does not allocate a string for its verb, or ""
// for an unknown keyword.
func internVerb(up []byte) string {
	switch string(up) {
	case "USER":
		return "USER"
	case "PASS":
		return "PASS"
	case "APOP":
		return "APOP"
	case "QUIT":
		return "QUIT"
	case "STAT":
		return "STAT"
	case "LIST":
		return "LIST"
	case "RETR":
		return "RETR"
	case "DELE":
		return "DELE"
	case "NOOP":
		return "NOOP"
	case "RSET":
		return "RSET"
	case "TOP":
		return "TOP"
	case "UIDL":
		return "UIDL"
	case "CAPA":
		return "CAPA"
	case "STLS":
		return "STLS"
	case "AUTH":
		return "AUTH"
	case "UTF8":
		return "UTF8"
	case "LANG":
		return "LANG"
	case "LAST":
		return "LAST"
	}
	return ""
}

// ParseCommand splits a command line into keyword and arguments. A keyword
// is 1–40 printable ASCII octets (RFC 2449 allows keywords of 3 or 4 octets;
// we are lenient and let the engine reject unknown ones). It reports false
// for an empty line or a keyword with non-printable octets.
//
// Arguments are separated by runs of ASCII white space only, so UTF-8
// arguments (RFC 6856) keep any non-ASCII space characters they contain.
// Verb, Rest and Args never alias line. Args reuses args' storage; a known
// keyword costs no allocation, and any arguments cost one in all (Args are
// substrings of Rest).
func ParseCommand(line []byte, args []string) (Command, bool) {
	var c Command
	verb, rest, _ := bytes.Cut(line, []byte{' '})
	if len(verb) == 0 || len(verb) > 40 {
		return c, false
	}
	var buf [40]byte
	up := buf[:len(verb)]
	for i, b := range verb {
		if b <= ' ' || b >= 0x7f {
			return c, false
		}
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		up[i] = b
	}
	if c.Verb = internVerb(up); c.Verb == "" {
		c.Verb = string(up)
	}
	c.Rest = string(rest)
	c.Args = args[:0]
	for s := c.Rest; ; {
		i := 0
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			break
		}
		j := i + 1
		for j < len(s) && !isSpace(s[j]) {
			j++
		}
		c.Args = append(c.Args, s[i:j])
		s = s[j:]
	}
	return c, true
}

// isSpace reports whether b is ASCII white space (the ASCII set of
// unicode.IsSpace).
func isSpace(b byte) bool {
	switch b {
	case ' ', '\t', '\n', '\v', '\f', '\r':
		return true
	}
	return false
}

// ParseNumber parses a message number or line count: decimal digits only,
// no sign, no leading '+', at most 9 digits (anything larger is out of range
// of any maildrop). It reports false for anything else.
func ParseNumber(s string) (int, bool) {
	if len(s) == 0 || len(s) > 9 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
