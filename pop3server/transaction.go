package pop3server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/store"
)

// message resolves a message-number argument (RFC 1939 §5: numbers start
// at 1; deleted messages may not be referred to). It returns the 0-based
// index, or the error that answers the command.
func (ss *session) message(arg string) (int, error) {
	n, ok := wire.ParseNumber(arg)
	if !ok {
		return 0, badCommand(errBadMessageNumber)
	}
	if n < 1 || n > len(ss.drop.msgs) {
		return 0, errNoSuchMessage
	}
	if ss.drop.deleted[n-1] {
		return 0, errMessageDeleted
	}
	return n - 1, nil
}

// appendStat appends "N SIZE" for the messages not marked deleted.
func (ss *session) appendStat(b []byte) []byte {
	b = strconv.AppendInt(b, int64(len(ss.drop.msgs)-ss.drop.ndel), 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, ss.drop.total-ss.drop.delSize, 10)
}

func (ss *session) write(b []byte) {
	ss.conn.w.Write(b)
	if ss.tracing {
		ss.traceReply(string(b))
	}
}

// RFC 1939 §5 STAT.
func (ss *session) cmdStat(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("STAT")
	}
	var buf [48]byte
	b := append(buf[:0], "+OK "...)
	b = append(ss.appendStat(b), '\r', '\n')
	ss.write(b)
	return ss.ok("")
}

// RFC 1939 §5 LIST [msg].
func (ss *session) cmdList(c *wire.Command) error {
	return ss.listing(c, func(b []byte, i int) []byte {
		return strconv.AppendInt(b, ss.drop.msgs[i].Size, 10)
	})
}

// RFC 1939 §7 UIDL [msg].
func (ss *session) cmdUidl(c *wire.Command) error {
	return ss.listing(c, func(b []byte, i int) []byte {
		return append(b, ss.drop.msgs[i].UID...)
	})
}

// listing answers LIST and UIDL: one message, or all not marked deleted.
func (ss *session) listing(c *wire.Command, field func([]byte, int) []byte) error {
	var buf [128]byte
	switch len(c.Args) {
	case 0:
		b := append(buf[:0], "+OK "...)
		switch {
		case ss.translated() && c.Verb == "LIST":
			b = append(b, ss.textf(textListing, strconv.Itoa(len(ss.drop.msgs)-ss.drop.ndel), strconv.FormatInt(ss.drop.total-ss.drop.delSize, 10))...)
		case ss.translated():
			b = append(b, ss.text(textUIDListing)...)
		case c.Verb == "LIST":
			b = strconv.AppendInt(b, int64(len(ss.drop.msgs)-ss.drop.ndel), 10)
			b = append(b, " messages ("...)
			b = strconv.AppendInt(b, ss.drop.total-ss.drop.delSize, 10)
			b = append(b, " octets)"...)
		default:
			b = append(b, textUIDListing...)
		}
		ss.write(append(b, '\r', '\n'))
		for i := range ss.drop.msgs {
			if ss.drop.deleted[i] {
				continue
			}
			b = strconv.AppendInt(buf[:0], int64(i+1), 10)
			b = append(b, ' ')
			b = append(field(b, i), '\r', '\n')
			ss.write(b)
		}
		return ss.ok(".\r\n")
	case 1:
		i, err := ss.message(c.Args[0])
		if err != nil {
			return err
		}
		b := append(buf[:0], "+OK "...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, ' ')
		b = append(field(b, i), '\r', '\n')
		ss.write(b)
		return ss.ok("")
	}
	return badCommand(errTooManyArgs)
}

// RFC 1939 §5 RETR msg.
func (ss *session) cmdRetr(c *wire.Command) error {
	if len(c.Args) != 1 {
		return usage("RETR message-number")
	}
	i, err := ss.message(c.Args[0])
	if err != nil {
		return err
	}
	size := ss.drop.msgs[i].Size
	if err := ss.send(i, "+OK "+strconv.FormatInt(size, 10)+" "+ss.text(textOctets)+"\r\n", -1); err != nil {
		return err
	}
	ss.retrieved(i)
	ss.drop.retr++
	ss.drop.retrBytes += size
	ss.drop.last = max(ss.drop.last, i+1)
	return ss.ok("")
}

