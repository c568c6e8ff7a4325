package pgstore

import (
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/store/storetest"
)

// pg is the PostgreSQL server of this test binary, started by the first
// test that needs it.
var pg testenv.Postgres

func TestMain(m *testing.M) {
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// testLease is the lease of test stores: short, so that expiry tests are
// quick, long enough for renewals (every third of it) under -race on a
// loaded machine.
const testLease = 2 * time.Second

// newTestStore opens a Store on dsn, closed when the test ends.
func newTestStore(t testing.TB, dsn string, node string) *Store {
	t.Helper()
	s, err := New(t.Context(), Options{DSN: dsn, LeaseDuration: testLease, Timeout: 5 * time.Second, Node: node, MaxConns: 8,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestStoretest(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return newTestStore(t, pg.DB(t), "node-a")
	})
}
