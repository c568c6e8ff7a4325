package maildirname

import (
	"bytes"
	"strconv"
	"strings"
)

// The D= field of a message's name records its lines that begin with '.'
// (those byte-stuffing doubles on the way out, RFC 1939 §3): "D=<n>",
// followed, when n is at most MaxNamedDots, by the offset in the file of
// each such line's '.' ("D=0", "D=2.120.9000", "D=37"). With the name's S=
// equal to its W= (CRLF line ends throughout), a server can send such a
// message from its file and add the dots at those offsets.

// MaxNamedDots is the most lines beginning with '.' whose offsets a name
// records.
const MaxNamedDots = 4

// DotCounter counts the lines that begin with '.' in what is written to
// it, and notes the offsets of the first ones.
type DotCounter struct {
	n    int64
	offs []int64
	off  int64 // octets written
	prev byte  // the last octet written; '\n' at the start
}

// NewDotCounter returns a DotCounter at the start of a message.
func NewDotCounter() DotCounter { return DotCounter{prev: '\n'} }

var dotLine = []byte("\n.")

// Write counts p. It never fails.
func (c *DotCounter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.n <= MaxNamedDots {
		if c.prev == '\n' && p[0] == '.' && len(c.offs) <= MaxNamedDots {
			c.offs = append(c.offs, c.off)
		}
		for j := 0; len(c.offs) <= MaxNamedDots; {
			k := bytes.Index(p[j:], dotLine)
			if k < 0 {
				break
			}
			j += k + 1
			c.offs = append(c.offs, c.off+int64(j))
		}
	}
	c.n += int64(bytes.Count(p, dotLine))
	if c.prev == '\n' && p[0] == '.' {
		c.n++
	}
	c.off += int64(len(p))
	c.prev = p[len(p)-1]
	return len(p), nil
}

// Lines returns the number of lines beginning with '.' written so far.
func (c *DotCounter) Lines() int64 { return c.n }

// Field returns the ",D=" field for what was written.
func (c *DotCounter) Field() string { return DotsField(c.n, c.offs) }

// DotsField returns the ",D=" field of a message of n lines beginning
// with '.'; offs holds at least the first min(n, MaxNamedDots) offsets,
// ascending, or is nil to leave them out.
func DotsField(n int64, offs []int64) string {
	b := []byte(",D=")
	b = strconv.AppendInt(b, n, 10)
	if n <= MaxNamedDots && offs != nil {
		for _, o := range offs[:n] {
			b = strconv.AppendInt(append(b, '.'), o, 10)
		}
	}
	return string(b)
}

// ParseDots parses the value of a D= field. It returns the offsets of the
// lines beginning with '.' (empty, not nil, for none), or ok false when
// the value does not give them all (too many lines to list, malformed,
// not ascending).
func ParseDots(val string) (offs []int64, ok bool) {
	cnt, rest, more := strings.Cut(val, ".")
	n := ParseNumber(cnt)
	switch {
	case n < 0 || n > MaxNamedDots:
		return nil, false
	case n == 0:
		return []int64{}, !more
	}
	offs = make([]int64, 0, n)
	for more {
		var o string
		o, rest, more = strings.Cut(rest, ".")
		v := ParseNumber(o)
		if v < 0 || len(offs) > 0 && v <= offs[len(offs)-1] || int64(len(offs)) == n {
			return nil, false
		}
		offs = append(offs, v)
	}
	return offs, int64(len(offs)) == n
}

// ParseNumber parses a number as Maildir names and the files beside them
// write it (the S=, W= and D= fields, sizes): up to 18 decimal digits, -1
// if s is not that.
func ParseNumber(s string) int64 {
	if s == "" || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	return n
}
