package pop3server

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postie-mail/postie/pop3"
)

// Password checks are bounded per client address, so that one address
// guessing over many connections at once gets no more guesses than
// Limits.MaxAuthChecksPerIP connections would, and cannot take the
// machine's CPU (a password hash costs tens of milliseconds by design)
// from everyone else:
//
//   - a check holds one of its address's slots (an IPv6 /64 counting as
//     one address, as everywhere else) from before the authenticator is
//     called until the reply is due, the failure delay included: the
//     delay slows the address, not just the one connection;
//   - up to Limits.MaxAuthQueuePerIP more logins wait for a slot; beyond
//     that a login is refused at once with -ERR [SYS/TEMP], before any
//     check is made;
//   - the check and the wait run on a context that ends when the client
//     hangs up, so that the checks of clients that went away are
//     cancelled (a client that hangs up learns nothing, so nothing is
//     lost by not finishing) and their slots freed.
//
// Trusted networks (a webmail on loopback logging in for many users) are
// not bounded.

// errChecksBusy refuses a login whose address has too many in flight.
var errChecksBusy = &pop3.Error{Code: pop3.CodeSysTemp, Text: "too many logins in progress from your address, try again later"}

// errHungUp ends a session whose client hung up during a check.
const errHungUp = endSession("client disconnected")

// checkGate counts the checks in flight and waiting per address.
type checkGate struct {
	mu sync.Mutex
	m  map[netip.Addr]*gateEntry
}

type gateEntry struct {
	slots chan struct{} // one token per check in flight
	users int           // holders and waiters, under checkGate.mu
}

// acquire takes one of key's inFlight slots, waiting while up to queue
// others wait; it returns errChecksBusy at once when more do, and
// ctx.Err() when ctx ends first. release frees the slot; it may be called
// more than once.
func (g *checkGate) acquire(ctx context.Context, key netip.Addr, inFlight, queue int) (release func(), err error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = map[netip.Addr]*gateEntry{}
	}
	e := g.m[key]
	if e == nil {
		e = &gateEntry{slots: make(chan struct{}, inFlight)}
		g.m[key] = e
	}
	if e.users >= inFlight+queue {
		g.mu.Unlock()
		return nil, errChecksBusy
	}
	e.users++
	g.mu.Unlock()
	select {
	case e.slots <- struct{}{}:
		if err := ctx.Err(); err != nil {
			// Both were ready: a client gone does not take a check.
			<-e.slots
			g.leave(key, e)
			return nil, err
		}
		var once sync.Once
		return func() {
			once.Do(func() {
				<-e.slots
				g.leave(key, e)
			})
		}, nil
	case <-ctx.Done():
		g.leave(key, e)
		return nil, ctx.Err()
	}
}

func (g *checkGate) leave(key netip.Addr, e *gateEntry) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if e.users--; e.users == 0 {
		delete(g.m, key)
	}
}

// check runs f, one password check, within the address's bound and on a
// context tied to the connection. On success the slot is released; when
// f's result is a failed login (an *authFailure), the failure keeps the
// slot and answer releases it once the failure delay has passed.
func (ss *session) check(f func(ctx context.Context) error) error {
	ctx, stop := ss.watchHangup()
	release := func() {}
	var err error
	if !ss.conn.trusted {
		lim := &ss.srv.opts.Limits
		release, err = ss.srv.checks.acquire(ctx, addrKey(ss.conn.remote), lim.MaxAuthChecksPerIP, lim.MaxAuthQueuePerIP)
	}
	if err == nil {
		err = ss.runChecked(ctx, f, stop, release)
	}
	hungUp := stop()
	var af *authFailure
	switch {
	case errors.Is(err, errChecksBusy):
		ss.srv.stats.authBusy.Add(1)
		return badCommand(errChecksBusy)
	case hungUp:
		// Whatever the check found, the client is not there to be told.
		if release != nil {
			release()
		}
		return errHungUp
	case release == nil:
		return endSession("server closing") // while waiting for a slot
	case errors.As(err, &af):
		af.release = release
		return err
	}
	release()
	return err
}

// runChecked runs f; if f panics, the watch ends and the place is freed before
// the panic goes on to the session's recover.
func (ss *session) runChecked(ctx context.Context, f func(context.Context) error, stop func() bool, release func()) error {
	defer func() {
		if r := recover(); r != nil {
			stop()
			release()
			panic(r)
		}
	}()
	return f(ctx)
}

// waitPenalty waits out a failed login's delay, on a context that ends
// when the client hangs up or the server closes. It reports whether the
// whole delay passed, and if not, why.
func (ss *session) waitPenalty(d time.Duration) (ok bool, why string) {
	if d <= 0 {
		return true, ""
	}
	ctx, stop := ss.watchHangup()
	slept := ss.sleep(ctx, d)
	if stop() {
		return false, string(errHungUp)
	}
	if !slept {
		return false, "server closing"
	}
	return true, ""
}

// aLongTimeAgo is a read deadline in the past: it interrupts a read.
var aLongTimeAgo = time.Unix(1, 0)

// watchHangup returns a context that is done when the client hangs up (or
// the server closes), and stop, which must be called before the session
// reads again: it ends the watch, restores the read deadline and reports
// whether the client hung up.
//
// The watch reads ahead into the session's reader without consuming:
// commands the client pipelines stay buffered for the session. A client
// that closes its side after pipelining further commands still gets its
// replies; one that closes with nothing more to say, or whose connection
// fails, has hung up.
func (ss *session) watchHangup() (context.Context, func() bool) {
	ctx, cancel := context.WithCancelCause(ss.srv.ctx)
	var stopping atomic.Bool
	done := make(chan struct{})
	nc, br := ss.conn.nc, ss.conn.br
	nc.SetReadDeadline(time.Time{})
	go func() {
		defer close(done)
		for {
			n := br.Buffered() + 1
			if n > br.Size() {
				return // the buffer is full of pipelined input
			}
			if _, err := br.Peek(n); err != nil {
				if stopping.Load() {
					return
				}
				if br.Buffered() == 0 || !errors.Is(err, io.EOF) {
					cancel(errHungUp)
				}
				return
			}
		}
	}()
	return ctx, func() bool {
		stopping.Store(true)
		nc.SetReadDeadline(aLongTimeAgo)
		<-done
		hungUp := errors.Is(context.Cause(ctx), errHungUp)
		cancel(nil)
		// The session's idle timers start again: the client has been
		// waiting for the server, not the reverse.
		deadline := time.Now().Add(ss.srv.opts.Limits.AuthTimeout)
		if end := ss.loginDeadline(); end.Before(deadline) {
			deadline = end
		}
		nc.SetReadDeadline(deadline)
		return hungUp
	}
}
