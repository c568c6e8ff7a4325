package pop3server

import (
	"net/netip"
	"strings"
	"sync"
	"time"
)

// penalties tracks recent login failures per address and per user name,
// to slow password guessing: each failure's reply waits AuthFailDelay
// doubled for every earlier recent failure of the same address or user,
// up to MaxAuthFailDelay, and an address that keeps failing can be banned
// for a while. Only the guessing session waits: nobody else is slowed.
type penalties struct {
	mu     sync.Mutex
	byAddr map[netip.Addr]*penalty
	byUser map[string]*penalty
}

type penalty struct {
	fails       int
	last        time.Time
	bannedUntil time.Time
	// For a user's entry: the address (key) of its failures, and
	// whether they came from more than one. A login forgets the user's
	// failures only when all came from the address logging in: the
	// owner mistyping, not someone else guessing.
	from   netip.Addr
	others bool
}

const (
	// A failure is forgotten after this long without another.
	penaltyMemory = 15 * time.Minute
	// Bound on tracked entries, so a flood of addresses or names
	// cannot grow memory without limit.
	maxPenaltyEntries = 100000
)

func newPenalties() *penalties {
	return &penalties{byAddr: map[netip.Addr]*penalty{}, byUser: map[string]*penalty{}}
}

// addrKey groups IPv6 addresses by /64, the block one host usually has.
func addrKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

func get[K comparable](m map[K]*penalty, k K, now time.Time) *penalty {
	p := m[k]
	if p != nil && now.Sub(p.last) > penaltyMemory && now.After(p.bannedUntil) {
		delete(m, k)
		p = nil
	}
	return p
}

// failure records a failed login and returns how long its reply waits and
// whether the address is now banned.
func (ps *penalties) failure(addr netip.Addr, user string, trusted bool, l *Limits, now time.Time) (time.Duration, bool) {
	base := l.AuthFailDelay
	if trusted || base <= 0 {
		return base, false
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if len(ps.byAddr) >= maxPenaltyEntries || len(ps.byUser) >= maxPenaltyEntries {
		ps.prune(now)
	}
	ap := entry(ps.byAddr, addrKey(addr), now)
	ap.fails++
	ap.last = now
	n := ap.fails
	if user = strings.ToLower(user); user != "" {
		up := entry(ps.byUser, user, now)
		if k := addrKey(addr); up.fails == 0 {
			up.from = k
		} else if up.from != k {
			up.others = true
		}
		up.fails++
		up.last = now
		n = max(n, up.fails)
	}
	d := failDelay(n, l)
	banned := false
	if l.BanAfter > 0 {
		if ap.fails >= l.BanAfter {
			ap.bannedUntil = now.Add(l.BanDuration)
			banned = true
		}
	}
	return d, banned
}

// failDelay is the delay of a failure that is the n-th recent one of its
// address or user: AuthFailDelay doubled for each earlier one, up to
// MaxAuthFailDelay.
func failDelay(n int, l *Limits) time.Duration {
	base := l.AuthFailDelay
	d := base
	for i := 1; i < n && d < l.MaxAuthFailDelay; i++ {
		d *= 2
	}
	return min(d, max(l.MaxAuthFailDelay, base))
}

// ban bans addr until the time given, unless it already is for longer
// (a ban another node of a cluster decided).
func (ps *penalties) ban(addr netip.Addr, until time.Time) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := addrKey(addr)
	p := ps.byAddr[k]
	if p == nil {
		if len(ps.byAddr) >= maxPenaltyEntries {
			ps.prune(time.Now())
		}
		p = &penalty{last: time.Now()}
		ps.byAddr[k] = p
	}
	if until.After(p.bannedUntil) {
		p.bannedUntil = until
	}
}

func entry[K comparable](m map[K]*penalty, k K, now time.Time) *penalty {
	p := get(m, k, now)
	if p == nil {
		p = &penalty{}
		m[k] = p
	}
	return p
}

// success forgets the address's failures, and the user's when they all
// came from this address. Failures from elsewhere stay: the owner logging
// in must not reset the delays of someone guessing their password (the
// owner's own logins never wait: only failures do).
func (ps *penalties) success(addr netip.Addr, user string) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	k := addrKey(addr)
	delete(ps.byAddr, k)
	user = strings.ToLower(user)
	if up := ps.byUser[user]; up != nil && !up.others && up.from == k {
		delete(ps.byUser, user)
	}
}

// banned reports whether addr is banned now.
func (ps *penalties) banned(addr netip.Addr, now time.Time) bool {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.byAddr[addrKey(addr)]
	return p != nil && now.Before(p.bannedUntil)
}

func (ps *penalties) prune(now time.Time) {
	for k, p := range ps.byAddr {
		if now.Sub(p.last) > penaltyMemory && now.After(p.bannedUntil) {
			delete(ps.byAddr, k)
		}
	}
	for k, p := range ps.byUser {
		if now.Sub(p.last) > penaltyMemory {
			delete(ps.byUser, k)
		}
	}
	// Still full: drop arbitrary entries rather than grow.
	for k := range ps.byUser {
		if len(ps.byUser) < maxPenaltyEntries/2 {
			break
		}
		delete(ps.byUser, k)
	}
	for k, p := range ps.byAddr {
		if len(ps.byAddr) < maxPenaltyEntries/2 {
			break
		}
		if now.After(p.bannedUntil) {
			delete(ps.byAddr, k)
		}
	}
}

// loginTimes remembers each user's last login for LOGIN-DELAY.
type loginTimes struct {
	mu   sync.Mutex
	last map[string]time.Time
}

// allow reports whether user may log in now, and records the login if so.
func (lt *loginTimes) allow(user string, delay time.Duration, now time.Time) bool {
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if lt.last == nil {
		lt.last = map[string]time.Time{}
	}
	if t, ok := lt.last[user]; ok && now.Sub(t) < delay {
		return false
	}
	if len(lt.last) >= maxPenaltyEntries {
		for u, t := range lt.last {
			if now.Sub(t) >= delay {
				delete(lt.last, u)
			}
		}
	}
	lt.last[user] = now
	return true
}
