package pgstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/postie-mail/postie/store"
)

// holdReleases keeps s from writing the releases queued from now on until
// resume is called: neither releaseLoop nor a group of logins writes them.
func holdReleases(t *testing.T, s *Store) (resume func()) {
	t.Helper()
	s.waitReleases(t.Context())
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		t.Fatal("releases still being written")
	}
	r.paused = true
	return func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.paused = false
		s.startReleases()
	}
}

// leases returns the number of leases held in the database.
func leases(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM postie_leases WHERE expires > clock_timestamp()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestReleasesBatched: the sessions that end while a release statement is
// under way give up their leases together in the next one, one round
// trip for all; Close does not wait for it.
func TestReleasesBatched(t *testing.T) {
	t.Parallel()
	s, c := newCountingStore(t, pg.DB(t))
	const n = 10
	mds := make([]store.Maildrop, n)
	for i := range n {
		deliverT(t, s, fmt.Sprintf("u%d", i), "hi\n")
		mds[i] = openT(t, s, fmt.Sprintf("u%d", i))
	}
	resume := holdReleases(t, s)
	t0 := c.trips.Load()
	for _, md := range mds {
		if err := md.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.trips.Load() - t0; got != 0 {
		t.Errorf("Close made %d round trips, want 0 (the releases are queued)", got)
	}
	if got := leases(t, s); got != n {
		t.Fatalf("%d leases before the release statement, want %d", got, n)
	}
	t0 = c.trips.Load()
	resume()
	s.waitReleases(t.Context())
	if got := c.trips.Load() - t0; got != 1 {
		t.Errorf("%d releases took %d round trips, want 1", n, got)
	}
	if got := leases(t, s); got != 0 {
		t.Errorf("%d leases left after the releases", got)
	}
	// The rows stay, given up, for the next logins to update in place.
	var rows, free int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE expires = '-infinity') FROM postie_leases`).Scan(&rows, &free); err != nil {
		t.Fatal(err)
	}
	if rows != n || free != n {
		t.Errorf("%d lease rows, %d given up, want %d and %d", rows, free, n, n)
	}
	for i := range n {
		openT(t, s, fmt.Sprintf("u%d", i)).Close()
	}
	s.waitReleases(t.Context())
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*), count(*) FILTER (WHERE expires = '-infinity') FROM postie_leases`).Scan(&rows, &free); err != nil {
		t.Fatal(err)
	}
	if rows != n || free != n {
		t.Errorf("after more logins: %d lease rows, %d given up, want %d and %d", rows, free, n, n)
	}
	// Unlogged: no WAL for a login's lease (schema 5).
	var persistence string
	if err := s.pool.QueryRow(t.Context(), `SELECT relpersistence::text FROM pg_class WHERE oid = 'postie_leases'::regclass`).Scan(&persistence); err != nil || persistence != "u" {
		t.Errorf("postie_leases persistence %q, want u (unlogged): %v", persistence, err)
	}
	if got := s.Stats().LeasesTakenOver; got != 0 {
		t.Errorf("%d leases counted as taken over from a live session, want 0 (they were given up)", got)
	}
}

// TestReloginTakesOverQueuedRelease: a login right after a logout on the
// same node, before the old lease is deleted, takes it over instead of
// meeting it ([IN-USE]); the queued release then deletes nothing of the
// new session's, which keeps the other node out.
func TestReloginTakesOverQueuedRelease(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a, b := newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")
	b.openRetries = nil
	deliverT(t, a, "alice", "hello\n")
	resume := holdReleases(t, a)
	if err := openT(t, a, "alice").Close(); err != nil {
		t.Fatal(err)
	}
	if tok := a.releasing("alice"); tok == "" {
		t.Fatal("no release queued")
	}
	md := openT(t, a, "alice") // before the old lease is gone
	if tok := a.releasing("alice"); tok != "" {
		t.Errorf("the release of the lease taken over is still queued")
	}
	resume()
	a.waitReleases(t.Context())
	if got := leases(t, a); got != 1 {
		t.Fatalf("%d leases, want the new session's", got)
	}
	if _, err := b.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("node b Open during node a's new session: %v, want ErrInUse", err)
	}
	if got := len(md.Messages()); got != 1 {
		t.Errorf("%d messages, want 1", got)
	}
	md.Close()
	a.waitReleases(t.Context())
	openT(t, b, "alice").Close()
}

