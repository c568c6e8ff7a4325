package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// message is one message of the server being fetched.
type message struct {
	num  int       // message number in this session
	id   string    // the state key: the UIDL, or a hash when there is none
	size int64     // size as LIST gave it
	ord  int       // 1 for the first message fetched in this run, …
	at   time.Time // delivery time
}

// A destination receives messages in wire form (CRLF line ends, as RETR
// sends them, unstuffed).
//
// deliver returns durable == true when the message is safe on return;
// otherwise it is staged, and safe once flush returns. A *refusal is a
// message the destination would not take (it stays on the server); any
// other error stops the run.
type destination interface {
	// has reports whether an earlier run delivered m without recording it
	// (found by a recovery scan): m is then recorded without fetching it.
	has(m *message) bool
	deliver(ctx context.Context, m *message, r io.Reader) (durable bool, err error)
	// staged is how many messages and octets wait for flush.
	staged() (int, int64)
	// detach hands over what is staged: the returned function makes it
	// durable, and may run in another goroutine while deliver stages
	// more. A destination whose deliveries are all durable returns nil.
	detach() func() error
	close() error
}

// recoverer is a destination that can finish or undo a delivery found
// pending in the state (the previous run died during it). retr fetches the
// message again. It reports whether the message is delivered.
type recoverer interface {
	recoverPending(ctx context.Context, m *message, e *entry, retr func() (io.ReadCloser, error)) (bool, error)
}

// pendingFirst is a destination before whose deliveries a pending record
// is written (MDA, LMTP: the state then tells that a delivery may have
// happened).
type pendingFirst interface{ wantsPending() }

// refusal is a message the destination did not take: temporarily (MDA exit
// 75, LMTP 4xx) or for good. The message stays on the server.
type refusal struct {
	temp bool
	err  error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

func isRefusal(err error) (*refusal, bool) {
	var r *refusal
	ok := errors.As(err, &r)
	return r, ok
}

// countingReader counts what is read through it and calls hook once when
// half of want has been read (crash tests). With a limit, a message that
// turns out longer than limit octets (max_size; the server announced
// less) fails with a refusal once it passes it.
type countingReader struct {
	r     io.Reader
	n     int64
	want  int64
	limit int64
	half  func()
	tick  func(int)
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.half != nil && c.want > 1 && c.n < c.want/2 && int64(len(p)) > c.want/2-c.n {
		p = p[:c.want/2-c.n] // stop exactly at the half
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.limit > 0 && c.n > c.limit {
		return n, &refusal{err: fmt.Errorf("the server sent more than max_size (%d octets) of a message it announced as %d octets", c.limit, c.want)}
	}
	if c.tick != nil && n > 0 {
		c.tick(n)
	}
	if c.half != nil && c.n >= c.want/2 && c.want > 1 {
		h := c.half
		c.half = nil
		h()
	}
	return n, err
}
