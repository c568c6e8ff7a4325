//go:build linux

package pgstore

import (
	"fmt"
	"os"
	"testing"

	"github.com/postie-mail/postie/store"
)

// fdCount is the number of the process's open descriptors.
func fdCount(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestIdleDescriptors: an open maildrop holds no descriptor and no
// database connection of its own between calls (its lock is a lease row,
// renewed for all sessions at once): three times as many sessions as the
// pool has connections, each after a RETR, add no more descriptors than
// the pool's connections.
func TestIdleDescriptors(t *testing.T) {
	s := newTestStore(t, pg.DB(t), "node-a")
	n := 3 * int(s.pool.Config().MaxConns)
	for i := range n {
		deliverT(t, s, fmt.Sprintf("idle%d", i), "Subject: x\r\n\r\nbody\r\n")
	}
	before, conns := fdCount(t), s.pool.Stat().TotalConns()
	mds := make([]store.Maildrop, n)
	for i := range mds {
		mds[i] = openT(t, s, fmt.Sprintf("idle%d", i))
		defer mds[i].Close()
		if got := readT(t, mds[i], 0); got != "Subject: x\r\n\r\nbody\r\n" {
			t.Fatalf("RETR %d: %q", i, got)
		}
	}
	added, pool := fdCount(t)-before, int(s.pool.Stat().TotalConns()-conns)
	t.Logf("%d idle sessions: %d descriptors added, %d pool connections added", n, added, pool)
	if added > max(pool, 0) {
		t.Errorf("%d idle sessions added %d descriptors, the pool %d connections; want none but the pool's", n, added, pool)
	}
	if total := s.pool.Stat().TotalConns(); total > s.pool.Config().MaxConns {
		t.Errorf("pool: %d connections for %d idle sessions; want at most %d", total, n, s.pool.Config().MaxConns)
	}
}