// RFC 1939 §7 TOP msg n.
func (ss *session) cmdTop(c *wire.Command) error {
	if len(c.Args) != 2 {
		return usage("TOP message-number lines")
	}
	i, err := ss.message(c.Args[0])
	if err != nil {
		return err
	}
	k, ok := wire.ParseNumber(c.Args[1])
	if !ok {
		return badCommand(errBadLineCount)
	}
	if err := ss.send(i, "+OK "+ss.text(textTop)+"\r\n", k); err != nil {
		return err
	}
	if ss.drop.sent == ss.drop.msgs[i].Size {
		// Every line went out: as good as RETR for EXPIRE.
		ss.retrieved(i)
	}
	ss.drop.top++
	return ss.ok("")
}

// send streams message i as a multi-line response after the status line
// head: whole when lines < 0, else header plus that many body lines. It
// returns nil once the message is sent. A message that cannot be opened,
// or turns out unsendable before any of the reply went out, is an error
// the command answers with -ERR, and the session goes on. Once "+OK" is
// out, a message that cannot be sent whole and exactly as sized cannot be
// answered with -ERR, so the connection is dropped (endSession) rather
// than the client handed a short message.
func (ss *session) send(i int, head string, lines int) error {
	ctx := ss.srv.ctx
	if ss.srv.opts.UTF8Strict && !ss.utf8 {
		if err := ss.checkASCIIHeader(i); err != nil {
			return err
		}
	}
	rc, err := ss.drop.md.Open(ctx, ss.storeIndex(i))
	if err != nil {
		return failed(opOpenMessage, err, slog.Int("msg", i+1))
	}
	defer rc.Close()
	if lines < 0 {
		if tc, f, size, dots, ok := ss.wireFileOf(i, rc); ok {
			if done, err := ss.sendWireFile(i, tc, f, size, dots, head); done {
				return err
			}
		}
	}
	return ss.stream(i, rc, head, lines)
}

// stream sends message i from rc through a pooled message writer, after
// the replies waiting (those of pipelined commands before it) and the
// status line head: they go out with the message's first bytes, in one
// write, not one of their own. A message found unsendable (changed since
// the snapshot) before anything of it went out is answered -ERR instead,
// after the replies before it, and the session goes on; after that, the
// connection is dropped without the final ".".
func (ss *session) stream(i int, rc io.Reader, head string, lines int) error {
	pool := &smallMsgWriters
	if ss.drop.msgs[i].Size >= bigMessage {
		pool = &bigMsgWriters
	}
	mw := pool.Get().(*msgWriter)
	defer pool.Put(mw)
	dw := mw.dw
	dw.Reset(&ss.conn.w)
	defer dw.Reset(nil)
	sent := ss.conn.w.sent
	dw.WriteRaw(ss.conn.w.lend())
	dw.WriteRaw([]byte(head))

	src := rc
	if lines >= 0 {
		src = wire.NewTopReader(rc, lines)
	}
	_, err := dw.Copy(src, mw.in)
	if err == nil {
		err = dw.EndLine()
	}
	if err == nil && lines < 0 && dw.Size() != ss.drop.msgs[i].Size {
		err = errors.New("size differs from the snapshot: " + strconv.FormatInt(dw.Size(), 10) + " octets read, " + strconv.FormatInt(ss.drop.msgs[i].Size, 10) + " listed")
	}
	msg := slog.Int("msg", i+1)
	switch {
	case err != nil && ss.conn.w.err != nil:
		// The client stopped reading (write timeout) or went away: not
		// a store failure.
		ss.conn.w.settle()
		ss.log(slog.LevelInfo, "client not taking the message; dropping connection", msg, slog.Any("err", ss.conn.w.err))
		return errWriteFailed
	case err != nil && ss.conn.w.sent == sent:
		// Nothing went out: take the status line and the message
		// back, keep the replies before them. Whatever the cause, the
		// message is not what the snapshot listed.
		ss.conn.w.restore()
		return failed(opReadMessage, fmt.Errorf("%w: %w", store.ErrMessageGone, err), msg)
	case err != nil:
		ss.conn.w.settle()
		ss.log(slog.LevelError, "message not sent whole; dropping connection", msg, slog.Any("err", err))
		return endSession("message read failed")
	}
	err = dw.Close()
	if err == nil {
		err = dw.Flush()
	}
	ss.conn.w.settle()
	if err != nil {
		return errWriteFailed
	}
	ss.drop.sent = dw.Size()
	if ss.tracing {
		ss.traceMessage(strings.Clone(head), dw.Size()) // head must not escape (see reply)
	}
	return nil
}

