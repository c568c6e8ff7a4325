package pop3server

import (
	"bytes"
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
// returning a store.WireFile. On a plain TCP connection RETR then sends
// the file from the kernel (sendfile(2), through net.TCPConn.ReadFrom),
// and writes only the stuffing dots itself, between the pieces. Where the
// store recorded at delivery that no line begins with '.', the whole file
// goes in one piece without being read here. Where it recorded a few such
// lines (at most one per rangePerDot octets), the file is read (pread) a
// chunk at a time to find them and goes in the pieces between them, the
// dots written in between; a chunk with many of them is written stuffed
// from user space instead. More dot lines than that, or none recorded (a
// message delivered by another program or an older postie), and each dot
// costs more (a tiny segment of its own, and the reading) than the
// conversion in user space: stream sends it, as it does over TLS, for TOP
// and for small messages (which go out in one write with their status
// line).

const (
	// sendfileMin is the size from which a message goes out from its
	// file. Smaller ones go through a msgWriter, in one write with their
	// status line and the replies before them.
	sendfileMin = 128 << 10
	// sendfileChunk bounds one sendfile call: each gets the write
	// deadline anew, so a client that stops reading costs at most
	// WriteTimeout, as with writes.
	sendfileChunk = 4 << 20
	// scanChunk is what is read at a time to find the lines to stuff.
	scanChunk = 256 << 10
	// denseDots: a chunk with more lines to stuff than this is written
	// stuffed from user space (one copy and one write) rather than in
	// pieces (two calls per line).
	denseDots = 8
)

// rangePerDot is the fewest octets per line to stuff with which a message
// goes from its file in pieces (a variable for the tests).
var rangePerDot int64 = 1 << 20

// scanBuf holds a chunk being scanned and, for a dense one, its stuffed
// form. Pooled: only a message being sent needs one.
type scanBuf struct {
	in, out []byte
	cuts    []int
}

var scanBufs = sync.Pool{New: func() any {
	return &scanBuf{in: make([]byte, scanChunk), out: make([]byte, 0, scanChunk+scanChunk/2)}
}}

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
// if the session has none (TLS, a wrapped connection).
func (ss *session) fileConn() *net.TCPConn {
	tc, _ := ss.conn.nc.(*net.TCPConn)
	return tc
}

// sendWireFile sends message i from f, in wire form but for byte-stuffing
// (store.WireFile), size octets, dots lines beginning with '.' (-1: not
// known), after the replies waiting and the status line head. It reports
// false, having sent nothing, when the file turns out not to end with
// CRLF (a name whose sizes are wrong): stream then sends it, and finds
// out. Otherwise it returns what stream would: nil once sent, an error
// that answers the command or ends the session.
func (ss *session) sendWireFile(i int, tc *net.TCPConn, f *os.File, size, dots int64, head string) (bool, error) {
	if size > 0 {
		var tail [2]byte
		if n, _ := f.ReadAt(tail[:], size-2); size < 2 || n != 2 || tail != [2]byte{'\r', '\n'} {
			return false, nil
		}
	}
	w := &ss.conn.w
	msg := slog.Int("msg", i+1)
	started, err := ss.sendStuffed(tc, f, size, dots, head)
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

// sendStuffed sends the status line head (after the replies waiting, in
// one write) and then f's size octets, stuffed: see sendWireFile. It
// reports whether anything went out.
func (ss *session) sendStuffed(tc *net.TCPConn, f *os.File, size, dots int64, head string) (started bool, err error) {
	w := &ss.conn.w
	start := func() error {
		started = true
		w.WriteString(head)
		return w.Flush()
	}
	if dots == 0 {
		if err := start(); err != nil {
			return started, err
		}
		return started, w.sendFile(tc, f, size)
	}
	sb := scanBufs.Get().(*scanBuf)
	defer scanBufs.Put(sb)
	// off: the next octet to scan; pos: the next to send, where f's
	// offset is (ReadAt leaves it alone).
	var off, pos int64
	prev := byte('\n')
	for off < size {
		want := int(min(int64(len(sb.in)), size-off))
		n, err := f.ReadAt(sb.in[:want], off)
		if n < want {
			if err == nil || err == io.EOF {
				err = errFileShort
			}
			return started, err
		}
		c := sb.in[:n]
		sb.cuts = sb.cuts[:0]
		if prev == '\n' && c[0] == '.' {
			sb.cuts = append(sb.cuts, 0)
		}
		for j := 0; ; {
			k := bytes.Index(c[j:], dotLine)
			if k < 0 {
				break
			}
			j += k + 1
			sb.cuts = append(sb.cuts, j)
		}
		prev = c[n-1]
		if !started {
			if err := start(); err != nil {
				return started, err
			}
		}
		if len(sb.cuts) > denseDots {
			if err := w.sendFile(tc, f, off-pos); err != nil {
				return started, err
			}
			out, from := sb.out[:0], 0
			for _, q := range sb.cuts {
				out = append(append(out, c[from:q]...), '.')
				from = q
			}
			out = append(out, c[from:]...)
			sb.out = out[:0]
			if _, err := w.send(out); err != nil {
				return started, err
			}
			pos = off + int64(n)
			if _, err := f.Seek(pos, io.SeekStart); err != nil {
				return started, err
			}
		} else {
			for _, q := range sb.cuts {
				if err := w.sendFile(tc, f, off+int64(q)-pos); err != nil {
					return started, err
				}
				if _, err := w.send(stuffingDot); err != nil {
					return started, err
				}
				pos = off + int64(q)
			}
		}
		off += int64(n)
	}
	return started, w.sendFile(tc, f, size-pos)
}

var (
	dotLine     = []byte("\n.")
	stuffingDot = []byte{'.'}
)

// wireFileOf returns what RETR of message i can send from its file, if
// it can: rc's file, size and count of dot lines.
func (ss *session) wireFileOf(i int, rc io.Reader) (tc *net.TCPConn, f *os.File, size, dots int64, ok bool) {
	wf, isWF := rc.(store.WireFile)
	if !isWF || ss.drop.msgs[i].Size < sendfileMin {
		return nil, nil, 0, 0, false
	}
	if tc = ss.fileConn(); tc == nil {
		return nil, nil, 0, 0, false
	}
	f, size, dots = wf.WireFile()
	if size != ss.drop.msgs[i].Size || dots < 0 || dots > 0 && size/dots < rangePerDot {
		return nil, nil, 0, 0, false
	}
	return tc, f, size, dots, true
}
