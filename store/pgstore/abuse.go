package pgstore

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Abuse is the login abuse state shared by the nodes of a cluster in the
// database (postie_abuse_addrs, postie_abuse_users, postie_login_times):
// failure counts, bans and the LOGIN-DELAY clock. It implements
// pop3server.AbuseStore; each call is one round trip bounded by
// Options.Timeout.
type Abuse struct {
	s *Store

	mu        sync.Mutex
	lastSweep time.Time
	next      *forgetBatch  // forgets waiting for the flush in progress
	flushing  chan struct{} // holds a token while a batch of forgets is flushed
	failing   failingSet    // who has failures to forget (see forget)
	fresh     time.Duration // failingFresh, but in tests
}

// failingSet is what a node knows of the addresses and users with failures
// in the database: those read by the last Bans (at read; nil when unknown:
// never read, or too many), and those this node recorded since (local,
// with the time each was recorded).
type failingSet struct {
	read         time.Time
	addrs, users map[string]bool
	local        map[string]time.Time // "a" + address, "u" + user name
	reading      bool                 // a read is under way
}

// failingFresh is how old the last read of the failing set may be for a
// login to skip forgetting; a login that finds it older starts a read in
// the background (one at a time), so that a node with logins reads it
// about once a second.
const (
	failingFresh   = 2 * time.Second
	failingRefresh = time.Second
)

// maxFailing bounds the addresses and users read as failing: beyond it
// (an attack under way), every login forgets.
const maxFailing = 10000

// forgetBatch is a set of logins whose failures are forgotten in one
// statement (see LoginSuccess).
type forgetBatch struct {
	addrs, users []string
	done         chan struct{} // closed when flushed; err is then set
	err          error
}

// maxForgetBatch bounds the logins of one forgetBatch.
const maxForgetBatch = 1000

// forgetSQL is postie_login_success without a LOGIN-DELAY, for logins
// from addresses $1 as users $2 (lists of the same length).
const forgetSQL = `
WITH v AS (SELECT a::inet AS addr, u AS name FROM unnest($1::text[], $2::text[]) AS v(a, u)),
a AS (DELETE FROM postie_abuse_addrs WHERE addr IN (SELECT addr FROM v))
DELETE FROM postie_abuse_users x USING v WHERE x.name = v.name AND NOT x.others AND x.from_addr = v.addr`

// sweepEvery is how often Bans also deletes the failures that expired.
const sweepEvery = time.Minute

// Abuse returns the Store's shared abuse state.
func (s *Store) Abuse() *Abuse {
	return &Abuse{s: s, flushing: make(chan struct{}, 1), fresh: failingFresh}
}

func seconds(d time.Duration) float64 { return d.Seconds() }

func fromSeconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// LoginFailure records a failed login (see pop3server.AbuseStore).
func (a *Abuse) LoginFailure(ctx context.Context, addr netip.Addr, user string, memory time.Duration, banAfter int, banFor time.Duration) (addrFails, userFails int, banLeft time.Duration, err error) {
	ctx, cancel := a.s.op(ctx)
	defer cancel()
	var left float64
	err = a.s.pool.QueryRow(ctx, `SELECT addr_fails, user_fails, ban_left FROM postie_login_failure($1::inet, $2, make_interval(secs => $3), $4, make_interval(secs => $5))`,
		addr.String(), user, seconds(memory), banAfter, seconds(banFor)).Scan(&addrFails, &userFails, &left)
	if err != nil {
		return 0, 0, 0, dbError("login failure", err)
	}
	a.mu.Lock()
	if a.failing.local == nil {
		a.failing.local = map[string]time.Time{}
	}
	now := time.Now()
	a.failing.local["a"+addr.String()] = now
	if user != "" {
		a.failing.local["u"+user] = now
	}
	a.mu.Unlock()
	return addrFails, userFails, fromSeconds(left), nil
}

// LoginSuccess records a login and applies LOGIN-DELAY (see
// pop3server.AbuseStore). Without a delay, the logins that arrive while
// one batch is being written are forgotten together in the next one: one
// statement for all, instead of one round trip each.
func (a *Abuse) LoginSuccess(ctx context.Context, addr netip.Addr, user, maildrop string, delay time.Duration) (bool, error) {
	if delay <= 0 {
		return true, a.forget(ctx, addr.String(), user)
	}
	ctx, cancel := a.s.op(ctx)
	defer cancel()
	var ok bool
	err := a.s.pool.QueryRow(ctx, `SELECT postie_login_success($1::inet, $2, $3, make_interval(secs => $4))`,
		addr.String(), user, maildrop, seconds(delay)).Scan(&ok)
	if err != nil {
		return false, dbError("login", err)
	}
	return ok, nil
}

// maxBans bounds the bans read at once.
const maxBans = 100000

