package pop3server

import (
	"context"
	"errors"
	"io"
	"strconv"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/store"
)

// message resolves a message-number argument (RFC 1939 §5: numbers start
// at 1; deleted messages may not be referred to). It returns the 0-based
// index, or false after answering.
func (ss *session) message(arg string) (int, bool) {
	n, ok := wire.ParseNumber(arg)
	if !ok {
		ss.fail("-ERR invalid message number\r\n")
		return 0, false
	}
	if n < 1 || n > len(ss.msgs) {
		ss.refuse("-ERR no such message\r\n")
		return 0, false
	}
	if ss.deleted[n-1] {
		ss.refuse("-ERR message already deleted\r\n")
		return 0, false
	}
	return n - 1, true
}

// appendStat appends "N SIZE" for the messages not marked deleted.
func (ss *session) appendStat(b []byte) []byte {
	b = strconv.AppendInt(b, int64(len(ss.msgs)-ss.ndel), 10)
	b = append(b, ' ')
	return strconv.AppendInt(b, ss.total-ss.delSize, 10)
}

func (ss *session) write(b []byte) { ss.bw.Write(b) }

// RFC 1939 §5 STAT.
func (ss *session) cmdStat(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR STAT takes no arguments\r\n")
	}
	var buf [48]byte
	b := append(buf[:0], "+OK "...)
	b = append(ss.appendStat(b), '\r', '\n')
	ss.write(b)
	return ss.ok("")
}

// RFC 1939 §5 LIST [msg].
func (ss *session) cmdList(c *wire.Command) bool {
	return ss.listing(c, func(b []byte, i int) []byte {
		return strconv.AppendInt(b, ss.msgs[i].Size, 10)
	})
}

// RFC 1939 §7 UIDL [msg].
func (ss *session) cmdUidl(c *wire.Command) bool {
	return ss.listing(c, func(b []byte, i int) []byte {
		return append(b, ss.msgs[i].UID...)
	})
}

// listing answers LIST and UIDL: one message, or all not marked deleted.
func (ss *session) listing(c *wire.Command, field func([]byte, int) []byte) bool {
	var buf [128]byte
	switch len(c.Args) {
	case 0:
		b := append(buf[:0], "+OK "...)
		if c.Verb == "LIST" {
			b = strconv.AppendInt(b, int64(len(ss.msgs)-ss.ndel), 10)
			b = append(b, " messages ("...)
			b = strconv.AppendInt(b, ss.total-ss.delSize, 10)
			b = append(b, " octets)\r\n"...)
		} else {
			b = append(b, "unique-id listing follows\r\n"...)
		}
		ss.write(b)
		for i := range ss.msgs {
			if ss.deleted[i] {
				continue
			}
			b = strconv.AppendInt(buf[:0], int64(i+1), 10)
			b = append(b, ' ')
			b = append(field(b, i), '\r', '\n')
			ss.write(b)
		}
		return ss.ok(".\r\n")
	case 1:
		i, ok := ss.message(c.Args[0])
		if !ok {
			return ss.alive()
		}
		b := append(buf[:0], "+OK "...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, ' ')
		b = append(field(b, i), '\r', '\n')
		ss.write(b)
		return ss.ok("")
	}
	return ss.fail("-ERR too many arguments\r\n")
}

// alive reports whether the session goes on after a refused argument
// (message() has answered; a bad one may have hit the bad-command limit).
func (ss *session) alive() bool { return ss.endReason == "" }

// RFC 1939 §5 RETR msg.
func (ss *session) cmdRetr(c *wire.Command) bool {
	if len(c.Args) != 1 {
		return ss.fail("-ERR usage: RETR message-number\r\n")
	}
	i, ok := ss.message(c.Args[0])
	if !ok {
		return ss.alive()
	}
	size := ss.msgs[i].Size
	if sent, alive := ss.send(i, "+OK "+strconv.FormatInt(size, 10)+" octets\r\n", -1); !sent {
		return alive
	}
	ss.retr++
	ss.retrBytes += size
	ss.last = max(ss.last, i+1)
	return ss.ok("")
}

