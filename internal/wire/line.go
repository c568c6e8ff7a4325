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
func ReadLine(br *bufio.Reader, max int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	if err == nil {
		if len(line) > max {
			return nil, ErrLineTooLong
		}
		return trimEOL(line), nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		// Longer than the buffer: discard up to the LF.
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err != nil {
			return nil, unexpected(err)
		}
		return nil, ErrLineTooLong
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

// verbs interns the known keywords so parsing a known command does not
// allocate a string for its verb.
var verbs = map[string]string{}

func init() {
	for _, v := range []string{"USER", "PASS", "APOP", "QUIT", "STAT", "LIST", "RETR",
		"DELE", "NOOP", "RSET", "TOP", "UIDL", "CAPA", "STLS", "AUTH", "UTF8", "LANG", "LAST"} {
		verbs[v] = v
	}
}

// ParseCommand splits a command line into keyword and arguments. A keyword
// is 1–40 printable ASCII octets (RFC 2449 allows keywords of 3 or 4 octets;
// we are lenient and let the engine reject unknown ones). It reports false
// for an empty line or a keyword with non-printable octets.
func ParseCommand(line []byte, args []string) (Command, bool) {
	var c Command
	verb, rest, _ := bytes.Cut(line, []byte{' '})
	if len(verb) == 0 || len(verb) > 40 {
		return c, false
	}
	var up [40]byte
	for i, b := range verb {
		if b <= ' ' || b >= 0x7f {
			return c, false
		}
		if 'a' <= b && b <= 'z' {
			b -= 'a' - 'A'
		}
		up[i] = b
	}
	if v, ok := verbs[string(up[:len(verb)])]; ok {
		c.Verb = v
	} else {
		c.Verb = string(up[:len(verb)])
	}
	c.Rest = string(rest)
	c.Args = args[:0]
	for f := range bytes.FieldsSeq(rest) {
		c.Args = append(c.Args, string(f))
	}
	return c, true
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
