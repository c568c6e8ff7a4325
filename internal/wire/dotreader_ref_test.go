package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// lineDotReader is the line-at-a-time multi-line reader DotReader replaced
// (one ReadSlice per line): the reference DotReader must agree with on any
// input, well-formed or not, and the "before" of BenchmarkDotReader.
type lineDotReader struct {
	br   *bufio.Reader
	line []byte
	mid  bool
	done bool
	err  error
}

func (d *lineDotReader) Read(p []byte) (int, error) {
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

// readWith reads in through r made over a bufio.Reader of size octets,
// in reads of step octets, and returns the content, the error that ended
// it and what is left on the stream.
func readWith(in []byte, size, step int, oneByteSource bool, mk func(*bufio.Reader) io.Reader) (string, string, error) {
	var src io.Reader = bytes.NewReader(in)
	if oneByteSource {
		src = iotest.OneByteReader(src)
	}
	br := bufio.NewReaderSize(src, size)
	r := mk(br)
	var out bytes.Buffer
	buf := make([]byte, step)
	var err error
	for {
		var n int
		n, err = r.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if err == io.EOF {
		err = nil
	}
	rest, _ := io.ReadAll(br)
	return out.String(), string(rest), err
}

// FuzzDotReaderReference checks DotReader against lineDotReader on any
// stream (terminated or not, bare LFs, dots anywhere), with small buffers
// and reads of any size: the same content, error and leftover.
func FuzzDotReaderReference(f *testing.F) {
	f.Add([]byte("a\r\n..b\r\n.\r\nrest"), uint8(0), uint8(3), false)
	f.Add([]byte(".\r\n"), uint8(0), uint8(1), false)
	f.Add([]byte(strings.Repeat(".", 40)+"\r\n.\n"), uint8(0), uint8(7), true)
	f.Add([]byte("x\n.\r"), uint8(5), uint8(2), false)
	f.Add([]byte("..\r\n.."), uint8(1), uint8(200), true)
	f.Fuzz(func(t *testing.T, in []byte, size, step uint8, oneByte bool) {
		sz := 16 + int(size)
		st := 1 + int(step)
		got, gotLeft, gotErr := readWith(in, sz, st, oneByte, func(br *bufio.Reader) io.Reader { return NewDotReader(br) })
		want, wantLeft, wantErr := readWith(in, sz, st, oneByte, func(br *bufio.Reader) io.Reader { return &lineDotReader{br: br} })
		if got != want || gotLeft != wantLeft || gotErr != wantErr {
			t.Fatalf("%q (buffer %d, reads of %d): got %q, %v, left %q; want %q, %v, left %q", in, sz, st, got, gotErr, gotLeft, want, wantErr, wantLeft)
		}
	})
}

// BenchmarkDotReader unstuffs a big multi-line body (CRLF lines, one in
// ten stuffed; and one with no stuffed line) as pop3client reads RETR:
// through a bufio.Reader of the client's size (32 KiB), into a 32 KiB
// buffer. "line" is the line-at-a-time reader it replaced.
func BenchmarkDotReader(b *testing.B) {
	plain := bytes.ReplaceAll(lfMessage(10<<20), []byte("\n."), []byte("\nx"))
	for _, bc := range []struct {
		name string
		msg  []byte
	}{{"100KB", lfMessage(100 << 10)}, {"10MB", lfMessage(10 << 20)}, {"10MB-nodots", plain}} {
		var w bytes.Buffer
		d := NewDotWriter(&w, 64<<10)
		d.Write(bc.msg)
		d.Close()
		d.Flush()
		in := w.Bytes()
		for _, impl := range []struct {
			name string
			mk   func(*bufio.Reader) io.Reader
		}{
			{"buffer", func(br *bufio.Reader) io.Reader { return NewDotReader(br) }},
			{"line", func(br *bufio.Reader) io.Reader { return &lineDotReader{br: br} }},
		} {
			b.Run(bc.name+"/"+impl.name, func(b *testing.B) {
				r := bytes.NewReader(in)
				br := bufio.NewReaderSize(r, 32<<10)
				buf := make([]byte, 32<<10)
				b.SetBytes(int64(len(in)))
				b.ReportAllocs()
				for b.Loop() {
					r.Reset(in)
					br.Reset(r)
					dr := impl.mk(br)
					for {
						_, err := dr.Read(buf)
						if err == io.EOF {
							break
						}
						if err != nil {
							b.Fatal(err)
						}
					}
				}
			})
		}
	}
}
