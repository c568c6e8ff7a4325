package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// runRetr retrieves every message of each worker's maildrop in turn.
func runRetr(ctx context.Context, o *Options, res *Result) error {
	return retrLoop(ctx, o, res, func(msgs []pop3client.MessageInfo) ([]pop3client.MessageInfo, error) {
		if len(msgs) == 0 {
			return nil, errors.New("the maildrop is empty")
		}
		return msgs, nil
	})
}

// runBigRetr retrieves one message, the largest unless o.Message says.
func runBigRetr(ctx context.Context, o *Options, res *Result) error {
	return retrLoop(ctx, o, res, func(msgs []pop3client.MessageInfo) ([]pop3client.MessageInfo, error) {
		if len(msgs) == 0 {
			return nil, errors.New("the maildrop is empty")
		}
		if o.Message > 0 {
			for _, m := range msgs {
				if m.Num == o.Message {
					return []pop3client.MessageInfo{m}, nil
				}
			}
			return nil, fmt.Errorf("no message %d", o.Message)
		}
		big := msgs[0]
		for _, m := range msgs {
			if m.Size > big.Size {
				big = m
			}
		}
		return []pop3client.MessageInfo{big}, nil
	})
}

// errSize reports a message whose octets differ from its LIST size.
var errSize = errors.New("message size differs from LIST")

// retrLoop is the body of retr and bigretr: each worker logs in, lists,
// and retrieves the messages pick chooses in turn until the time is up,
// logging in again after an error.
func retrLoop(ctx context.Context, o *Options, res *Result, pick func([]pop3client.MessageInfo) ([]pop3client.MessageInfo, error)) error {
	popts := o.clientOptions(nil, nil)
	var rec recorder
	timedWorkers(ctx, o, res, &rec, func(slots []int, more func() bool) {
		buf := make([]byte, 256<<10)
		var lat []time.Duration
		var bytes int64
		var c *pop3client.Client
		var msgs []pop3client.MessageInfo
		next, k := 0, 0
		defer func() {
			if c != nil {
				c.Quit(ctx)
			}
			rec.add(lat, bytes)
		}()
		for more() {
			if c == nil {
				user, pass := o.Users.At(slots[k%len(slots)])
				k++
				var err error
				if c, msgs, err = openAndList(ctx, &rec, o.Addr, popts, user, pass, pick); err != nil {
					if ctx.Err() == nil {
						rec.fail(err)
						pause(ctx, 10*time.Millisecond)
					}
					continue
				}
				next = 0
			}
			m := msgs[next%len(msgs)]
			next++
			t0 := time.Now()
			n, err := retr(ctx, c, m, buf)
			if err != nil {
				if ctx.Err() == nil {
					rec.fail(err)
				}
				if !errors.Is(err, errSize) {
					c.Close()
					c = nil
				}
				continue
			}
			lat = append(lat, time.Since(t0))
			bytes += n
		}
	})
	return nil
}

func openAndList(ctx context.Context, rec *recorder, addr string, popts *pop3client.Options, user, pass string, pick func([]pop3client.MessageInfo) ([]pop3client.MessageInfo, error)) (*pop3client.Client, []pop3client.MessageInfo, error) {
	c, err := login(ctx, rec, addr, popts, user, pass)
	if err != nil {
		return nil, nil, err
	}
	all, err := c.List(ctx)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	msgs, err := pick(all)
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("%s: %w", user, err)
	}
	return c, msgs, nil
}

// retr retrieves message m whole and checks its size.
func retr(ctx context.Context, c *pop3client.Client, m pop3client.MessageInfo, buf []byte) (int64, error) {
	r, err := c.Retr(ctx, m.Num)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			r.Close()
			return n, err
		}
	}
	r.Close()
	if n != m.Size {
		return n, fmt.Errorf("RETR %d: %w: %d octets, listed %d", m.Num, errSize, n, m.Size)
	}
	return n, nil
}