// RFC 1939 §7 TOP msg n.
func (ss *session) cmdTop(c *wire.Command) bool {
	if len(c.Args) != 2 {
		return ss.fail("-ERR usage: TOP message-number lines\r\n")
	}
	i, ok := ss.message(c.Args[0])
	if !ok {
		return ss.alive()
	}
	k, ok := wire.ParseNumber(c.Args[1])
	if !ok {
		return ss.fail("-ERR invalid number of lines\r\n")
	}
	if sent, alive := ss.send(i, "+OK top of message follows\r\n", k); !sent {
		return alive
	}
	ss.top++
	return ss.ok("")
}

// send streams message i as a multi-line response after the status line
// head: whole when lines < 0, else header plus that many body lines. It
// reports whether the message was sent, and whether the session goes on.
// A message that cannot be opened, or turns out unsendable before any of
// the reply went out, is answered -ERR (not sent, session alive). Once
// "+OK" is out, a message that cannot be sent whole and exactly as sized
// cannot be answered with -ERR, so the connection is dropped rather than
// the client handed a short message.
func (ss *session) send(i int, head string, lines int) (sent, alive bool) {
	ctx := ss.srv.ctx
	rc, err := ss.md.Open(ctx, i)
	if err != nil {
		if errors.Is(err, store.ErrMessageGone) {
			ss.srv.log.Warn("message vanished", "session", ss.id, "user", ss.user, "msg", i+1, "err", err)
			return false, ss.refuse("-ERR message no longer available\r\n")
		}
		ss.srv.log.Error("opening message", "session", ss.id, "user", ss.user, "msg", i+1, "err", err)
		ss.srv.stats.storeErrors.Add(1)
		return false, ss.refuse("-ERR [SYS/TEMP] unable to read message\r\n")
	}
	defer rc.Close()
	// The replies of pipelined commands before this one are kept apart
	// from the status line, in case the message turns out unsendable
	// before anything went out.
	ss.held.b = ss.held.b[:0]
	if ss.bw.Buffered() > 0 {
		ss.dw.into = &ss.held
		ss.bw.Flush()
		ss.dw.into = nil
	}
	ss.reply(head)
	return ss.stream(i, rc, lines)
}

// stream sends message i from rc through a pooled message writer, after
// the replies waiting (those of pipelined commands before it, then the
// status line): they go out with the message's first bytes, in one write,
// not one of their own. A message found unsendable (changed since the
// snapshot) before anything of it went out is answered -ERR instead, and
// the session goes on; after that, the connection is dropped without the
// final ".".
func (ss *session) stream(i int, rc io.Reader, lines int) (sent, alive bool) {
	pool := &smallMsgWriters
	if ss.msgs[i].Size >= bigMessage {
		pool = &bigMsgWriters
	}
	mw := pool.Get().(*msgWriter)
	defer pool.Put(mw)
	ss.sw = deadlineWriter{c: ss.conn, timeout: ss.dw.timeout}
	dw := mw.dw
	dw.Reset(&ss.sw)
	defer dw.Reset(nil)
	dw.WriteRaw(ss.held.b)
	ss.dw.into = rawWriter{dw}
	err := ss.bw.Flush()
	ss.dw.into = nil
	if err != nil {
		ss.endReason = "write failed"
		return false, false
	}

	src := rc
	if lines >= 0 {
		src = wire.NewTopReader(rc, lines)
	}
	_, err = dw.Copy(src, mw.in)
	if err == nil {
		err = dw.EndLine()
	}
	if err == nil && lines < 0 && dw.Size() != ss.msgs[i].Size {
		err = errors.New("size differs from the snapshot: " + strconv.FormatInt(dw.Size(), 10) + " octets read, " + strconv.FormatInt(ss.msgs[i].Size, 10) + " listed")
	}
	if err != nil && ss.sw.err != nil {
		// The client stopped reading (write timeout) or went away: not
		// a store failure.
		ss.endReason = "write failed"
		ss.srv.log.Info("client not taking the message; dropping connection", "session", ss.id, "user", ss.user, "msg", i+1, "err", ss.sw.err)
		return false, false
	}
	if err != nil && ss.sw.sent == 0 {
		// Nothing went out: take the status line and the message
		// back, keep the replies before them.
		ss.bw.Write(ss.held.b)
		ss.srv.log.Warn("message vanished while being read", "session", ss.id, "user", ss.user, "msg", i+1, "err", err)
		return false, ss.refuse("-ERR message no longer available\r\n")
	}
	if err != nil {
		ss.srv.log.Error("message not sent whole; dropping connection", "session", ss.id, "user", ss.user, "msg", i+1, "err", err)
		ss.endReason = "message read failed"
		return false, false
	}
	if err := dw.Close(); err != nil || dw.Flush() != nil {
		ss.endReason = "write failed"
		return false, false
	}
	return true, true
}