// TestOpenWaitsForReleaseElsewhere: a login on another node right after a
// logout, while the old lease is still queued for release, tries again
// instead of answering [IN-USE], and gets the maildrop once the release
// is written. A lease that stays held is tried len(openRetries)+1 times.
func TestOpenWaitsForReleaseElsewhere(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a := newTestStore(t, dsn, "node-a")
	b, c := newCountingStore(t, dsn)
	deliverT(t, a, "alice", "hello\n")

	held := openT(t, a, "alice")
	b.openRetries = []time.Duration{time.Millisecond, time.Millisecond}
	t0 := c.trips.Load()
	if _, err := b.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("Open of a held maildrop: %v, want ErrInUse", err)
	}
	if got := c.trips.Load() - t0; got != 3 {
		t.Errorf("Open of a held maildrop tried %d times, want 3", got)
	}

	resume := holdReleases(t, a)
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	// Many short pauses: the release goes out after the first try has
	// failed, and Open gets the maildrop at the next, however slow the
	// machine.
	b.openRetries = slices.Repeat([]time.Duration{time.Millisecond}, 100000)
	t0 = c.trips.Load()
	done := make(chan error, 1)
	go func() {
		md, err := b.Open(t.Context(), "alice")
		if err == nil {
			err = md.Close()
		}
		done <- err
	}()
	for c.trips.Load()-t0 < 2 { // the first try failed
		time.Sleep(time.Millisecond)
	}
	resume()
	if err := <-done; err != nil {
		t.Fatalf("Open on node b after node a's logout: %v", err)
	}
}

// TestOpensGrouped: the logins that arrive while a group is in the
// database go together in the next round trip, each with its own
// outcome: a maildrop with mail, one unchanged since the node's cached
// snapshot, one that never had mail, one held on another node
// ([IN-USE]), and a second login of a maildrop already in the group
// ([IN-USE], the first gets it).
func TestOpensGrouped(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	s, c := newCountingStore(t, dsn)
	other := newTestStore(t, dsn, "node-b")
	s.openRetries = nil
	for i := range 3 {
		deliverT(t, s, "full", fmt.Sprintf("message %d\n", i))
	}
	deliverT(t, s, "cached", "one\n")
	deliverT(t, s, "busy", "one\n")
	openT(t, s, "cached").Close() // the node's snapshot of it
	s.waitReleases(t.Context())
	held := openT(t, other, "busy")
	defer held.Close()

	users := []string{"full", "cached", "never", "busy", "full"}
	want := map[string]int{"full": 3, "cached": 1, "never": 0}
	s.opens.flushing <- struct{}{} // a group in the database: the logins gather
	type result struct {
		user string
		md   store.Maildrop
		err  error
	}
	results := make(chan result, len(users))
	for i, u := range users {
		if i == len(users)-1 { // the second login of "full" after the first joined
			for !queued(s, 4) {
				time.Sleep(time.Millisecond)
			}
		}
		go func() {
			md, err := s.Open(t.Context(), u)
			results <- result{u, md, err}
		}()
	}
	// The duplicate is refused without joining: four requests wait.
	dup := <-results
	if dup.user != "full" || !errors.Is(dup.err, store.ErrInUse) {
		t.Fatalf("first outcome: %s %v, want the second login of full refused with ErrInUse", dup.user, dup.err)
	}
	t0 := c.trips.Load()
	<-s.opens.flushing
	var rs []result
	for range len(users) - 1 {
		rs = append(rs, <-results)
	}
	if got := c.trips.Load() - t0; got != 1 {
		t.Errorf("4 logins took %d round trips, want 1", got)
	}
	for _, r := range rs {
		n, ok := want[r.user]
		switch {
		case !ok:
			if !errors.Is(r.err, store.ErrInUse) {
				t.Errorf("%s: %v, want ErrInUse", r.user, r.err)
			}
		case r.err != nil:
			t.Errorf("%s: %v", r.user, r.err)
		default:
			if got := len(r.md.Messages()); got != n {
				t.Errorf("%s: %d messages, want %d", r.user, got, n)
			}
			r.md.Close()
		}
	}
}

