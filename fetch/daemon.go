package fetch

import (
	"context"
	"time"
)

// Daemon polls accounts until its context ends: each account every
// Interval (or the server's LOGIN-DELAY when longer). After a temporary
// failure (server unreachable or busy, connection lost) an account is
// retried sooner, after MinBackoff, then twice as long each time, never
// longer than the interval.
type Daemon struct {
	Config   *Config
	Accounts []*Account // default: all of Config's
	Options  Options
	// Interval overrides Config.Interval when set.
	Interval time.Duration
	// MinBackoff is the first retry delay after a temporary failure
	// (default 15s).
	MinBackoff time.Duration
	// Report receives the result of every run.
	Report func(*Result)
}

// Run polls until ctx is done and then returns ctx.Err() (after the run in
// progress, canceled, has ended: it deletes nothing it did not deliver and
// record).
func (d *Daemon) Run(ctx context.Context) error {
	interval := d.Interval
	if interval <= 0 {
		interval = d.Config.Interval.Std()
	}
	backoff := d.MinBackoff
	if backoff <= 0 {
		backoff = 15 * time.Second
	}
	accts := d.Accounts
	if len(accts) == 0 {
		accts = d.Config.Accounts
	}
	type slot struct {
		f     *Fetcher
		next  time.Time
		fails int
	}
	slots := make([]*slot, len(accts))
	start := time.Now()
	for i, a := range accts {
		slots[i] = &slot{f: New(d.Config, a, d.Options), next: start}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		due := slots[0]
		for _, s := range slots[1:] {
			if s.next.Before(due.next) {
				due = s
			}
		}
		timer.Reset(time.Until(due.next))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		res := due.f.Run(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := interval
		if res.Err != nil && res.Err.Kind == KindTemporary {
			wait = min(backoff<<min(due.fails, 20), interval)
			due.fails++
		} else {
			due.fails = 0
			wait = max(wait, res.LoginDelay)
		}
		due.next = time.Now().Add(wait)
		res.Next = wait
		if d.Report != nil {
			d.Report(res)
		}
	}
}