// RFC 1939 §5 DELE msg: only marks; removal waits for UPDATE.
func (ss *session) cmdDele(c *wire.Command) bool {
	if len(c.Args) != 1 {
		return ss.fail("-ERR usage: DELE message-number\r\n")
	}
	i, ok := ss.message(c.Args[0])
	if !ok {
		return ss.alive()
	}
	ss.deleted[i] = true
	ss.ndel++
	ss.delSize += ss.msgs[i].Size
	ss.last = max(ss.last, i+1)
	return ss.ok("+OK message " + strconv.Itoa(i+1) + " deleted\r\n")
}

// RFC 1939 §5 RSET.
func (ss *session) cmdRset(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR RSET takes no arguments\r\n")
	}
	clear(ss.deleted)
	ss.ndel, ss.delSize, ss.last = 0, 0, 0
	var buf [64]byte
	b := append(buf[:0], "+OK maildrop has "...)
	b = strconv.AppendInt(b, int64(len(ss.msgs)), 10)
	b = append(b, " messages ("...)
	b = strconv.AppendInt(b, ss.total, 10)
	b = append(b, " octets)\r\n"...)
	ss.write(b)
	return ss.ok("")
}

// RFC 1939 §5 NOOP.
func (ss *session) cmdNoop(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR NOOP takes no arguments\r\n")
	}
	return ss.ok("+OK\r\n")
}

// RFC 1460 LAST (removed from RFC 1939, still sent by some old clients):
// the highest message number accessed.
func (ss *session) cmdLast(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR LAST takes no arguments\r\n")
	}
	return ss.ok("+OK " + strconv.Itoa(ss.last) + "\r\n")
}

// RFC 1939 §6 QUIT → UPDATE: remove the messages marked deleted, then
// release the lock. Deletions run without the session's cancellation: a
// server closing mid-UPDATE still finishes them.
func (ss *session) cmdQuit(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR QUIT takes no arguments\r\n")
	}
	ss.state = pop3.StateUpdate
	ss.endReason = "quit"
	var del []int
	if ss.ndel > 0 {
		del = make([]int, 0, ss.ndel)
		for i, d := range ss.deleted {
			if d {
				del = append(del, i)
			}
		}
	}
	var err error
	if len(del) > 0 {
		err = ss.md.Commit(context.WithoutCancel(ss.srv.ctx), del)
	}
	// The lock goes before the reply: a client that logs in again as
	// soon as it reads +OK must not meet its own old session's lock.
	ss.closeMaildrop()
	if err != nil {
		ss.srv.log.Error("deleting messages", "session", ss.id, "user", ss.user, "err", err)
		ss.srv.stats.storeErrors.Add(1)
		ss.reply("-ERR [SYS/TEMP] some deleted messages not removed\r\n")
		return false
	}
	ss.dele = len(del)
	ss.reply("+OK bye, " + strconv.Itoa(len(del)) + " messages deleted\r\n")
	return false
}
