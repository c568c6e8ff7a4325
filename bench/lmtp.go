package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"time"
)

// lmtpMessage is what the lmtp scenario delivers: a typical 4 KiB message.
var lmtpMessage = "From: bench@example.net\r\nSubject: postie bench lmtp\r\n\r\n" +
	strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiu\r\n", 60)

// runLMTP: deliveries over LMTP (RFC 2033), each worker on one connection
// as an MTA's delivery agent keeps it: MAIL, RCPT (one of the worker's
// accounts, the user part of Users), DATA, over and over. A delivery
// counts once the server answered 250 for its recipient, which postie does
// only once the message is durable.
func runLMTP(ctx context.Context, o *Options, res *Result) error {
	var rec recorder
	timedWorkers(ctx, o, res, &rec, func(slots []int, more func() bool) {
		lat := make([]time.Duration, 0, 4096)
		var c *lmtpConn
		for k := 0; more(); k++ {
			var err error
			if c == nil {
				if c, err = dialLMTP(ctx, o.Addr, o.Timeout); err != nil {
					rec.fail(err)
					pause(ctx, 10*time.Millisecond)
					continue
				}
			}
			rcpt, _ := o.Users.At(slots[k%len(slots)])
			t0 := time.Now()
			if err := c.deliver(rcpt, lmtpMessage, o.Timeout); err != nil {
				if ctx.Err() == nil {
					rec.fail(err)
					pause(ctx, 10*time.Millisecond)
				}
				c.c.Close()
				c = nil
				continue
			}
			lat = append(lat, time.Since(t0))
		}
		if c != nil {
			c.cmd("QUIT\r\n", "221", o.Timeout)
			c.c.Close()
		}
		rec.add(lat, int64(len(lat)*len(lmtpMessage)))
	})
	return nil
}

type lmtpConn struct {
	c  net.Conn
	br *bufio.Reader
}

func dialLMTP(ctx context.Context, addr string, timeout time.Duration) (*lmtpConn, error) {
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &lmtpConn{c: nc, br: bufio.NewReader(nc)}
	if err := c.reply("220", timeout); err != nil {
		nc.Close()
		return nil, err
	}
	if err := c.cmd("LHLO bench.invalid\r\n", "250", timeout); err != nil {
		nc.Close()
		return nil, err
	}
	return c, nil
}

// reply reads a (multi-line) reply and checks its code.
func (c *lmtpConn) reply(want string, timeout time.Duration) error {
	c.c.SetReadDeadline(time.Now().Add(timeout))
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("lmtp: %w", err)
		}
		if !strings.HasPrefix(l, want) {
			return fmt.Errorf("lmtp: reply %q, want %s", strings.TrimSpace(l), want)
		}
		if len(l) < 4 || l[3] != '-' {
			return nil
		}
	}
}

func (c *lmtpConn) cmd(line, want string, timeout time.Duration) error {
	c.c.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := c.c.Write([]byte(line)); err != nil {
		return fmt.Errorf("lmtp: %w", err)
	}
	return c.reply(want, timeout)
}

// deliver sends one transaction to one recipient, pipelining nothing.
func (c *lmtpConn) deliver(rcpt, msg string, timeout time.Duration) error {
	if err := c.cmd("MAIL FROM:<bench@example.net>\r\n", "250", timeout); err != nil {
		return err
	}
	if err := c.cmd("RCPT TO:<"+rcpt+">\r\n", "250", timeout); err != nil {
		return err
	}
	if err := c.cmd("DATA\r\n", "354", timeout); err != nil {
		return err
	}
	// The message has no line starting with '.': no stuffing needed.
	return c.cmd(msg+".\r\n", "250", timeout)
}
