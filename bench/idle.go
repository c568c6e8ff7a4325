package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// settle is how long idle waits after the last session opened before it
// reads the server's memory, so that work still in flight has ended.
const settle = time.Second

// runIdle opens o.Sessions authenticated sessions (login and STAT, so the
// maildrop is open), holds them, and reads the server's memory before and
// while they are open. Each session uses its own account.
func runIdle(ctx context.Context, o *Options, res *Result) error {
	popts := o.clientOptions(nil, nil)
	st := &IdleStats{Sessions: o.Sessions}
	res.Idle = st
	if o.Users.count() < o.Sessions {
		fmt.Fprintf(o.Log, "bench: warning: %d sessions share %d accounts; a server that locks maildrops will refuse some\n", o.Sessions, o.Users.count())
	}

	// One session first, so that processes started on demand (a login
	// process, an auth worker) count as the baseline, not as sessions.
	warm := func() error {
		u, p := o.Users.At(0)
		_, err := oneSession(ctx, nil, o.Addr, popts, u, p)
		return err
	}
	if err := warm(); err != nil {
		rec := recorder{}
		rec.fail(err)
		rec.fill(res, 0)
		return nil
	}
	time.Sleep(200 * time.Millisecond)

	pid := o.ServerPID
	var before treeSample
	if pid > 0 {
		var err error
		if before, err = sampleTree(pid, true); err != nil {
			st.MemoryNote = err.Error()
			pid = -1
		}
	} else {
		st.MemoryNote = "the server is not a local process (give --server-pid)"
	}

	clients := make([]*pop3client.Client, o.Sessions)
	var rec recorder
	var nextIdx atomic.Int64
	start := time.Now()
	openCtx := ctx
	if o.OpenTimeout > 0 {
		var cancel context.CancelFunc
		openCtx, cancel = context.WithTimeout(ctx, o.OpenTimeout)
		defer cancel()
	}
	var wg sync.WaitGroup
	for range min(o.Concurrency, o.Sessions) {
		wg.Go(func() {
			var lat []time.Duration
			for openCtx.Err() == nil {
				i := int(nextIdx.Add(1) - 1)
				if i >= o.Sessions {
					break
				}
				user, pass := o.Users.At(i)
				t0 := time.Now()
				c, err := login(openCtx, &rec, o.Addr, popts, user, pass)
				if err == nil {
					if _, _, err = c.Stat(openCtx); err != nil {
						c.Close()
					}
				}
				if err != nil {
					if openCtx.Err() == nil {
						rec.fail(err)
					}
					continue
				}
				lat = append(lat, time.Since(t0))
				clients[i] = c
			}
			rec.add(lat, 0)
		})
	}
	wg.Wait()
	rec.fill(res, time.Since(start))
	for _, c := range clients {
		if c != nil {
			st.Open++
		}
	}
	if st.Open < o.Sessions && openCtx.Err() != nil && ctx.Err() == nil {
		fmt.Fprintf(o.Log, "bench: idle: stopped opening sessions after %s (--open-timeout)\n", o.OpenTimeout)
	}
	fmt.Fprintf(o.Log, "bench: idle: %d sessions open after %.1fs; holding\n", st.Open, res.Seconds)

	pause(ctx, settle)
	if pid > 0 {
		after, err := sampleTree(pid, true)
		if err != nil {
			st.MemoryNote = err.Error()
		} else {
			st.ProcessesBefore, st.ProcessesAfter = before.procs, after.procs
			st.RSSBefore, st.RSSAfter = before.rss, after.rss
			st.PSSBefore, st.PSSAfter = before.pss, after.pss
			if st.Open > 0 {
				st.RSSPerSession = round(float64(after.rss-before.rss)/float64(st.Open), 2)
				st.PSSPerSession = round(float64(after.pss-before.pss)/float64(st.Open), 2)
			}
		}
	}
	pause(ctx, o.Hold-settle)

	// Every session must still be there: NOOP each, then QUIT.
	var alive atomic.Int64
	var idx atomic.Int64
	var wg2 sync.WaitGroup
	for range min(o.Concurrency, o.Sessions) {
		wg2.Go(func() {
			for {
				i := int(idx.Add(1) - 1)
				if i >= len(clients) {
					return
				}
				c := clients[i]
				if c == nil {
					continue
				}
				if err := c.Noop(ctx); err != nil {
					rec.fail(fmt.Errorf("after the hold: %w", err))
					c.Close()
					continue
				}
				alive.Add(1)
				c.Quit(ctx)
			}
		})
	}
	wg2.Wait()
	st.AliveAfterHold = int(alive.Load())
	res.Errors = rec.errs
	res.ErrorSamples = rec.samples
	return nil
}
