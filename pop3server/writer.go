package pop3server

import (
	"io"
	"time"
)

// deadlineConn is what a connWriter writes to: a net.Conn.
type deadlineConn interface {
	io.Writer
	SetWriteDeadline(time.Time) error
}

// connWriter is a session's one writer over its connection. Replies queue
// in its buffer and go out in one write per batch of pipelined commands
// (Flush). Every write to the connection gets the write deadline, so a
// client that stops reading costs at most WriteTimeout however long the
// message, and the first error is kept: it is the client's fault, never
// the store's.
//
// A message being sent goes through a DotWriter with a bigger buffer
// that writes here. lend hands it the replies queued so far (those of
// commands pipelined before), so that they go out with the status line
// and the message's first bytes in one write. Until settle or restore,
// Write passes straight to the connection and the lent replies stay in
// the buffer: a message found unsendable before anything went out is
// taken back (restore) and answered -ERR after the replies before it.
type connWriter struct {
	c       deadlineConn
	timeout time.Duration
	buf     []byte // replies not yet written (or lent)
	lent    bool
	err     error // the first error writing to c
	sent    int64 // octets written to c
}

func newConnWriter(c deadlineConn, timeout time.Duration, size int) connWriter {
	return connWriter{c: c, timeout: timeout, buf: make([]byte, 0, size)}
}

// send writes p to the connection under the write deadline.
func (w *connWriter) send(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	w.c.SetWriteDeadline(time.Now().Add(w.timeout))
	n, err := w.c.Write(p)
	w.sent += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	w.err = err
	return n, err
}

// Write queues p, writing the buffer out whenever p does not fit; a p at
// least as big as the buffer goes out directly. While replies are lent,
// p goes straight to the connection.
func (w *connWriter) Write(p []byte) (int, error) {
	if w.lent {
		return w.send(p)
	}
	total := len(p)
	for len(p) > cap(w.buf)-len(w.buf) && w.err == nil {
		if len(w.buf) == 0 {
			n, err := w.send(p)
			return total - len(p) + n, err
		}
		k := copy(w.buf[len(w.buf):cap(w.buf)], p)
		w.buf = w.buf[:cap(w.buf)]
		p = p[k:]
		w.Flush()
	}
	if w.err != nil {
		return total - len(p), w.err
	}
	w.buf = append(w.buf, p...)
	return total, nil
}

// WriteString queues s as Write does.
func (w *connWriter) WriteString(s string) {
	if len(s) <= cap(w.buf)-len(w.buf) && !w.lent {
		w.buf = append(w.buf, s...)
		return
	}
	w.Write([]byte(s))
}

// Buffered is the number of octets queued.
func (w *connWriter) Buffered() int { return len(w.buf) }

// Flush writes the queued replies.
func (w *connWriter) Flush() error {
	if len(w.buf) == 0 || w.lent {
		return w.err
	}
	n, err := w.send(w.buf)
	if err != nil {
		// Keep what did not go out, as bufio does; the session ends
		// at this error anyway.
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
		return err
	}
	w.buf = w.buf[:0]
	return nil
}

// lend returns the queued replies for a message writer to send, and makes
// Write pass straight to the connection until settle or restore.
func (w *connWriter) lend() []byte {
	w.lent = true
	return w.buf
}

// settle ends a loan whose replies went out (or were meant to: the
// connection failed).
func (w *connWriter) settle() {
	w.lent = false
	w.buf = w.buf[:0]
}

// restore ends a loan of which nothing went out: the replies are queued
// again.
func (w *connWriter) restore() { w.lent = false }

// reset makes w write to c (after STLS); nothing must be queued.
func (w *connWriter) reset(c deadlineConn) {
	w.c = c
	w.buf = w.buf[:0]
}
