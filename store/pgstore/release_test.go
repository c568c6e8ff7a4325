package pgstore

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

// holdReleases keeps s from writing the releases queued from now on until
// resume is called, as if a release statement were under way.
func holdReleases(t *testing.T, s *Store) (resume func()) {
	t.Helper()
	s.waitReleases(t.Context())
	r := &s.releases
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.running {
		t.Fatal("releases still being written")
	}
	r.running, r.idle = true, make(chan struct{})
	return func() { go s.releaseLoop() }
}

// leases returns the number of leases in the database.
func leases(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM postie_leases`).Scan(&n); err != nil {
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
