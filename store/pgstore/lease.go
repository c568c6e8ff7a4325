package pgstore

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
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
// the database: Close queues the lease and returns. The queued releases
// ride with the next group of logins (leaseSQL gives up and takes leases
// in one statement, in the transaction of the group's snapshots): while
// logins keep coming, giving a lease up costs no statement and no
// transaction of its own. When no group is in the database or gathering,
// releaseLoop writes them at once, those queued meanwhile together.
// The lease is therefore still in the database for a round trip or two
// after QUIT's reply. A login of the same maildrop on this node in that
// time takes the queued lease over (leaseSQL's $5), so a client that logs
// in again at once never meets its own old lock here; on another node,
// Open waits a little and tries again (openRetries).

// leaseSQL gives up and takes leases, in one statement that locks their
// rows in the order of the names ($1, sorted, no name twice; the other
// lists at the same places), so that it never waits for another statement
// that does the same. Where $6 is true, it gives up the lease of maildrop
// $1 held by session $3: expires '-infinity', the row and its token kept
// for the next login (a HOT update, and a login of this node that takes
// over a queued release still finds the token); a row another session
// took over meanwhile is left alone. Elsewhere it takes the lease of
// maildrop $1 for session $3 of node $2, for $4 seconds, unless another
// session holds it unexpired: a lease given up or expired is taken, and
// so is one of this node's whose release is queued (its token in $5, ""
// if none: see releaseLater). It returns each lease taken, and whether it
// was taken over from a session that had not given it up (a node that
// died or lost the database), and no row for a lease given up. The table
// is unlogged: the statement writes no WAL, and its transaction commits
// without waiting for a flush.
const leaseSQL = `
INSERT INTO postie_leases AS l (mailbox, node, token, acquired, expires)
SELECT v.mailbox, $2, v.token, clock_timestamp(),
	CASE WHEN v.free THEN '-infinity' ELSE clock_timestamp() + make_interval(secs => $4) END
FROM unnest($1::text[], $3::text[], $6::bool[]) WITH ORDINALITY AS v(mailbox, token, free, i)
ORDER BY v.i
ON CONFLICT (mailbox) DO UPDATE
	SET node = EXCLUDED.node, token = EXCLUDED.token, acquired = EXCLUDED.acquired, expires = EXCLUDED.expires,
		taken_over = EXCLUDED.expires <> '-infinity' AND l.expires <> '-infinity'
			AND l.token <> ($5::text[])[array_position($1::text[], l.mailbox)]
	WHERE CASE WHEN EXCLUDED.expires = '-infinity' THEN l.token = EXCLUDED.token
		ELSE l.expires < clock_timestamp() OR l.token = ($5::text[])[array_position($1::text[], l.mailbox)] END
RETURNING mailbox, taken_over, expires = '-infinity'`

// leaseArgs are leaseSQL's lists, built in the order of the names.
type leaseArgs struct {
	names, tokens, prev []string
	free                []bool
}

// newLeaseArgs lists the leases to give up (maildrop → token) and those to
// take (reqs, sorted by name, none of them in free), in the order of the
// names.
func newLeaseArgs(free map[string]string, reqs []*openReq) *leaseArgs {
	n := len(free) + len(reqs)
	a := &leaseArgs{names: make([]string, 0, n), tokens: make([]string, 0, n), prev: make([]string, 0, n), free: make([]bool, 0, n)}
	rel := slices.Sorted(maps.Keys(free))
	for len(rel) > 0 || len(reqs) > 0 {
		if len(reqs) == 0 || len(rel) > 0 && rel[0] < reqs[0].md.user {
			a.names, a.tokens, a.prev, a.free = append(a.names, rel[0]), append(a.tokens, free[rel[0]]), append(a.prev, ""), append(a.free, true)
			rel = rel[1:]
			continue
		}
		r := reqs[0]
		a.names, a.tokens, a.prev, a.free = append(a.names, r.md.user), append(a.tokens, r.md.token), append(a.prev, r.released), append(a.free, false)
		reqs = reqs[1:]
	}
	return a
}

// queue adds leaseSQL with a's lists to b.
func (s *Store) queueLeases(b *pgx.Batch, a *leaseArgs) {
	b.Queue(leaseSQL, a.names, s.node, a.tokens, s.lease.Seconds(), a.prev, a.free)
}

// releaseLinger is how long releaseLoop waits for a group of logins to
// start gathering before it writes the releases by themselves: a
// millisecond more for another node's login of the maildrop (whose first
// retry is 2 ms later), a statement and a transaction less for the
// database while logins keep coming (about 6% less CPU per login, node
// and database together, with 8 clients on one node).
const releaseLinger = time.Millisecond

// maxReleaseBatch bounds the leases given up by one statement.
const maxReleaseBatch = 1000