// queued reports whether n logins wait in s's next group.
func queued(s *Store, n int) bool {
	s.opens.mu.Lock()
	defer s.opens.mu.Unlock()
	return s.opens.next != nil && len(s.opens.next.reqs) == n
}

// TestStoreCloseReleases: closing a Store (a node shutting down) gives up
// the leases of its sessions still open, so that another node gets their
// maildrops at once, without waiting for them to expire.
func TestStoreCloseReleases(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a, b := newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")
	b.openRetries = nil
	deliverT(t, a, "alice", "hello\n")
	deliverT(t, a, "bob", "hello\n")
	openT(t, a, "alice")
	openT(t, a, "bob")
	if _, err := b.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		t.Fatalf("node b Open during node a's session: %v, want ErrInUse", err)
	}
	a.Close()
	for _, u := range []string{"alice", "bob"} {
		md, err := b.Open(t.Context(), u)
		if err != nil {
			t.Fatalf("node b Open of %s after node a closed: %v", u, err)
		}
		md.Close()
	}
}

// TestReleasesRideWithLogins: the sessions that end while a group of
// logins is in the database give up their leases in the next group's
// statement (one round trip, one transaction for both), not in a round
// trip of their own; and the next group does not give up a lease it takes
// over.
func TestReleasesRideWithLogins(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	s, c := newCountingStore(t, dsn)
	other := newTestStore(t, dsn, "node-b")
	other.openRetries = nil
	s.openRetries = nil
	users := []string{"a1", "a2", "a3", "b1", "b2"}
	for _, u := range users {
		deliverT(t, s, u, "hi\n")
	}
	mds := make(map[string]store.Maildrop)
	for _, u := range []string{"a1", "a2", "a3", "b1"} {
		mds[u] = openT(t, s, u)
	}
	s.waitReleases(t.Context())

	s.opens.flushing <- struct{}{} // a group in the database
	for _, u := range []string{"a1", "a2", "a3", "b1"} {
		if err := mds[u].Close(); err != nil {
			t.Fatal(err)
		}
	}
	// b1 logs in again (it takes its queued lease over), b2 for the first time.
	type result struct {
		md  store.Maildrop
		err error
	}
	results := make(chan result, 2)
	for i, u := range []string{"b1", "b2"} {
		go func() {
			md, err := s.Open(t.Context(), u)
			results <- result{md, err}
		}()
		for !queued(s, i+1) {
			time.Sleep(time.Millisecond)
		}
	}
	t0 := c.trips.Load()
	<-s.opens.flushing
	for range 2 {
		r := <-results
		if r.err != nil {
			t.Fatalf("Open: %v", r.err)
		}
		defer r.md.Close()
	}
	s.waitReleases(t.Context())
	if got := c.trips.Load() - t0; got != 1 {
		t.Errorf("2 logins and 4 releases took %d round trips, want 1", got)
	}
	if tok := s.releasing("b1"); tok != "" {
		t.Errorf("the release of b1's lease, taken over, is still queued")
	}
	// a1..a3 are free: another node gets them at once; b1 and b2 are held.
	for _, u := range users {
		md, err := other.Open(t.Context(), u)
		switch {
		case u[0] == 'a' && err != nil:
			t.Errorf("node b Open of %s, given up: %v", u, err)
		case u[0] == 'b' && !errors.Is(err, store.ErrInUse):
			t.Errorf("node b Open of %s, held: %v, want ErrInUse", u, err)
		}
		if err == nil {
			md.Close()
		}
	}
}

