package intake

import (
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter allows each client address a number of messages per minute
// with bursts (a token bucket per address). Its memory is bounded: idle
// addresses are forgotten.
type rateLimiter struct {
	perMinute int
	burst     int

	mu    sync.Mutex
	addrs map[netip.Addr]*rateEntry
	swept time.Time
}

type rateEntry struct {
	lim  *rate.Limiter
	last time.Time
}

// maxRateAddrs bounds the addresses remembered.
const maxRateAddrs = 100_000

func newRateLimiter(perMinute, burst int) *rateLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &rateLimiter{perMinute: perMinute, burst: max(burst, 1), addrs: map[netip.Addr]*rateEntry{}}
}

// allow reports whether addr may send one more message now. A nil
// limiter allows everything.
func (r *rateLimiter) allow(addr netip.Addr, now time.Time) bool {
	if r == nil || !addr.IsValid() {
		return true
	}
	return r.entry(addr, now).lim.AllowN(now, 1)
}

// left reports whether addr has a token now, without taking it.
func (r *rateLimiter) left(addr netip.Addr, now time.Time) bool {
	if r == nil || !addr.IsValid() {
		return true
	}
	return r.entry(addr, now).lim.TokensAt(now) >= 1
}

// entry returns addr's bucket (an IPv6 /64 sharing one), made full if
// there is none.
func (r *rateLimiter) entry(addr netip.Addr, now time.Time) *rateEntry {
	addr = addrKey(addr.Unmap())
	r.mu.Lock()
	defer r.mu.Unlock()
	// An entry idle for long enough to be full again is the same as none.
	idle := time.Duration(r.burst) * time.Minute / time.Duration(r.perMinute)
	if now.Sub(r.swept) > idle || len(r.addrs) >= maxRateAddrs {
		for a, e := range r.addrs {
			if now.Sub(e.last) > idle {
				delete(r.addrs, a)
			}
		}
		r.swept = now
		if len(r.addrs) >= maxRateAddrs {
			clear(r.addrs) // under attack from many addresses: start over
		}
	}
	e := r.addrs[addr]
	if e == nil {
		e = &rateEntry{lim: rate.NewLimiter(rate.Limit(float64(r.perMinute)/60), r.burst)}
		r.addrs[addr] = e
	}
	e.last = now
	return e
}
