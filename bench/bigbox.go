package bench

import (
	"context"
	"net"
	"sync"
	"time"
)

// runBigBox logs in o.Rounds times, one after the other, and times the
// first responses on the maildrop: PASS (the maildrop opened), STAT, the
// first octet of UIDL, the whole UIDL and LIST listings.
func runBigBox(ctx context.Context, o *Options, res *Result) error {
	d := &timingDialer{d: net.Dialer{Timeout: o.Timeout, KeepAlive: 30 * time.Second}}
	popts := o.clientOptions(nil, d)
	user, pass := o.Users.At(0)
	st := &BigBoxStats{}
	res.BigBox = st
	var rec recorder
	var logins, uidlFirst, uidl, list []float64
	ms := func(d time.Duration) float64 { return round(float64(d)/1e6, 3) }
	start := time.Now()
	for range o.Rounds {
		if ctx.Err() != nil {
			break
		}
		t0 := time.Now()
		c, err := login(ctx, &rec, o.Addr, popts, user, pass)
		if err != nil {
			rec.fail(err)
			continue
		}
		tLogin := time.Since(t0)
		n, size, err := c.Stat(ctx)
		if err != nil {
			rec.fail(err)
			c.Close()
			continue
		}
		tStat := time.Since(t0)
		st.Messages, st.Octets = n, size

		conn := d.last()
		conn.arm()
		t1 := time.Now()
		if _, err := c.UIDL(ctx); err != nil {
			rec.fail(err)
			c.Close()
			continue
		}
		tUIDL := time.Since(t1)
		tFirst := conn.firstAfter(t1)
		t2 := time.Now()
		if _, err := c.List(ctx); err != nil {
			rec.fail(err)
			c.Close()
			continue
		}
		tList := time.Since(t2)
		c.Quit(ctx)

		rec.add([]time.Duration{tStat}, 0)
		logins = append(logins, ms(tLogin))
		st.Rounds = append(st.Rounds, ms(tStat))
		uidlFirst = append(uidlFirst, ms(tFirst))
		uidl = append(uidl, ms(tUIDL))
		list = append(list, ms(tList))
	}
	rec.fill(res, time.Since(start))
	st.Login = median(logins)
	st.LoginStat = median(st.Rounds)
	st.UIDLFirst = median(uidlFirst)
	st.UIDL = median(uidl)
	st.LIST = median(list)
	return nil
}

// timingDialer dials TCP and keeps the last connection, whose first read
// after arm is timed: the time to first response of a command.
type timingDialer struct {
	d    net.Dialer
	mu   sync.Mutex
	conn *timingConn
}

func (t *timingDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := t.d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	tc := &timingConn{Conn: c}
	t.mu.Lock()
	t.conn = tc
	t.mu.Unlock()
	return tc, nil
}

func (t *timingDialer) last() *timingConn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.conn
}

type timingConn struct {
	net.Conn
	mu    sync.Mutex
	armed bool
	first time.Time
}

func (c *timingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.mu.Lock()
		if c.armed {
			c.first, c.armed = time.Now(), false
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *timingConn) arm() {
	c.mu.Lock()
	c.armed, c.first = true, time.Time{}
	c.mu.Unlock()
}

// firstAfter is the time from t0 to the first octet read after arm.
func (c *timingConn) firstAfter(t0 time.Time) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.first.IsZero() {
		return 0
	}
	return c.first.Sub(t0)
}
