package intake

import (
	"sync"
	"time"
)

// Delivery is one delivery attempt, for Recent.
type Delivery struct {
	Time  time.Time
	Proto string // Envelope.Proto: "LMTP", "ESMTP", "ESMTPS" or "local"
	User  string
	Size  int64 // octets stored; -1 when not known
	// Result is "ok", or the failure's kind (Kind.String: "over_quota",
	// "no_such_user", "temporary_failure", ...).
	Result string
}

// recentDeliveries is the bounded in-memory ring behind Recent.
type recentDeliveries struct {
	mu   sync.Mutex
	ring [maxRecent]Delivery
	n    int // deliveries recorded in all
}

const maxRecent = 50

func (r *recentDeliveries) add(d Delivery) {
	r.mu.Lock()
	r.ring[r.n%maxRecent] = d
	r.n++
	r.mu.Unlock()
}

// Recent returns the last deliveries of this process (at most 50, kept
// in memory only), the newest first: successes and failures.
func (d *Deliverer) Recent() []Delivery {
	r := &d.recent
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.n, maxRecent)
	out := make([]Delivery, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, r.ring[(r.n-i)%maxRecent])
	}
	return out
}
