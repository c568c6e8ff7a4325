package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// runSessions: connect (and TLS), USER/PASS, STAT, QUIT, over and over.
func runSessions(ctx context.Context, o *Options, res *Result) error {
	var cache tls.ClientSessionCache
	if o.Resume && o.TLS != pop3client.TLSNone {
		cache = tls.NewLRUClientSessionCache(64)
	}
	popts := o.clientOptions(cache, nil)
	if o.Users.count() < o.Concurrency {
		fmt.Fprintf(o.Log, "bench: warning: %d workers share %d accounts; a server that locks maildrops (RFC 1939) will refuse some logins with [IN-USE]\n", o.Concurrency, o.Users.count())
	}
	var rec recorder
	timedWorkers(ctx, o, res, &rec, func(slots []int, more func() bool) {
		lat := make([]time.Duration, 0, 4096)
		var tlsN, resumed int64
		for k := 0; more(); k++ {
			user, pass := o.Users.At(slots[k%len(slots)])
			t0 := time.Now()
			res, err := oneSession(ctx, &rec, o.Addr, popts, user, pass)
			if err != nil {
				if ctx.Err() == nil {
					rec.fail(err)
					pause(ctx, 10*time.Millisecond)
				}
				continue
			}
			lat = append(lat, time.Since(t0))
			if o.TLS != pop3client.TLSNone {
				tlsN++
				if res {
					resumed++
				}
			}
		}
		rec.add(lat, 0)
		rec.handshakes(tlsN, resumed)
	})
	return nil
}

// oneSession runs one whole session and reports whether its TLS handshake
// was resumed.
func oneSession(ctx context.Context, rec *recorder, addr string, popts *pop3client.Options, user, pass string) (resumed bool, err error) {
	c, err := pop3client.Dial(ctx, addr, popts)
	if err != nil {
		return false, err
	}
	defer c.Close()
	rec.tlsState(c)
	if st, ok := c.TLSConnectionState(); ok {
		resumed = st.DidResume
	}
	if err := c.Login(ctx, user, pass); err != nil {
		return false, err
	}
	if _, _, err := c.Stat(ctx); err != nil {
		return false, err
	}
	return resumed, c.Quit(ctx)
}

// login dials and authenticates.
func login(ctx context.Context, rec *recorder, addr string, popts *pop3client.Options, user, pass string) (*pop3client.Client, error) {
	c, err := pop3client.Dial(ctx, addr, popts)
	if err != nil {
		return nil, err
	}
	rec.tlsState(c)
	if err := c.Login(ctx, user, pass); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}
