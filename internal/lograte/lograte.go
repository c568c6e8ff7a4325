// Package lograte limits a warning to one line a second, counting the
// lines it holds back so that the next one can say how many there were:
// a flood of bad connections must not flood the log too.
package lograte

import (
	"sync"
	"time"
)

// Limit allows one line a second. Its zero value is ready; it is safe
// for concurrent use.
type Limit struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

// Allow reports whether a line may be logged at now and, when it may,
// how many were held back since the last one allowed.
func (r *Limit) Allow(now time.Time) (ok bool, suppressed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.last) < time.Second {
		r.suppressed++
		return false, 0
	}
	r.last = now
	suppressed, r.suppressed = r.suppressed, 0
	return true, suppressed
}

// Reset forgets the last line allowed: the next one is allowed at once.
func (r *Limit) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.last = time.Time{}
}
