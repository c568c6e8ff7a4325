package wire

import (
	"bufio"
	"errors"
	"io"
)

// TopReader yields the header of a stored message, the empty line that
// ends it, and then at most k lines of the body (RFC 1939 §7 TOP). Line
// ends are passed through as stored (DotWriter normalizes them). A message
// with no empty line is all header: it is yielded whole, followed by an
// empty line so the client still sees where the header ends.
//
// The empty line is a line holding nothing but its line end ("\n" or
// "\r\n"), or a lone CR ending the message, which DotWriter ends as CRLF;
// a line of a bare CR before its line end is header text.
type TopReader struct {
	br     *bufio.Reader
	k      int
	inBody bool
	bol    bool
	cr     bool // the last octet yielded was a CR
	crLine bool // the current line is a lone CR so far
	eof    bool
	err    error // a read error to report once the data before it is out
	tail   []byte
}

// NewTopReader returns a reader of the TOP k view of r.
func NewTopReader(r io.Reader, k int) *TopReader {
	return &TopReader{br: bufio.NewReaderSize(r, 32<<10), k: k, bol: true}
}

func (t *TopReader) Read(p []byte) (int, error) {
	if len(t.tail) > 0 {
		n := copy(p, t.tail)
		t.tail = t.tail[n:]
		return n, nil
	}
	if t.err != nil {
		return 0, t.err
	}
	if t.eof || (t.inBody && t.k == 0 && t.bol) {
		return 0, io.EOF
	}
	chunk, err := t.br.ReadSlice('\n')
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		t.err = err
	}
	if len(chunk) == 0 && err != nil {
		if err == io.EOF {
			t.eof = true
			if !t.inBody {
				// Header without a separating empty line: end its last
				// line as DotWriter would (a trailing CR gains only an
				// LF), then add the empty line.
				switch {
				case t.bol:
					t.tail = []byte("\r\n")
				case t.crLine:
					// A final lone CR: DotWriter ends it as "\r\n",
					// which is the empty line.
					t.tail = []byte("\n")
				case t.cr:
					t.tail = []byte("\n\r\n")
				default:
					t.tail = []byte("\r\n\r\n")
				}
				return t.Read(p)
			}
			return 0, io.EOF
		}
		return 0, err
	}
	// Account lines: only a chunk ending in LF completes a line. A line as
	// short as an empty one always arrives in one chunk (the buffer is
	// far larger), barring a read error in between.
	complete := chunk[len(chunk)-1] == '\n'
	if !t.inBody {
		if t.bol && complete && (len(chunk) == 1 || len(chunk) == 2 && chunk[0] == '\r') {
			t.inBody = true
		}
	} else if complete {
		t.k--
	}
	t.crLine = t.bol && len(chunk) == 1 && chunk[0] == '\r'
	t.bol = complete
	t.cr = chunk[len(chunk)-1] == '\r'
	n := copy(p, chunk)
	t.tail = append(t.tail[:0], chunk[n:]...)
	return n, nil
}
