package pgstore

import (
	"context"
	"maps"
	"slices"
	"sync"
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
	boxes := make([]string, 0, len(s.held))
	for tok, md := range s.held {
		tokens = append(tokens, tok)
		boxes = append(boxes, md.user)
	}
	s.mu.Unlock()
	if len(tokens) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(s.timeout, s.lease/3))
	defer cancel()
	// Locked in the order of the names first, as the logins' statements
	// lock them (see open.go), so that neither waits for the other.
	rows, err := s.pool.Query(ctx, `UPDATE postie_leases l SET expires = clock_timestamp() + make_interval(secs => $3)
		FROM (SELECT mailbox FROM postie_leases WHERE mailbox = ANY($1) AND token = ANY($2) ORDER BY mailbox FOR UPDATE) AS o
		WHERE l.mailbox = o.mailbox AND l.token = ANY($2) RETURNING l.token`, boxes, tokens, s.lease.Seconds())
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

// Releases. A session that ends gives up its lease without waiting for
// the database: Close queues the lease and returns, and the leases queued
// while one statement gives up others go together in the next (one
// statement for all, a round trip shared by every session that ended
// meanwhile).
// The lease is therefore still in the database for about one round trip
// after QUIT's reply. A login of the same maildrop on this node in that
// time takes the queued lease over (acquireSQL's $5), so a client that
// logs in again at once never meets its own old lock here; on another
// node, Open waits a little and tries again (openRetries).

// releaseSQL gives up the leases of maildrops $1 held by sessions $2
// (lists of the same length): expires '-infinity', the row kept for the
// next login (a HOT update), the token too, so that a login of this node
// that takes over a queued release (acquireSQL's $5) still finds it. The
// rows are locked first, in the order of the names, as every statement
// that locks several leases (see open.go).
const releaseSQL = `
UPDATE postie_leases l SET expires = '-infinity'
FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async, (
	SELECT x.mailbox FROM postie_leases x JOIN unnest($1::text[], $2::text[]) AS v(mailbox, token)
		ON x.mailbox = v.mailbox AND x.token = v.token
	ORDER BY x.mailbox FOR UPDATE OF x) AS o
WHERE l.mailbox = o.mailbox AND l.token = ANY($2::text[])`

// maxReleaseBatch bounds the leases of one release statement.
const maxReleaseBatch = 1000

// releaser holds the leases given up and not yet written free.
type releaser struct {
	mu       sync.Mutex
	queued   map[string]string // mailbox → token, waiting for the next statement
	inflight map[string]string // mailbox → token, in the statement under way
	running  bool              // a goroutine is writing batches
	idle     chan struct{}     // closed when running ends; nil while idle
}

// releaseLater queues the lease of session token on mailbox to be given up.
func (s *Store) releaseLater(mailbox, token string) {
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queued == nil {
		r.queued = map[string]string{}
	}
	r.queued[mailbox] = token
	if !r.running {
		r.running = true
		r.idle = make(chan struct{})
		go s.releaseLoop()
	}
}

// releasing returns the token of mailbox's lease if it is queued or being
// written free ("" if not): a lease this node gave up, that acquireSQL may take
// over.
func (s *Store) releasing(mailbox string) string {
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	if tok, ok := r.queued[mailbox]; ok {
		return tok
	}
	return r.inflight[mailbox]
}

// tookOver forgets the queued release of mailbox's lease token, which a
// new session took over: releasing it would change nothing.
func (s *Store) tookOver(mailbox, token string) {
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queued[mailbox] == token {
		delete(r.queued, mailbox)
	}
}

// releaseLoop gives up the queued leases, a batch at a time, until none is
// left. A failed statement is logged: its leases expire by themselves.
func (s *Store) releaseLoop() {
	r := &s.releases
	for {
		r.mu.Lock()
		r.inflight = nil
		if len(r.queued) == 0 {
			r.running = false
			close(r.idle)
			r.idle = nil
			r.mu.Unlock()
			return
		}
		// In the order of the names, as every statement that locks
		// several leases, so that two of them never wait for each other.
		boxes := slices.Sorted(maps.Keys(r.queued))
		boxes = boxes[:min(len(boxes), maxReleaseBatch)]
		tokens := make([]string, len(boxes))
		batch := make(map[string]string, len(boxes))
		for i, box := range boxes {
			tokens[i] = r.queued[box]
			batch[box] = tokens[i]
			delete(r.queued, box)
		}
		r.inflight = batch
		r.mu.Unlock()
		ctx, cancel := s.op(context.Background())
		if _, err := s.pool.Exec(ctx, releaseSQL, boxes, tokens); err != nil {
			s.log.Warn("pgstore: releasing maildrop locks failed; they expire by themselves", "err", dbError("release", err), "sessions", len(boxes))
		}
		cancel()
	}
}

// waitReleases waits until the queued releases are written, or ctx ends.
func (s *Store) waitReleases(ctx context.Context) {
	r := &s.releases
	r.mu.Lock()
	idle := r.idle
	r.mu.Unlock()
	if idle == nil {
		return
	}
	select {
	case <-idle:
	case <-ctx.Done():
	}
}