// TestReleaseLingersForLogins: a release queued while no group of logins
// is in the database or gathering waits releaseLinger for one, and a
// login that comes meanwhile gives it up in its own statement: one round
// trip for both.
func TestReleaseLingersForLogins(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	s, c := newCountingStore(t, dsn)
	s.releaseLinger = time.Hour // no release goes by itself in this test
	other := newTestStore(t, dsn, "node-b")
	other.openRetries = nil
	deliverT(t, s, "alice", "hi\n")
	deliverT(t, s, "bob", "hi\n")
	md := openT(t, s, "alice")
	t0 := c.trips.Load()
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	// Time for a release loop that did not linger to write alice's
	// release by itself (a round trip more); one that lingers waits for an
	// hour, so the outcome does not depend on the machine's speed.
	time.Sleep(20 * time.Millisecond)
	bob := openT(t, s, "bob")
	defer bob.Close()
	if got := c.trips.Load() - t0; got != 1 {
		t.Errorf("a logout and a login took %d round trips, want 1", got)
	}
	if tok := s.releasing("alice"); tok != "" {
		t.Errorf("alice's release is still queued after bob's login")
	}
	md, err := other.Open(t.Context(), "alice")
	if err != nil {
		t.Fatalf("node b Open of alice, given up: %v", err)
	}
	md.Close()
}

// failingRelease ends a session of alice on node a (s) while another
// transaction (tx, of node b) holds her lease's row, and returns once a
// release statement has failed: past lock_timeout, 50 ms on s.
func failingRelease(t *testing.T) (s, other *Store, tx pgx.Tx) {
	t.Helper()
	dsn := pg.DB(t)
	s = newTestStore(t, dsn+" lock_timeout=50", "node-a")
	other = newTestStore(t, dsn, "node-b")
	other.openRetries = nil
	deliverT(t, s, "alice", "hi\n")
	md := openT(t, s, "alice")
	tx, err := other.pool.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tx.Rollback(context.Background()) })
	if _, err := tx.Exec(t.Context(), `SELECT 1 FROM postie_leases WHERE mailbox = 'alice' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	for s.Stats().LeaseReleaseFailures == 0 {
		time.Sleep(time.Millisecond)
	}
	return s, other, tx
}

// TestReleaseRetriedAfterFailure: a release statement that fails (here
// another transaction holds the lease's row past lock_timeout) is tried
// again, so that the maildrop is free as soon as the database lets it,
// not when the lease expires; the failures are counted.
func TestReleaseRetriedAfterFailure(t *testing.T) {
	t.Parallel()
	s, other, tx := failingRelease(t)
	if tok := s.releasing("alice"); tok == "" {
		t.Fatal("the release that failed is no longer queued")
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.waitReleases(t.Context())
	if got := leases(t, s); got != 0 {
		t.Errorf("%d leases held after the release was tried again, want 0", got)
	}
	md, err := other.Open(t.Context(), "alice")
	if err != nil {
		t.Fatalf("node b Open of alice once the release went through: %v", err)
	}
	md.Close()
}

// TestReleaseFailingAtClose: closing a Store while its release statements
// fail gives the releases up (their leases expire by themselves) at the
// first failure after Close began, instead of trying them again until
// Close's wait runs out or a whole lease has passed.
func TestReleaseFailingAtClose(t *testing.T) {
	t.Parallel()
	s, _, _ := failingRelease(t)
	s.stopRenewing() // Close's first step: from here on, the Store is closing
	before := s.Stats().LeaseReleaseFailures
	s.Close()
	// At most the statement under way when the stop came: each failure
	// takes lock_timeout (50 ms), and tried again after the stop they
	// would go on for the test's lease (2 s).
	if n := s.stats.releaseFailures.Load() - before; n > 1 {
		t.Errorf("%d release statements failed after Close began, want at most 1", n)
	}
	r := &s.releases
	r.mu.Lock()
	running, queued := r.running, len(r.queued)
	r.mu.Unlock()
	if running || queued != 0 {
		t.Errorf("after Close: release loop running %v, %d releases queued; want them given up", running, queued)
	}
}