// Bans returns the addresses banned now (see pop3server.AbuseStore). Once
// a minute it first deletes the failures forgotten.
func (a *Abuse) Bans(ctx context.Context) (map[netip.Addr]time.Duration, error) {
	ctx, cancel := a.s.op(ctx)
	defer cancel()
	a.mu.Lock()
	sweep := time.Since(a.lastSweep) >= sweepEvery
	if sweep {
		a.lastSweep = time.Now()
	}
	a.mu.Unlock()
	if sweep {
		_, err := a.s.pool.Exec(ctx, `WITH a AS (DELETE FROM postie_abuse_addrs WHERE expires < now() AND banned_until < now())
			DELETE FROM postie_abuse_users WHERE expires < now()`)
		if err != nil {
			return nil, dbError("sweeping abuse state", err)
		}
	}
	rows, err := a.s.pool.Query(ctx, `SELECT host(addr), extract(epoch FROM banned_until - now())::float8 FROM postie_abuse_addrs
		WHERE banned_until > now() ORDER BY banned_until DESC LIMIT $1`, maxBans)
	if err != nil {
		return nil, dbError("bans", err)
	}
	defer rows.Close()
	bans := map[netip.Addr]time.Duration{}
	for rows.Next() {
		var host string
		var left float64
		if err := rows.Scan(&host, &left); err != nil {
			return nil, dbError("bans", err)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			bans[ip] = fromSeconds(left)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("bans", err)
	}
	return bans, nil
}

// readFailing reads the addresses and users with failures that a login
// could forget (started by mayHaveFailed). On error, or with more than maxFailing of either, the set
// is unknown and every login forgets.
func (a *Abuse) readFailing(ctx context.Context) {
	start := time.Now()
	var addrs, users []string
	err := a.s.pool.QueryRow(ctx, `SELECT
		ARRAY(SELECT host(addr) FROM postie_abuse_addrs WHERE expires > now() OR banned_until > now() LIMIT $1),
		ARRAY(SELECT name FROM postie_abuse_users WHERE expires > now() LIMIT $1)`, maxFailing+1).Scan(&addrs, &users)
	a.mu.Lock()
	defer a.mu.Unlock()
	f := &a.failing
	f.reading = false
	if err != nil || len(addrs) > maxFailing || len(users) > maxFailing {
		f.read, f.addrs, f.users = time.Time{}, nil, nil
		return
	}
	f.read = start
	f.addrs, f.users = make(map[string]bool, len(addrs)), make(map[string]bool, len(users))
	for _, x := range addrs {
		if ip, err := netip.ParseAddr(x); err == nil {
			f.addrs[ip.String()] = true // as LoginSuccess spells it
		}
	}
	for _, x := range users {
		f.users[x] = true
	}
	for k, at := range f.local {
		if at.Before(start) { // recorded before the read began: in it
			delete(f.local, k)
		}
	}
}

// mayHaveFailed reports whether a login from addr as user may have
// failures to forget: true unless a recent read of the database and this
// node's own records since show none for either.
func (a *Abuse) mayHaveFailed(addr, user string, now time.Time) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	f := &a.failing
	if (f.read.IsZero() || now.Sub(f.read) >= failingRefresh || now.Before(f.read)) && !f.reading {
		f.reading = true
		go func() {
			ctx, cancel := a.s.op(context.Background())
			defer cancel()
			a.readFailing(ctx)
		}()
	}
	if f.addrs == nil || now.Sub(f.read) > a.fresh || now.Before(f.read) {
		return true
	}
	_, la := f.local["a"+addr]
	_, lu := f.local["u"+user]
	return la || lu || f.addrs[addr] || f.users[user]
}

// forget forgets the failures that a login from addr as user makes good,
// in a batch with the other logins that arrive while the previous batch is
// written. A login that has none to forget, as far as the node knows
// (mayHaveFailed), writes nothing: most logins. A failure recorded by
// another node after the node's last read (at most failingFresh ago) can
// so be left to expire by itself instead of being forgotten. The first login of a batch writes it, once the previous one is
// done; the others wait for it.
func (a *Abuse) forget(ctx context.Context, addr, user string) error {
	if !a.mayHaveFailed(addr, user, time.Now()) {
		return nil
	}
	a.mu.Lock()
	b, leader := a.next, false
	if b == nil || len(b.addrs) >= maxForgetBatch {
		b, leader = &forgetBatch{done: make(chan struct{})}, true
		a.next = b
	}
	b.addrs = append(b.addrs, addr)
	b.users = append(b.users, user)
	a.mu.Unlock()
	if !leader {
		<-b.done // bounded: the leader waits for ctx or one flush, then for one round trip
		return b.err
	}
	var err error
	select {
	case a.flushing <- struct{}{}:
	case <-ctx.Done():
		err = dbError("login", ctx.Err())
	}
	a.mu.Lock()
	if a.next == b {
		a.next = nil // later logins make a new batch
	}
	a.mu.Unlock()
	if err == nil {
		octx, cancel := a.s.op(ctx)
		if _, err = a.s.pool.Exec(octx, forgetSQL, b.addrs, b.users); err != nil {
			err = dbError("login", err)
		}
		cancel()
		<-a.flushing
	}
	b.err = err
	close(b.done)
	return err
}
