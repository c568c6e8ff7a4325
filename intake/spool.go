package intake

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"
)

// spool holds a message received over LMTP or SMTP while it is delivered
// to each recipient: in memory up to memMax octets, beyond that in an
// unlinked temporary file (nothing is left behind if the process dies).
type spool struct {
	buf  *bytes.Buffer
	f    *os.File
	size int64
}

// spoolMemMax is the largest message kept in memory.
const spoolMemMax = 1 << 20

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// readSpool reads r to its end. Errors of r (a message too big, a lost
// connection) are returned as they are; errors of the temporary file are
// wrapped.
func readSpool(r io.Reader, dir string) (*spool, error) {
	sp := &spool{buf: bufPool.Get().(*bytes.Buffer)}
	sp.buf.Reset()
	n, err := sp.buf.ReadFrom(io.LimitReader(r, spoolMemMax+1))
	sp.size = n
	if err != nil {
		sp.Close()
		return nil, err
	}
	if n <= spoolMemMax {
		return sp, nil
	}
	f, err := os.CreateTemp(dir, "postie-spool-*")
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	os.Remove(f.Name()) // unlinked: the space goes with the file descriptor
	sp.f = f
	if _, err := f.Write(sp.buf.Bytes()); err != nil {
		sp.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	m, err := io.Copy(&fileWriter{f}, r)
	sp.size += m
	if err != nil {
		sp.Close()
		return nil, err
	}
	return sp, nil
}

// fileWriter hides *os.File's ReadFrom, so that a write error is told
// apart from a read error by its wrapping.
type fileWriter struct{ f *os.File }

func (w *fileWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = fmt.Errorf("spool: %w", err)
	}
	return n, err
}

// head returns up to the first 4 KiB of the message.
func (sp *spool) head() []byte {
	b := sp.buf.Bytes()
	return b[:min(len(b), 4096)]
}

// reader returns a fresh reader of the whole message.
func (sp *spool) reader() io.Reader {
	if sp.f != nil {
		return io.NewSectionReader(sp.f, 0, sp.size)
	}
	return bytes.NewReader(sp.buf.Bytes())
}

// Close releases the memory and the file.
func (sp *spool) Close() {
	if sp.f != nil {
		sp.f.Close()
		sp.f = nil
	}
	if sp.buf != nil {
		if sp.buf.Cap() <= 4*spoolMemMax {
			bufPool.Put(sp.buf)
		}
		sp.buf = nil
	}
}
