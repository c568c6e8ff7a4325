package pgstore

import (
	"context"
	"time"
)

// renew extends the leases of all the Store's open sessions every third of
// the lease duration, in one statement, until Close. A lease found taken
// over marks its session lost (its Commit then deletes nothing); a failed
// renewal is retried at the next tick, and Commit's own check keeps a
// session whose lease expired in the meantime from deleting anything.
func (s *Store) renew() {
	defer close(s.done)
	t := time.NewTicker(s.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		s.renewOnce()
	}
}

func (s *Store) renewOnce() {
	s.mu.Lock()
	tokens := make([]string, 0, len(s.held))
	for tok := range s.held {
		tokens = append(tokens, tok)
	}
	s.mu.Unlock()
	if len(tokens) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, s.lease/3))
	defer cancel()
	rows, err := s.pool.Query(ctx, `UPDATE postie_leases SET expires = clock_timestamp() + make_interval(secs => $2)
		WHERE token = ANY($1) RETURNING token`, tokens, s.lease.Seconds())
	if err != nil {
		s.stats.renewalFailures.Add(1)
		s.log.Warn("pgstore: renewing maildrop locks failed", "err", err, "sessions", len(tokens))
		return
	}
	renewed := make(map[string]bool, len(tokens))
	for rows.Next() {
		var tok string
		if err := rows.Scan(&tok); err == nil {
			renewed[tok] = true
		}
	}
	if err := rows.Err(); err != nil {
		s.stats.renewalFailures.Add(1)
		s.log.Warn("pgstore: renewing maildrop locks failed", "err", err, "sessions", len(tokens))
		return
	}
	s.stats.renewals.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, tok := range tokens {
		if md, ok := s.held[tok]; ok && !renewed[tok] {
			md.lost.Store(true)
			delete(s.held, tok)
			s.stats.leasesLost.Add(1)
			s.log.Warn("pgstore: maildrop lock lost (expired and taken over); the session will delete nothing", "user", md.user)
		}
	}
}
