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
type DotWriter struct {
	w   *bufio.Writer
	bol bool // at the beginning of a line
	cr  bool // the last byte written was a CR
	n   int64
}

// NewDotWriter returns a DotWriter writing to w.
func NewDotWriter(w *bufio.Writer) *DotWriter {
	return &DotWriter{w: w, bol: true}
}

// Reset makes d write a new message to w.
func (d *DotWriter) Reset(w *bufio.Writer) { *d = DotWriter{w: w, bol: true} }

var crlf = []byte{'\r', '\n'}

// Write converts and writes p. It never retains p.
func (d *DotWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if d.bol && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return total - len(p), err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := d.w.Write(p); err != nil {
				return total - len(p), err
			}
			d.n += int64(len(p))
			d.bol = false
			d.cr = p[len(p)-1] == '\r'
			break
		}
		seg := p[:i]
		cr := d.cr
		if len(seg) > 0 {
			cr = seg[len(seg)-1] == '\r'
		}
		if _, err := d.w.Write(seg); err != nil {
			return total - len(p), err
		}
		d.n += int64(len(seg))
		var err error
		if cr {
			err = d.w.WriteByte('\n')
			d.n++
		} else {
			_, err = d.w.Write(crlf)
			d.n += 2
		}
		if err != nil {
			return total - len(p), err
		}
		d.bol, d.cr = true, false
		p = p[i+1:]
	}
	return total, nil
}

// Copy copies r through the converter using buf as scratch space (which
// keeps large buffers out of goroutine stacks; callers pool them).
func (d *DotWriter) Copy(r io.Reader, buf []byte) (int64, error) {
	var read int64
	for {
		n, err := r.Read(buf)
		read += int64(n)
		if n > 0 {
			if _, werr := d.Write(buf[:n]); werr != nil {
				return read, werr
			}
		}
		if err == io.EOF {
			return read, nil
		}
		if err != nil {
			return read, err
		}
	}
}

// EndLine supplies the final line end if the text lacked one. After it,
// Size is the message's full wire size.
func (d *DotWriter) EndLine() error {
	if d.bol {
		return nil
	}
	d.bol = true
	if d.cr {
		d.n++
		return d.w.WriteByte('\n')
	}
	d.n += 2
	_, err := d.w.Write(crlf)
	return err
}

// Close ends the message: the final line end if still missing, then the
// terminating ".\r\n". It does not flush the underlying writer.
func (d *DotWriter) Close() error {
	if err := d.EndLine(); err != nil {
		return err
	}
	_, err := d.w.WriteString(".\r\n")
	return err
}

// Size is the number of message octets written so far, in wire form,
// without stuffing dots or the terminator.
func (d *DotWriter) Size() int64 { return d.n }

// WireSize returns the size of r's content in wire form: CRLF line ends and
// a final line end, before byte-stuffing (RFC 1939 §11 "exact size").
func WireSize(r io.Reader) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	prev := byte('\n') // as if at the start of a line
	for {
		m, err := r.Read(buf)
		if m > 0 {
			p := buf[:m]
			n += int64(m)
			for {
				i := bytes.IndexByte(p, '\n')
				if i < 0 {
					break
				}
				before := prev
				if i > 0 {
					before = p[i-1]
				}
				if before != '\r' {
					n++
				}
				prev = '\n'
				p = p[i+1:]
			}
			if len(p) > 0 {
				prev = p[len(p)-1]
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, err
		}
	}
	switch prev {
	case '\n':
	case '\r':
		n++
	default:
		n += 2
	}
	return n, nil
}

// ErrBadTerminator is returned by DotReader when the stream ends before the
// ".\r\n" terminator.
var ErrBadTerminator = errors.New("wire: multi-line response not terminated")

// DotReader reads the body of a multi-line response, removing the stuffing
// dots, and returns io.EOF after the terminating line. The content it yields
// keeps the line ends as sent (CRLF from a conforming server).
type DotReader struct {
	br   *bufio.Reader
	line []byte // rest of the current line not yet returned
	mid  bool   // the last read ended inside a line longer than br's buffer
	done bool
	err  error
}

// NewDotReader returns a reader of the multi-line body that follows on br.
func NewDotReader(br *bufio.Reader) *DotReader { return &DotReader{br: br} }

func (d *DotReader) Read(p []byte) (int, error) {
	for len(d.line) == 0 {
		if d.done {
			return 0, io.EOF
		}
		if d.err != nil {
			return 0, d.err
		}
		line, err := d.br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !full {
			if err == io.EOF {
				err = ErrBadTerminator
			}
			d.err = err
		}
		if !d.mid && len(line) > 0 && line[0] == '.' {
			if s := string(line); s == ".\r\n" || s == ".\n" {
				d.done = true
				return 0, io.EOF
			}
			line = line[1:]
		}
		d.mid = full
		d.line = line
	}
	n := copy(p, d.line)
	d.line = d.line[n:]
	return n, nil
}

// Drain reads and discards the rest of the body up to its terminator.
func (d *DotReader) Drain() error {
	_, err := io.Copy(io.Discard, d)
	return err
}
