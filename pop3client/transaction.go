package pop3client

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"github.com/postie-mail/postie/internal/wire"
)

// MessageInfo describes a message of the maildrop as listed in this
// session.
type MessageInfo struct {
	// Num is the message number, from 1; it is valid for this session
	// only (RFC 1939 §5).
	Num int
	// Size is the size in octets as the server sends the message (CRLF
	// line ends, before byte-stuffing), or 0 when not listed.
	Size int64
	// UID is the unique-id listing (RFC 1939 §7), stable across sessions,
	// or "" when not asked for.
	UID string
}

// pipelineWindow is how many commands a batch sends before reading their
// replies: few enough that the commands never fill the socket buffers
// while the server waits for its replies to be read (RFC 2449 §6.6).
const pipelineWindow = 64

// Stat returns the number of messages and their total size (RFC 1939 §5
// STAT), not counting those marked deleted.
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	err = c.op(ctx, "STAT", func() error {
		text, err := c.command("STAT", "STAT", "STAT")
		if err != nil {
			return err
		}
		count, size, err = parseNumSize("STAT", text)
		return err
	})
	return count, size, err
}

// List returns every message's number and size (RFC 1939 §5 LIST), not
// those marked deleted.
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	var msgs []MessageInfo
	err := c.op(ctx, "LIST", func() error {
		var err error
		msgs, err = c.list(true)
		return err
	})
	return msgs, err
}

// ListOne returns the size of message n (RFC 1939 §5 LIST msg).
func (c *Client) ListOne(ctx context.Context, n int) (int64, error) {
	var size int64
	err := c.one(ctx, "LIST", n, func(text string) error {
		num, sz, err := parseNumSize("LIST "+strconv.Itoa(n), text)
		if err == nil && num != n {
			err = protoErr("LIST "+strconv.Itoa(n), ErrMalformed, []byte(text))
		}
		size = sz
		return err
	})
	return size, err
}

// UIDL returns every message's number and unique id (RFC 1939 §7 UIDL),
// not those marked deleted. Size is left 0.
func (c *Client) UIDL(ctx context.Context) ([]MessageInfo, error) {
	var msgs []MessageInfo
	err := c.op(ctx, "UIDL", func() error {
		var err error
		msgs, err = c.list(false)
		return err
	})
	return msgs, err
}

// UIDLOne returns the unique id of message n (RFC 1939 §7 UIDL msg).
func (c *Client) UIDLOne(ctx context.Context, n int) (string, error) {
	var uid string
	err := c.one(ctx, "UIDL", n, func(text string) error {
		num, u, err := parseNumUID("UIDL "+strconv.Itoa(n), text)
		if err == nil && num != n {
			err = protoErr("UIDL "+strconv.Itoa(n), ErrMalformed, []byte(text))
		}
		uid = u
		return err
	})
	return uid, err
}

// ListAndUIDL returns every message with its size and unique id: LIST
// and UIDL in one round trip when the server announces PIPELINING, one
// after the other otherwise. If either command fails, so does the call.
func (c *Client) ListAndUIDL(ctx context.Context) ([]MessageInfo, error) {
	var list, uids []MessageInfo
	var refused error
	err := c.op(ctx, "LIST", func() error {
		if err := c.ensureCaps(); err != nil {
			return err
		}
		return c.batch("LIST", []string{"LIST", "UIDL"}, func(i int) error {
			var err error
			if i == 0 {
				list, err = c.readList(true)
			} else {
				uids, err = c.readList(false)
			}
			var perr *Error
			if errors.As(err, &perr) && perr == err {
				if refused == nil {
					refused = err
				}
				return nil
			}
			return err
		})
	})
	if err == nil {
		err = refused
	}
	if err != nil {
		return nil, err
	}
	byNum := make(map[int]string, len(uids))
	for _, u := range uids {
		byNum[u.Num] = u.UID
	}
	for i := range list {
		list[i].UID = byNum[list[i].Num]
	}
	return list, nil
}

// Retr retrieves message n (RFC 1939 §5 RETR). The message streams: the
// reader yields it as sent, with CRLF line ends and the stuffing dots
// removed, and io.EOF after its last line. ctx governs the whole
// transfer. Close the reader before the next command (Close discards
// what was not read; a new command does the same to a reader left open).
func (c *Client) Retr(ctx context.Context, n int) (io.ReadCloser, error) {
	if n < 1 {
		return nil, badNumber("RETR", n)
	}
	return c.retrieve(ctx, "RETR "+strconv.Itoa(n))
}

// Top retrieves the header of message n and the first lines lines of its
// body (RFC 1939 §7 TOP), streaming as Retr does.
func (c *Client) Top(ctx context.Context, n, lines int) (io.ReadCloser, error) {
	if n < 1 {
		return nil, badNumber("TOP", n)
	}
	if lines < 0 {
		return nil, &opError{cmd: "TOP", err: errors.New("negative line count"), usable: true}
	}
	return c.retrieve(ctx, "TOP "+strconv.Itoa(n)+" "+strconv.Itoa(lines))
}

func (c *Client) retrieve(ctx context.Context, line string) (io.ReadCloser, error) {
	stop, err := c.begin(ctx, line)
	if err != nil {
		return nil, err
	}
	if _, err := c.command(line, line, line); err != nil {
		return nil, c.end(ctx, line, stop, err)
	}
	b := &body{c: c, ctx: ctx, cmd: line, dr: wire.NewDotReader(c.br), stop: stop}
	c.body = b
	return b, nil
}

// Dele marks message n deleted (RFC 1939 §5 DELE). It is removed only
// when Quit succeeds.
func (c *Client) Dele(ctx context.Context, n int) error {
	return c.one(ctx, "DELE", n, nil)
}

