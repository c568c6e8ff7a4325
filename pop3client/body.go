package pop3client

import (
	"context"
	"errors"
	"io"

	"github.com/postie-mail/postie/internal/wire"
)

// errBodyClosed is what a body returns when read after Close.
var errBodyClosed = errors.New("pop3client: read after Close of a message body")

// body streams the multi-line reply of RETR or TOP: the message with the
// stuffing dots removed, line ends as the server sent them (CRLF), up to
// but not including the terminating ".". The operation that began with
// the command lasts until the body is read to its end or closed: the
// context and deadline of the call that returned it still apply.
type body struct {
	c    *Client
	ctx  context.Context
	cmd  string
	dr   *wire.DotReader
	stop func() bool
	err  error // io.EOF at the end, errBodyClosed, or what broke the connection
}

func (b *body) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := ctxErr(b.ctx); err != nil {
		return 0, b.finish(err)
	}
	// Fill p from what is already buffered, but block at most once.
	n := 0
	for {
		m, err := b.dr.Read(p[n:])
		n += m
		if err == io.EOF {
			b.finish(nil)
			return n, io.EOF
		}
		if err != nil {
			return n, b.finish(err)
		}
		if n == len(p) || b.c.br.Buffered() == 0 {
			return n, nil
		}
	}
}

// finish ends the operation: err nil at the terminator, else the failure,
// which closes the connection. It returns the error Read reports.
func (b *body) finish(err error) error {
	c := b.c
	c.body = nil
	if err == nil {
		b.err = io.EOF
		c.end(b.ctx, b.cmd, b.stop, nil)
		return io.EOF
	}
	if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		err = c.readErr(b.cmd, err)
	}
	b.err = c.end(b.ctx, b.cmd, b.stop, err)
	return b.err
}

// Close reads and discards the rest of the message, so that the
// connection can carry the next command (within the context of the call
// that returned the body). Reads after Close fail. It returns an error
// only when the rest could not be read; the connection is then closed.
func (b *body) Close() error {
	switch b.err {
	case nil:
		if _, err := io.Copy(io.Discard, b); err != nil {
			return err
		}
	case io.EOF, errBodyClosed:
	default:
		return nil // Read has reported the failure
	}
	b.err = errBodyClosed
	return nil
}
