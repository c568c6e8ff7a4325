package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DotWriter turns stored message bytes into the body of an RFC 1939
// multi-line response: every line end becomes CRLF (bare LF gains a CR,
// CRLF stays), lines beginning with '.' gain another '.' (§3 byte-stuffing),
// and Close supplies a missing final line end and writes the ".\r\n"
// terminator. Size reports the octets written without the stuffing dots and
// the terminator, which is what WireSize computes for the same input.
//
// A DotWriter buffers its output and writes it to the underlying writer in
// pieces of more than three quarters of its buffer (but the last): the
// conversion appends to that buffer directly, a line at a time, with no
// call per line into another writer. Input is taken in pieces that surely
// fit, however it converts: a message whose wire form fills up to about
// three quarters of the buffer goes out in one write.
// The first write error is kept and returned by every later call.
type DotWriter struct {
	w   io.Writer
	buf []byte // output not yet written; cap(buf) is the buffer size
	err error
	bol bool // at the beginning of a line
	cr  bool // the last byte written was a CR
	n   int64
}

// minDotBuffer is the smallest buffer a DotWriter uses.
const minDotBuffer = 16

// NewDotWriter returns a DotWriter writing to w through a buffer of size
// octets (at least 16).
func NewDotWriter(w io.Writer, size int) *DotWriter {
	return &DotWriter{w: w, buf: make([]byte, 0, max(size, minDotBuffer)), bol: true}
}

// Reset discards any unwritten output and the error, and makes d write a
// new message to w.
func (d *DotWriter) Reset(w io.Writer) {
	*d = DotWriter{w: w, buf: d.buf[:0], bol: true}
}

// Buffered returns the number of octets waiting in the buffer.
func (d *DotWriter) Buffered() int { return len(d.buf) }

// WriteRaw writes p as it is, outside the conversion: the lines that go
// before the message (a status line, the replies of pipelined commands).
func (d *DotWriter) WriteRaw(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if d.err != nil {
			return total - len(p), d.err
		}
		if len(d.buf) == cap(d.buf) {
			d.Flush()
			continue
		}
		k := min(len(p), cap(d.buf)-len(d.buf))
		d.buf = append(d.buf, p[:k]...)
		p = p[k:]
	}
	return total, d.err
}

// Write converts and writes p. It never retains p.
func (d *DotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if d.err != nil {
			return total - len(p), d.err
		}
		// Each input octet gives at most two of output ("\n" gives
		// "\r\n", a '.' beginning a line ".."): take what surely fits.
		room := (cap(d.buf) - len(d.buf)) / 2
		if room == 0 || room < len(p) && room < cap(d.buf)/8 {
			d.Flush()
			continue
		}
		k := min(len(p), room)
		d.convert(p[:k])
		p = p[k:]
	}
	return total, d.err
}

// convert appends the wire form of p to d.buf, which has room for twice
// len(p) more octets.
func (d *DotWriter) convert(p []byte) {
	out := d.buf
	start, stuffed := len(out), 0
	bol, cr := d.bol, d.cr
	for len(p) > 0 {
		if bol && p[0] == '.' {
			out = append(out, '.')
			stuffed++
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			out = append(out, p...)
			bol, cr = false, p[len(p)-1] == '\r'
			break
		}
		if i > 0 {
			cr = p[i-1] == '\r'
			out = append(out, p[:i]...)
		}
		if cr {
			out = append(out, '\n')
		} else {
			out = append(out, '\r', '\n')
		}
		bol, cr = true, false
		p = p[i+1:]
	}
	d.n += int64(len(out) - start - stuffed)
	d.buf, d.bol, d.cr = out, bol, cr
}

// Copy copies r through the converter, reading into buf (which keeps large
// buffers out of goroutine stacks; callers pool them). It returns the
// number of octets read.
func (d *DotWriter) Copy(r io.Reader, buf []byte) (int64, error) {
	var read int64
	for {
		if d.err != nil {
			return read, d.err
		}
		// Read no more than converts into the room left, unless the
		// room is small: then make it whole first.
		room := (cap(d.buf) - len(d.buf)) / 2
		if room < len(buf) && room < cap(d.buf)/8 {
			d.Flush()
			continue
		}
		n, err := r.Read(buf[:min(len(buf), room)])
		read += int64(n)
		if n > 0 {
			d.convert(buf[:n])
		}
		if err == io.EOF {
			return read, nil
		}
		if err != nil {
			return read, err
		}
	}
}

// Flush writes the buffered output to the underlying writer.
func (d *DotWriter) Flush() error {
	if d.err != nil || len(d.buf) == 0 {
		return d.err
	}
	n, err := d.w.Write(d.buf)
	if err == nil && n < len(d.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		d.err = err
		return err
	}
	d.buf = d.buf[:0]
	return nil
}

// EndLine supplies the final line end if the text lacked one. After it,
// Size is the message's full wire size.
func (d *DotWriter) EndLine() error {
	if d.bol {
		return d.err
	}
	d.bol = true
	if d.cr {
		d.n++
		_, err := d.WriteRaw(crlf[1:])
		return err
	}
	d.n += 2
	_, err := d.WriteRaw(crlf)
	return err
}

