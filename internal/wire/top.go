package wire

import (
	"bufio"
	"io"
)

// TopReader yields the header of a stored message, the empty line that
// ends it, and then at most k lines of the body (RFC 1939 §7 TOP). Line
// ends are passed through as stored (DotWriter normalizes them). A message
// with no empty line is all header: it is yielded whole, followed by an
// empty line so the client still sees where the header ends.
type TopReader struct {
	br     *bufio.Reader
	k      int
	inBody bool
	bol    bool
	blank  bool // the current header line is empty so far
	eof    bool
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
	if t.eof || (t.inBody && t.k == 0 && t.bol) {
		return 0, io.EOF
	}
	chunk, err := t.br.ReadSlice('\n')
	if len(chunk) == 0 && err != nil {
		if err == io.EOF {
			t.eof = true
			if !t.inBody {
				// Header without a separating empty line.
				if !t.bol {
					t.tail = []byte("\r\n\r\n")
				} else {
					t.tail = []byte("\r\n")
				}
				return t.Read(p)
			}
			return 0, io.EOF
		}
		return 0, err
	}
	// Account lines: only a chunk ending in LF completes a line.
	complete := chunk[len(chunk)-1] == '\n'
	if !t.inBody {
		if t.bol {
			t.blank = true
		}
		for _, b := range chunk {
			if b != '\r' && b != '\n' {
				t.blank = false
				break
			}
		}
		if complete && t.blank {
			t.inBody = true
		}
	} else if complete {
		t.k--
	}
	t.bol = complete
	n := copy(p, chunk)
	t.tail = append(t.tail[:0], chunk[n:]...)
	return n, nil
}
