package pop3server

import (
	"bufio"
	"net"
	"sync"
)

// An idle session, one that waits for its client's next command, holds
// no buffer: its reply buffer and its command reader go back to pools
// once everything queued has been written and everything read has been
// answered, and are taken again when the client's next bytes arrive.
// A server holding 10,000 logged-in clients that poll now and then then
// keeps buffers only for the few sessions at work.
//
// The wait for those bytes is the connection's own readiness wait
// (syscall.RawConn.Read): it honours the read deadline and ends when the
// connection is closed, as a Read does, without a buffer to read into.
// Over TLS the session keeps its reader while it waits: crypto/tls may
// hold decrypted input that no readiness wait would see.

var (
	readers   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufSize) }}
	replyBufs = sync.Pool{New: func() any { return new([writeBufSize]byte) }}
)

// acquire gives w a reply buffer from the pool if it has none.
func (w *connWriter) acquire() {
	if cap(w.buf) == 0 {
		w.buf = replyBufs.Get().(*[writeBufSize]byte)[:0]
	}
}

// release returns w's reply buffer to the pool when nothing is queued in
// it; the next acquire gives it one again.
func (w *connWriter) release() {
	if len(w.buf) > 0 || w.lent || cap(w.buf) != writeBufSize {
		return
	}
	replyBufs.Put((*[writeBufSize]byte)(w.buf[:writeBufSize]))
	w.buf = nil
}

// newReader returns a pooled reader of c.
func newReader(c net.Conn) *bufio.Reader {
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	return br
}

// putReader returns br, whose input has all been consumed, to the pool.
func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
}

// waitIdle waits, without buffers, for the client's next command once
// all it sent has been answered. It returns the error a Read would
// have returned (the read deadline passed, the connection closed) or nil
// when input has arrived; the session has its buffers again either way.
func (ss *session) waitIdle() error {
	c := &ss.conn
	c.w.release()
	if c.rc == nil || c.nc != c.raw || c.br.Buffered() > 0 {
		return nil // the read blocks with the reader
	}
	putReader(c.br)
	c.br = nil
	err := c.rc.Read(readable)
	c.br = newReader(c.nc)
	c.w.acquire()
	return err
}
