package pop3server

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/postie-mail/postie/store"
)

// Sending a message from its file.
//
// A message stored with CRLF line ends (what LMTP and SMTP deliver) is
// already in wire form but for byte-stuffing: its store says so by
// returning a store.WireFile, with the offsets of the lines beginning with
// '.' recorded at delivery when there were few. On a plain TCP connection
// RETR then sends the file from the kernel (sendfile(2), through
// net.TCPConn.ReadFrom) without reading it: whole when no line begins
// with '.', else in the pieces between those lines, each stuffing dot
// written with the octets just before it (read with pread(2)) so that it
// does not travel in a segment of its own. A message whose offsets were
// not recorded (too many dot lines, another program's delivery, an older
// postie) is converted in user space by stream, as over TLS (or any
// connection wrapper but the PROXY protocol's, see fileConn), for TOP
// and for small messages (which go out in one write with their status line):
// looking for the dot lines costs a read of the whole file, and measured
// no cheaper than the conversion.

const (
	// sendfileMin is the size from which a message goes out from its
	// file. Smaller ones go through a msgWriter, in one write with their
	// status line and the replies before them.
	sendfileMin = 128 << 10
	// sendfileChunk bounds one sendfile call: each gets the write
	// deadline anew, so a client that stops reading costs at most
	// WriteTimeout, as with writes.
	sendfileChunk = 4 << 20
	// dotLead is how many octets before a stuffing dot are written with
	// it.
	dotLead = 4 << 10
)

// leadBufs hold the octets written with a stuffing dot.
var leadBufs = sync.Pool{New: func() any { return new([dotLead + 1]byte) }}

// errFileShort: the file ended before its listed size (truncated while
// being sent).
var errFileShort = errors.New("file shorter than listed")

// sendFile sends the next n octets of f, from its offset, to tc, the
// connection w writes to: by sendfile(2) where the platform has it, in
// pieces each under the write deadline. A file that ends early gives
// errFileShort, not kept as w's error (the client is not at fault).
func (w *connWriter) sendFile(tc *net.TCPConn, f *os.File, n int64) error {
	for n > 0 {
		if w.err != nil {
			return w.err
		}
		k := min(n, sendfileChunk)
		tc.SetWriteDeadline(time.Now().Add(w.timeout))
		m, err := tc.ReadFrom(&io.LimitedReader{R: f, N: k})
		w.sent += m
		n -= m
		if err != nil {
			w.err = err
			return err
		}
		if m < k {
			return errFileShort
		}
	}
	return nil
}

// fileConn returns the plain TCP connection RETR can send a file to, nil
// if the session has none. It looks through wrappers that name the
// connection under them with NetConn and write to it unchanged (the PROXY
// protocol's Conn, which only reads differently), but never through TLS.
func (ss *session) fileConn() *net.TCPConn {
	c := ss.conn.nc
	for range 4 {
		switch x := c.(type) {
		case *net.TCPConn:
			return x
		case *tls.Conn:
			return nil
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// sendWireFile sends message i from f, in wire form but for byte-stuffing
// (store.WireFile), size octets, the lines beginning with '.' at the
// offsets dots, after the replies waiting and the status line head. It
// reports false, having sent nothing, when the file does not bear out
// what its name says (it does not end with CRLF, or an offset is not a
// line beginning with '.'): stream then sends it, and finds out.
// Otherwise it returns what stream would: nil once sent, an error that
// answers the command or ends the session.
func (ss *session) sendWireFile(i int, tc *net.TCPConn, f *os.File, size int64, dots []int64, head string) (bool, error) {
	if !fileBearsOut(f, size, dots) {
		return false, nil
	}
	w := &ss.conn.w
	msg := slog.Int("msg", i+1)
	started, err := ss.sendPieces(tc, f, size, dots, head)
	switch {
	case err != nil && w.err != nil:
		ss.log(slog.LevelInfo, "client not taking the message; dropping connection", msg, slog.Any("err", w.err))
		return true, errWriteFailed
	case err != nil && !started:
		return true, failed(opReadMessage, errors.Join(store.ErrMessageGone, err), msg)
	case err != nil:
		ss.log(slog.LevelError, "message not sent whole; dropping connection", msg, slog.Any("err", err))
		return true, endSession("message read failed")
	}
	w.WriteString(".\r\n")
	ss.srv.stats.retrFromFile.Add(1)
	ss.drop.sent = size
	if ss.tracing {
		ss.traceMessage(strings.Clone(head), size) // head must not escape (see reply)
	}
	return true, nil
}

// fileBearsOut reports whether f, of size octets, ends with CRLF (or is
// empty) and has a line beginning with '.' at each offset of dots.
func fileBearsOut(f *os.File, size int64, dots []int64) bool {
	var b [2]byte
	if size > 0 {
		if n, _ := f.ReadAt(b[:], size-2); size < 2 || n != 2 || b != [2]byte{'\r', '\n'} {
			return false
		}
	}
	for _, q := range dots {
		switch {
		case q >= size:
			return false
		case q == 0:
			if n, _ := f.ReadAt(b[:1], 0); n != 1 || b[0] != '.' {
				return false
			}
		default:
			if n, _ := f.ReadAt(b[:], q-1); n != 2 || b != [2]byte{'\n', '.'} {
				return false
			}
		}
	}
	return true
}

// sendPieces sends the status line head (after the replies waiting, in
// one write) and then f's size octets, a '.' added before the octet at
// each offset of dots. It reports whether anything went out.
func (ss *session) sendPieces(tc *net.TCPConn, f *os.File, size int64, dots []int64, head string) (started bool, err error) {
	w := &ss.conn.w
	started = true
	w.WriteString(head)
	if err := w.Flush(); err != nil {
		return started, err
	}
	var lead *[dotLead + 1]byte
	if len(dots) > 0 {
		lead = leadBufs.Get().(*[dotLead + 1]byte)
		defer leadBufs.Put(lead)
	}
	var pos int64 // the next octet to send, where f's offset is
	for _, q := range dots {
		a := max(pos, q-dotLead)
		if err := w.sendFile(tc, f, a-pos); err != nil {
			return started, err
		}
		k := int(q - a)
		if n, err := f.ReadAt(lead[:k], a); n < k {
			if err == nil || err == io.EOF {
				err = errFileShort
			}
			return started, err
		}
		lead[k] = '.'
		if _, err := w.send(lead[:k+1]); err != nil {
			return started, err
		}
		pos = q
		if _, err := f.Seek(pos, io.SeekStart); err != nil {
			return started, err
		}
	}
	return started, w.sendFile(tc, f, size-pos)
}

// wireFileOf returns what RETR of message i can send from its file, if
// it can: rc's file, size and the offsets of its dot lines.
func (ss *session) wireFileOf(i int, rc io.Reader) (tc *net.TCPConn, f *os.File, size int64, dots []int64, ok bool) {
	wf, isWF := rc.(store.WireFile)
	if !isWF || ss.drop.msgs[i].Size < sendfileMin {
		return nil, nil, 0, nil, false
	}
	if tc = ss.fileConn(); tc == nil {
		return nil, nil, 0, nil, false
	}
	f, size, dots, known := wf.WireFile()
	if !known || size != ss.drop.msgs[i].Size {
		return nil, nil, 0, nil, false
	}
	return tc, f, size, dots, true
}
