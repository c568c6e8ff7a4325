package pop3server

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// AbuseStore keeps the login failures, bans and LOGIN-DELAY clock of
// several servers together (the nodes of a cluster behind a balancer), so
// that a guesser gets no more attempts and a user no earlier login by
// going to another node. Its types are the standard library's, so that a
// storage backend can implement it without importing this package.
//
// Addresses are keys: an IPv6 address is the first of its /64. User names
// are the names the clients gave, in lower case. Every call is bounded by
// the implementation's own timeout.
type AbuseStore interface {
	// LoginFailure records a failed login from addr naming user ("" when
	// the client named none) and returns the recent failures of the
	// address and of the user, this one included. A failure is forgotten
	// after memory without another. When banAfter > 0 and the address's
	// count reaches it, the address is banned for banFor; banLeft is what
	// is left of the address's ban (0 when it has none).
	LoginFailure(ctx context.Context, addr netip.Addr, user string, memory time.Duration, banAfter int, banFor time.Duration) (addrFails, userFails int, banLeft time.Duration, err error)
	// LoginSuccess records a login from addr as user to maildrop: the
	// address's failures are forgotten, and the user's when they all came
	// from addr. With delay > 0 it reports whether the maildrop's last
	// login is at least delay ago, and records this one only if so.
	LoginSuccess(ctx context.Context, addr netip.Addr, user, maildrop string, delay time.Duration) (allowed bool, err error)
	// Bans returns the addresses banned now, with what is left of each
	// ban.
	Bans(ctx context.Context) (map[netip.Addr]time.Duration, error)
}

// abuse is the server's abuse state: the penalties and login times of this
// server, and the shared AbuseStore when there is one.
//
// With a store, the store decides and the local state is kept as a cache
// and a fallback:
//
//   - a connection is refused by the local list of bans, which holds this
//     server's bans and those of the store, read again at most every
//     banRefresh (in the background, started by a connection), so that
//     accepting a connection costs no round trip;
//   - a failed login costs one round trip, which also tells whether
//     another node banned the address;
//   - with LOGIN-DELAY, a login costs one round trip, which forgets the
//     failures and checks and records the clock at once; without, the
//     login does not wait for the store: the failures are forgotten in
//     the background (at most maxForgetting at once; beyond, they are
//     left to expire);
//   - when the store fails (a database down or too slow), the server
//     counts locally as it does without a store, and leaves the store
//     alone for storeRetry before trying it again, so that an outage
//     slows logins by at most one timeout every storeRetry. A guesser
//     then gets its attempts counted per node, and a user may log in on
//     another node sooner than LOGIN-DELAY: logins go on.
type abuse struct {
	local  *penalties
	times  loginTimes
	shared AbuseStore    // nil: local only
	forget chan struct{} // a token per background LoginSuccess

	downUntil  atomic.Int64 // unix nanoseconds: the store is not asked before
	refreshing atomic.Bool
	lastFetch  atomic.Int64 // unix nanoseconds of the last Bans
	warnMu     sync.Mutex
	lastWarn   time.Time
}

const (
	banRefresh    = time.Second
	storeRetry    = 5 * time.Second
	maxForgetting = 64
)

func newAbuse(shared AbuseStore) *abuse {
	return &abuse{local: newPenalties(), shared: shared, forget: make(chan struct{}, maxForgetting)}
}

// usable reports whether the store is there and not resting after a
// failure.
func (a *abuse) usable(now time.Time) bool {
	return a.shared != nil && now.UnixNano() >= a.downUntil.Load()
}

// storeFailed rests the store after err, logging at most one line per
// storeRetry.
func (a *abuse) storeFailed(s *Server, what string, err error) {
	now := time.Now()
	a.downUntil.Store(now.Add(storeRetry).UnixNano())
	a.warnMu.Lock()
	warn := now.Sub(a.lastWarn) >= storeRetry
	if warn {
		a.lastWarn = now
	}
	a.warnMu.Unlock()
	if warn {
		s.log.Warn("shared abuse state unavailable; counting on this node only", "op", what, "err", err, "retry_in", storeRetry.String())
	}
}

// banned reports whether addr is banned now. It never waits for the
// store: with one, it starts a refresh of the local list of bans when the
// last is older than banRefresh.
func (a *abuse) banned(s *Server, addr netip.Addr, now time.Time) bool {
	if a.usable(now) && now.UnixNano()-a.lastFetch.Load() >= int64(banRefresh) && a.refreshing.CompareAndSwap(false, true) {
		a.lastFetch.Store(now.UnixNano())
		go a.refresh(s)
	}
	return a.local.banned(addr, now)
}

func (a *abuse) refresh(s *Server) {
	defer a.refreshing.Store(false)
	bans, err := a.shared.Bans(s.ctx)
	if err != nil {
		if s.ctx.Err() == nil {
			a.storeFailed(s, "bans", err)
		}
		return
	}
	now := time.Now()
	for addr, left := range bans {
		a.local.ban(addr, now.Add(left))
	}
}

// failure records a failed login and returns how long its reply waits and
// whether the address is now banned.
func (a *abuse) failure(s *Server, addr netip.Addr, user string, trusted bool, l *Limits, now time.Time) (time.Duration, bool) {
	delay, banned := a.local.failure(addr, user, trusted, l, now)
	if trusted || l.AuthFailDelay <= 0 || !a.usable(now) {
		return delay, banned
	}
	banAfter := max(l.BanAfter, 0)
	af, uf, left, err := a.shared.LoginFailure(s.ctx, addrKey(addr), strings.ToLower(user), penaltyMemory, banAfter, l.BanDuration)
	if err != nil {
		if s.ctx.Err() == nil {
			a.storeFailed(s, "login failure", err)
		}
		return delay, banned
	}
	banned = left > 0 && banAfter > 0
	if banned {
		a.local.ban(addr, now.Add(left))
	}
	return failDelay(max(af, uf), l), banned
}

// success forgets the failures a login makes good (see
// penalties.success), in the store too.
func (a *abuse) success(s *Server, addr netip.Addr, user string) {
	a.login(s, addr, user, "", 0, time.Now())
}

// login forgets the failures a login makes good and applies LOGIN-DELAY
// (delay, when positive): false when the maildrop's last login is more
// recent.
func (a *abuse) login(s *Server, addr netip.Addr, user, maildrop string, delay time.Duration, now time.Time) bool {
	a.local.success(addr, user)
	ok := delay <= 0 || a.times.allow(maildrop, delay, now)
	if !a.usable(now) {
		return ok
	}
	if delay <= 0 {
		select {
		case a.forget <- struct{}{}:
			go func() {
				defer func() { <-a.forget }()
				if _, err := a.shared.LoginSuccess(s.ctx, addrKey(addr), strings.ToLower(user), maildrop, 0); err != nil && s.ctx.Err() == nil {
					a.storeFailed(s, "login", err)
				}
			}()
		default:
		}
		return ok
	}
	shared, err := a.shared.LoginSuccess(s.ctx, addrKey(addr), strings.ToLower(user), maildrop, delay)
	if err != nil {
		if s.ctx.Err() == nil {
			a.storeFailed(s, "login", err)
		}
		return ok
	}
	return shared
}