// DeleMany marks the messages deleted, in batches when the server
// announces PIPELINING and one at a time otherwise. Every number is
// tried; the refusals come back joined (each an *Error).
func (c *Client) DeleMany(ctx context.Context, nums []int) error {
	lines, err := numberedLines("DELE", nums)
	if err != nil {
		return err
	}
	if len(nums) == 0 {
		return c.usable()
	}
	var refused []error
	err = c.op(ctx, "DELE", func() error {
		if err := c.ensureCaps(); err != nil {
			return err
		}
		return c.batch("DELE", lines, func(i int) error {
			_, err := c.readStatus(lines[i])
			var perr *Error
			if errors.As(err, &perr) && perr == err {
				refused = append(refused, err)
				return nil
			}
			return err
		})
	})
	if err != nil {
		return err
	}
	return errors.Join(refused...)
}

// Rset unmarks the messages marked deleted (RFC 1939 §5 RSET).
func (c *Client) Rset(ctx context.Context) error { return c.simple(ctx, "RSET") }

// Noop does nothing but get a +OK (RFC 1939 §5 NOOP): a keep-alive.
func (c *Client) Noop(ctx context.Context) error { return c.simple(ctx, "NOOP") }

// Quit ends the session (RFC 1939 §6): after login, the server removes
// the messages marked deleted. A nil error means they are gone; an *Error
// (typically with code SYS/TEMP) means some or all of them are still
// there; after any other error (no reply) it is unknown which. The
// connection is closed in every case.
func (c *Client) Quit(ctx context.Context) error {
	err := c.simple(ctx, "QUIT")
	c.Close()
	return err
}

func (c *Client) simple(ctx context.Context, cmd string) error {
	return c.op(ctx, cmd, func() error {
		_, err := c.command(cmd, cmd, cmd)
		return err
	})
}

// one runs "CMD n" and hands the +OK text to f, if f is not nil.
func (c *Client) one(ctx context.Context, cmd string, n int, f func(text string) error) error {
	if n < 1 {
		return badNumber(cmd, n)
	}
	line := cmd + " " + strconv.Itoa(n)
	return c.op(ctx, line, func() error {
		text, err := c.command(line, line, line)
		if err != nil || f == nil {
			return err
		}
		return f(text)
	})
}

// numberedLines returns the command lines "cmd n" for nums, or the error
// for the first number that is not a message number.
func numberedLines(cmd string, nums []int) ([]string, error) {
	lines := make([]string, len(nums))
	for i, n := range nums {
		if n < 1 {
			return nil, badNumber(cmd, n)
		}
		lines[i] = cmd + " " + strconv.Itoa(n)
	}
	return lines, nil
}

func badNumber(cmd string, n int) error {
	return &opError{cmd: cmd, err: errors.New("invalid message number " + strconv.Itoa(n)), usable: true}
}

// batch writes the command lines, a window at a time when pipelining and
// one at a time otherwise, and calls read for each command's reply in
// order after its window is sent.
func (c *Client) batch(name string, lines []string, read func(i int) error) error {
	window := 1
	if c.pipelining() {
		window = pipelineWindow
	}
	for start := 0; start < len(lines); start += window {
		end := min(start+window, len(lines))
		for _, l := range lines[start:end] {
			c.writeLine(l, l)
		}
		if err := c.flush(name); err != nil {
			return err
		}
		for i := start; i < end; i++ {
			if err := read(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// list sends LIST (sizes true) or UIDL and reads the listing.
func (c *Client) list(sizes bool) ([]MessageInfo, error) {
	cmd := "UIDL"
	if sizes {
		cmd = "LIST"
	}
	c.writeLine(cmd, cmd)
	if err := c.flush(cmd); err != nil {
		return nil, err
	}
	return c.readList(sizes)
}

// readList reads the reply to LIST (sizes true) or UIDL.
func (c *Client) readList(sizes bool) ([]MessageInfo, error) {
	cmd := "UIDL"
	if sizes {
		cmd = "LIST"
	}
	if _, err := c.readStatus(cmd); err != nil {
		return nil, err
	}
	var msgs []MessageInfo
	err := c.readListing(cmd, func(line []byte) error {
		var m MessageInfo
		var err error
		if sizes {
			m.Num, m.Size, err = parseNumSize(cmd, string(line))
		} else {
			m.Num, m.UID, err = parseNumUID(cmd, string(line))
		}
		msgs = append(msgs, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// parseNumSize reads "n size", as in STAT, LIST n and scan listings;
// RFC 1939 §5 lets servers put more after the size.
func parseNumSize(cmd, text string) (int, int64, error) {
	f := strings.Fields(text)
	if len(f) >= 2 {
		n, ok1 := parseCount(f[0])
		size, ok2 := parseSize(f[1])
		if ok1 && ok2 {
			return n, size, nil
		}
	}
	return 0, 0, protoErr(cmd, ErrMalformed, []byte(text))
}

// parseNumUID reads "n uid" (RFC 1939 §7: the unique id is 1–70
// characters in 0x21–0x7E; longer ones are accepted).
func parseNumUID(cmd, text string) (int, string, error) {
	num, uid, ok := strings.Cut(text, " ")
	n, ok1 := parseCount(num)
	uid = strings.TrimRight(uid, " ")
	if ok && ok1 && n > 0 && uid != "" && printable(uid) {
		return n, uid, nil
	}
	return 0, "", protoErr(cmd, ErrMalformed, []byte(text))
}

func parseCount(s string) (int, bool) { return wire.ParseNumber(s) }

func parseSize(s string) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