// Close ends the message: the final line end if still missing, then the
// terminating ".\r\n". It does not flush.
func (d *DotWriter) Close() error {
	if err := d.EndLine(); err != nil {
		return err
	}
	_, err := d.WriteRaw(terminator)
	return err
}

var (
	lf         = []byte{'\n'}
	crlf       = []byte{'\r', '\n'}
	terminator = []byte{'.', '\r', '\n'}
)

// Size is the number of message octets written so far, in wire form,
// without stuffing dots or the terminator.
func (d *DotWriter) Size() int64 { return d.n }

// WireSize returns the size of r's content in wire form: CRLF line ends and
// a final line end, before byte-stuffing (RFC 1939 §11 "exact size").
func WireSize(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	c := NewCounter()
	for {
		m, err := r.Read(buf)
		c.Write(buf[:m])
		if err == io.EOF {
			return c.Size(), nil
		}
		if err != nil {
			return 0, err
		}
	}
}

// Counter computes the wire size of what is written to it, as WireSize
// does: a bare LF counts as CRLF, CRLF as itself, and a final line end is
// supplied (CR LF, or only LF after a trailing CR).
type Counter struct {
	raw   int64 // octets written
	extra int64 // CRs the wire form adds
	prev  byte  // the last octet written; '\n' at the start
}

// NewCounter returns a Counter at the start of a message.
func NewCounter() Counter { return Counter{prev: '\n'} }

// Write counts p. It never fails.
func (c *Counter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.raw += int64(len(p))
	c.extra += bareLFs(p, c.prev)
	c.prev = p[len(p)-1]
	return len(p), nil
}

// Raw is the number of octets written.
func (c *Counter) Raw() int64 { return c.raw }

// Size is the wire size of everything written.
func (c *Counter) Size() int64 {
	n := c.raw + c.extra
	switch c.prev {
	case '\n':
	case '\r':
		n++
	default:
		n += 2
	}
	return n
}

// bareLFs returns the number of LFs in p that no CR precedes, prev being
// the octet before p. Text without a CR (most stored mail) is counted
// with two vectorised passes rather than a search per line.
func bareLFs(p []byte, prev byte) int64 {
	if bytes.IndexByte(p, '\r') < 0 {
		n := int64(bytes.Count(p, lf))
		if prev == '\r' && p[0] == '\n' {
			n--
		}
		return n
	}
	var n int64
	for {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n
		}
		if i > 0 {
			prev = p[i-1]
		}
		if prev != '\r' {
			n++
		}
		prev = '\n'
		p = p[i+1:]
	}
}

// ErrBadTerminator is returned by DotReader when the stream ends before the
// ".\r\n" terminator.
var ErrBadTerminator = errors.New("wire: multi-line response not terminated")

// DotReader reads the body of a multi-line response, removing the stuffing
// dots, and returns io.EOF after the terminating line. The content it yields
// keeps the line ends as sent (CRLF from a conforming server).
//
// It works on what br has buffered rather than a line at a time: each Read
// copies everything up to the next line that begins with '.' (or as much
// as p takes) in one piece, so a big message costs one search and one
// copy per buffer, not a call per line.
type DotReader struct {
	br   *bufio.Reader
	mid  bool // not at the beginning of a line
	done bool
	err  error
}

// NewDotReader returns a reader of the multi-line body that follows on br.
func NewDotReader(br *bufio.Reader) *DotReader { return &DotReader{br: br} }

var dotLine = []byte("\n.")

func (d *DotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if d.done {
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		}
		if d.err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, d.err
		}
		if d.br.Buffered() == 0 {
			if n > 0 {
				// Block only when nothing is read yet.
				return n, nil
			}
			if _, err := d.br.Peek(1); err != nil {
				if err == io.EOF {
					err = ErrBadTerminator
				}
				d.err = err
				continue
			}
		}
		buf, _ := d.br.Peek(d.br.Buffered())
		if !d.mid && buf[0] == '.' {
			// A stuffing dot or the terminator: look at up to three
			// octets (".\r\n", or ".\n" as lenient readers accept).
			if len(buf) < 3 {
				if n > 0 {
					return n, nil
				}
				buf, _ = d.br.Peek(3)
			}
			switch {
			case len(buf) >= 2 && buf[1] == '\n':
				d.br.Discard(2)
				d.done = true
			case len(buf) >= 3 && buf[1] == '\r' && buf[2] == '\n':
				d.br.Discard(3)
				d.done = true
			default:
				// Fewer than three octets means the stream ended
				// or failed: the next Peek reports it.
				d.br.Discard(1)
				d.mid = true
			}
			continue
		}
		// Up to and including the line end before the next line that
		// begins with '.', within what p takes.
		buf = buf[:min(len(buf), len(p)-n)]
		if i := bytes.Index(buf, dotLine); i >= 0 {
			buf = buf[:i+1]
		}
		k := copy(p[n:], buf)
		d.br.Discard(k)
		d.mid = buf[k-1] != '\n'
		n += k
	}
	return n, nil
}

// Drain reads and discards the rest of the body up to its terminator.
func (d *DotReader) Drain() error {
	_, err := io.Copy(io.Discard, d)
	return err
}
