package pop3client

import (
	"context"
	"errors"
	"io"

	"github.com/postie-mail/postie/internal/wire"
)

// RetrMany retrieves the messages nums in order and calls f for each with
// its index in nums and either its body (the message with the stuffing
// dots removed, as Retr's) or, when the server refused it, the *Error of
// its -ERR (body nil). f must not call the Client: the connection is busy
// until RetrMany returns. What f leaves of a body unread is read and
// discarded before the next message.
//
// When the server announces PIPELINING (RFC 2449 §6.6), RetrMany keeps up
// to ahead RETR commands sent beyond the one being read, so that the
// server sends the next message while f still handles this one, instead
// of waiting a round trip each time; with ahead 0, or without PIPELINING,
// it sends one RETR at a time, as Retr does. Note that every message
// whose RETR was sent is sent whole by the server: a server with
// EXPIRE 0 (RFC 2449 §6.7) may then delete it at QUIT although f never
// saw it. Callers that care pass ahead 0 to such servers.
//
// A non-nil error from f stops RetrMany: it reads and discards the
// replies to the RETR commands already sent, so that the connection can
// carry the next command, and returns f's error. Any other error is
// the connection's, and closes it.
func (c *Client) RetrMany(ctx context.Context, nums []int, ahead int, f func(i int, body io.Reader, err error) error) error {
	lines, err := numberedLines("RETR", nums)
	if err != nil {
		return err
	}
	if len(nums) == 0 {
		return c.usable()
	}
	var ferr error // f's, which stopped the loop
	err = c.op(ctx, "RETR", func() error {
		if err := c.ensureCaps(); err != nil {
			return err
		}
		if !c.pipelining() || ahead < 0 {
			ahead = 0
		}
		sent := 0
		send := func(upto int) error {
			if upto <= sent {
				return nil
			}
			for ; sent < upto; sent++ {
				c.writeLine(lines[sent], lines[sent])
			}
			return c.flush(lines[sent-1])
		}
		for i := range lines {
			if ferr == nil {
				if err := send(min(len(lines), i+1+ahead)); err != nil {
					return err
				}
			} else if i >= sent {
				break
			}
			_, err := c.readStatus(lines[i])
			var perr *Error
			refused := errors.As(err, &perr) && perr == err
			if err != nil && !refused {
				return err
			}
			var body *manyBody
			if !refused {
				body = &manyBody{c: c, cmd: lines[i], dr: wire.NewDotReader(c.br)}
			}
			if ferr == nil {
				if refused {
					ferr = f(i, nil, err)
				} else {
					ferr = f(i, body, nil)
				}
			}
			if body != nil {
				if _, err := io.Copy(io.Discard, body); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return ferr
}

// manyBody is a message of RetrMany: its errors are the connection's, as
// a Retr body's are.
type manyBody struct {
	c   *Client
	cmd string
	dr  *wire.DotReader
}

func (b *manyBody) Read(p []byte) (int, error) {
	n, err := b.dr.Read(p)
	if err != nil && err != io.EOF {
		err = b.c.readErr(b.cmd, err)
	}
	return n, err
}