// releaser holds the leases given up and not yet written free.
type releaser struct {
	mu       sync.Mutex
	queued   map[string]string // mailbox → token, waiting for the next statement
	inflight map[string]string // mailbox → token, in the statement under way
	running  bool              // releaseLoop runs
	idle     chan struct{}     // closed when running ends; nil while idle
	paused   bool              // tests: the queued releases wait
	// failures counts the release statements that failed in a row, since
	// failedSince; releaseLoop waits longer after each.
	failures    int
	failedSince time.Time
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
	s.startReleases()
}

// startReleases starts releaseLoop unless it runs or releases are paused.
// r.mu is held.
func (s *Store) startReleases() {
	r := &s.releases
	if !r.running && !r.paused && len(r.queued) > 0 {
		r.running = true
		r.idle = make(chan struct{})
		go s.releaseLoop()
	}
}

// releasing returns the token of mailbox's lease if it is queued or being
// written free ("" if not): a lease this node gave up, that leaseSQL may
// take over.
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

// takeReleases moves up to maxReleaseBatch queued releases, none of the
// maildrops of reqs (those are taken over), to the statement under way,
// and returns them (nil if none, or while paused).
func (s *Store) takeReleases(reqs []*openReq) map[string]string {
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.paused || len(r.queued) == 0 {
		return nil
	}
	skip := make(map[string]bool, len(reqs))
	for _, q := range reqs {
		skip[q.md.user] = true
	}
	batch := make(map[string]string, min(len(r.queued), maxReleaseBatch))
	for _, box := range slices.Sorted(maps.Keys(r.queued)) {
		if len(batch) == maxReleaseBatch {
			break
		}
		if !skip[box] {
			batch[box] = r.queued[box]
			delete(r.queued, box)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	r.inflight = batch
	return batch
}

// releasesWritten ends the statement of batch (taken by takeReleases). A
// failure puts the releases back in the queue (but for a maildrop whose
// newer release is queued): releaseLoop tries them again after a pause
// (releaseBackoff), so that the maildrops are free soon after the
// database answers again, rather than when their leases expire. Once the
// statements have failed for a whole lease, or when the Store is closing,
// a failed batch is given up: the leases expire by themselves.
func (s *Store) releasesWritten(batch map[string]string, err error) {
	if len(batch) == 0 {
		return
	}
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inflight = nil
	if err == nil {
		r.failures, r.failedSince = 0, time.Time{}
		return
	}
	s.stats.releaseFailures.Add(1)
	now := time.Now()
	if r.failures == 0 {
		r.failedSince = now
	}
	r.failures++
	if s.stopping() || now.Sub(r.failedSince) >= s.lease {
		s.log.Warn("pgstore: releasing maildrop locks failed; they expire by themselves", "err", dbError("release", err), "sessions", len(batch))
		return
	}
	s.log.Warn("pgstore: releasing maildrop locks failed; trying again", "err", dbError("release", err), "sessions", len(batch))
	if r.queued == nil {
		r.queued = map[string]string{}
	}
	for box, tok := range batch {
		if _, ok := r.queued[box]; !ok {
			r.queued[box] = tok
		}
	}
	s.startReleases()
}

// releaseBackoff is releaseLoop's pause after n failed release
// statements in a row: 20 ms, doubled each time, at most a second (and
// at most a third of the lease).
func (s *Store) releaseBackoff(n int) time.Duration {
	return min(10*time.Millisecond<<min(n, 10), time.Second, s.lease/3)
}

// stopping reports whether Close has begun.
func (s *Store) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// releaseLoop writes the queued releases that no group of logins took,
// until none is left. It waits for the group in the database, if any, and
// leaves the releases to the group gathering, if any (or starting to
// gather within releaseLinger, or within releaseBackoff after failed
// statements): the group's statement gives them up with its logins.
func (s *Store) releaseLoop() {
	r, o := &s.releases, &s.opens
	waited := false // the pause before this loop's own statement
	for {
		o.flushing <- struct{}{}
		r.mu.Lock()
		if len(r.queued) == 0 || r.paused {
			r.running = false
			close(r.idle)
			r.idle = nil
			r.mu.Unlock()
			<-o.flushing
			return
		}
		pause := s.releaseLinger
		if r.failures > 0 {
			pause = s.releaseBackoff(r.failures)
		}
		r.mu.Unlock()
		o.mu.Lock()
		g := o.next
		o.mu.Unlock()
		if g != nil { // its leader waits for the token: the releases go with it
			<-o.flushing
			<-g.done
			continue
		}
		if !waited && pause > 0 {
			<-o.flushing
			waited = true
			select {
			case <-time.After(pause):
			case <-s.stop:
			}
			continue
		}
		waited = false
		batch := s.takeReleases(nil)
		ctx, cancel := s.op(context.Background())
		b := &pgx.Batch{}
		s.queueLeases(b, newLeaseArgs(batch, nil))
		err := s.pool.SendBatch(ctx, b).Close()
		cancel()
		s.releasesWritten(batch, err)
		<-o.flushing
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