// RFC 1939 §5 DELE msg: only marks; removal waits for UPDATE.
func (ss *session) cmdDele(c *wire.Command) error {
	if len(c.Args) != 1 {
		return usage("DELE message-number")
	}
	i, err := ss.message(c.Args[0])
	if err != nil {
		return err
	}
	ss.drop.deleted[i] = true
	ss.drop.ndel++
	ss.drop.delSize += ss.drop.msgs[i].Size
	ss.drop.last = max(ss.drop.last, i+1)
	return ss.ok("+OK " + ss.textf(textDeleted, strconv.Itoa(i+1)) + "\r\n")
}

// RFC 1939 §5 RSET.
func (ss *session) cmdRset(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("RSET")
	}
	clear(ss.drop.deleted)
	ss.drop.ndel, ss.drop.delSize, ss.drop.last = 0, 0, 0
	return ss.ok("+OK " + ss.textf(textRset, strconv.Itoa(len(ss.drop.msgs)), strconv.FormatInt(ss.drop.total, 10)) + "\r\n")
}

// RFC 1939 §5 NOOP.
func (ss *session) cmdNoop(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("NOOP")
	}
	return ss.ok("+OK\r\n")
}

// RFC 1460 LAST (removed from RFC 1939, still sent by some old clients):
// the highest message number accessed.
func (ss *session) cmdLast(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("LAST")
	}
	return ss.ok("+OK " + strconv.Itoa(ss.drop.last) + "\r\n")
}

// RFC 1939 §6 QUIT → UPDATE: remove the messages marked deleted, then
// release the lock. Deletions run without the session's cancellation: a
// server closing mid-UPDATE still finishes them.
func (ss *session) cmdQuit(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("QUIT")
	}
	ss.state = pop3.StateUpdate
	ss.endReason = "quit"
	ss.markRetrieved()
	var del []int
	if ss.drop.ndel > 0 || ss.drop.retrieved != nil {
		del = make([]int, 0, ss.drop.ndel)
		for i, d := range ss.drop.deleted {
			if d || ss.implicitDele(i) {
				del = append(del, ss.storeIndex(i))
			}
		}
	}
	var err error
	if len(del) > 0 {
		err = ss.drop.md.Commit(context.WithoutCancel(ss.srv.ctx), del)
	}
	// The lock goes before the reply: a client that logs in again as
	// soon as it reads +OK must not meet its own old session's lock.
	ss.closeMaildrop()
	if err != nil {
		return failed(opCommit, err)
	}
	ss.drop.dele = len(del)
	ss.reply("+OK " + ss.textf(textByeDeleted, strconv.Itoa(len(del))) + "\r\n")
	return nil
}

// errNeedsUTF8 refuses a message with UTF-8 in its header to a session
// not in UTF-8 mode (RFC 6856 §5: the client may try again in UTF-8 mode,
// which it can enable only before login).
var errNeedsUTF8 = &pop3.Error{Code: pop3.CodeUTF8, Text: "message has UTF-8 header fields; log in again and send UTF8 before USER or AUTH"}

// checkASCIIHeader returns errNeedsUTF8 when the header of message i
// holds an octet outside ASCII: RFC 6856 §2.1 forbids sending such a
// message as is to a client that has not enabled UTF-8 mode. The header
// is read once more, up to its empty line, and not kept.
func (ss *session) checkASCIIHeader(i int) error {
	rc, err := ss.drop.md.Open(ss.srv.ctx, ss.storeIndex(i))
	if err != nil {
		return failed(opOpenMessage, err, slog.Int("msg", i+1))
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 4096)
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		if lineStart && (string(line) == "\n" || string(line) == "\r\n") {
			return nil // the end of the header
		}
		for _, b := range line {
			if b >= 0x80 {
				return errNeedsUTF8
			}
		}
		switch err {
		case nil:
			lineStart = true
		case bufio.ErrBufferFull:
			lineStart = false // the same line goes on
		case io.EOF:
			return nil // a message that is all header
		default:
			return failed(opReadMessage, err, slog.Int("msg", i+1))
		}
	}
}
