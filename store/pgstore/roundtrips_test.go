package pgstore

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/postie-mail/postie/store"
)

// rtCounter is a pgx tracer that counts round trips (a query, or a batch
// sent at once) and statements (each query of a batch too). A statement
// prepared on first use costs one more round trip that it does not count.
type rtCounter struct {
	trips, stmts atomic.Int64
	forgets      atomic.Int64 // forgetSQL statements
}

func (c *rtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	c.trips.Add(1)
	c.stmts.Add(1)
	if d.SQL == forgetSQL {
		c.forgets.Add(1)
	}
	return ctx
}

func (c *rtCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (c *rtCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.trips.Add(1)
	return ctx
}

func (c *rtCounter) TraceBatchQuery(_ context.Context, _ *pgx.Conn, _ pgx.TraceBatchQueryData) {
	c.stmts.Add(1)
}

func (c *rtCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// newCountingStore is newTestStore with a round-trip counter.
func newCountingStore(t testing.TB, dsn string) (*Store, *rtCounter) {
	t.Helper()
	c := &rtCounter{}
	s, err := New(t.Context(), Options{DSN: dsn, LeaseDuration: testLease, Timeout: 5 * time.Second, Node: "count", MaxConns: 8,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), tracer: c})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, c
}

// TestLoginRoundTrips counts the round trips and statements of a login
// (Open), STAT (no round trip: the snapshot) and a QUIT with nothing
// changed (Close), on a maildrop with mail, first with a cold snapshot
// cache, then unchanged, then after a delivery.
func TestLoginRoundTrips(t *testing.T) {
	s, c := newCountingStore(t, pg.DB(t))
	for i := range 3 {
		if _, err := s.Deliver(t.Context(), "alice", strings.NewReader(fmt.Sprintf("Subject: %d\n\nhi\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	login := func(want int) (trips, stmts int64) {
		t.Helper()
		t0, s0 := c.trips.Load(), c.stmts.Load()
		md, err := s.Open(t.Context(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if got := len(md.Messages()); got != want {
			t.Fatalf("STAT: %d messages, want %d", got, want)
		}
		if err := md.Close(); err != nil {
			t.Fatal(err)
		}
		s.waitReleases(t.Context())
		return c.trips.Load() - t0, c.stmts.Load() - s0
	}
	login(3) // prepares the statements
	s.snaps = newSnapCache(DefaultSnapshotCache)
	for _, step := range []struct {
		name         string
		deliver      bool
		trips, stmts int64
	}{
		{"cold cache", false, wantLoginTrips, wantLoginStmts},
		{"unchanged", false, wantLoginTrips, wantLoginStmts},
		{"after a delivery", true, wantLoginTrips, wantLoginStmts},
	} {
		want := 3
		if step.deliver {
			if _, err := s.Deliver(t.Context(), "alice", strings.NewReader("Subject: new\n\nhi\n")); err != nil {
				t.Fatal(err)
			}
			want = 4
		}
		trips, stmts := login(want)
		if trips != step.trips || stmts != step.stmts {
			t.Errorf("%s: login+STAT+QUIT took %d round trips and %d statements, want %d and %d", step.name, trips, stmts, step.trips, step.stmts)
		}
	}
	// The lease was released: another session gets it at once.
	md, err := s.Open(t.Context(), "alice")
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	md.Close()
}

// BenchmarkOpenClose: a login (lease and snapshot) then logout with
// nothing changed, on 16 maildrops of 10 messages unchanged since the
// last login, from 4 goroutines per CPU; reports the round trips and
// statements per login.
func BenchmarkOpenClose(b *testing.B) {
	s, c := newCountingStore(b, pg.DB(b))
	for u := range 16 {
		for range 10 {
			if _, err := s.Deliver(b.Context(), fmt.Sprintf("user%d", u), strings.NewReader("Subject: x\n\nhi\n")); err != nil {
				b.Fatal(err)
			}
		}
	}
	var next atomic.Int64
	b.SetParallelism(4)
	b.ReportAllocs()
	t0, s0 := c.trips.Load(), c.stmts.Load()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		u := fmt.Sprintf("user%d", next.Add(1)%16) // own maildrop per goroutine while there are ≤16
		for pb.Next() {
			md, err := s.Open(b.Context(), u)
			if err != nil {
				b.Error(err)
				return
			}
			if len(md.Messages()) != 10 {
				b.Errorf("%d messages", len(md.Messages()))
			}
			md.Close()
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
	b.ReportMetric(float64(c.trips.Load()-t0)/float64(b.N), "roundtrips/login")
	b.ReportMetric(float64(c.stmts.Load()-s0)/float64(b.N), "stmts/login")
}

// The round trips and statements of login+STAT+QUIT (Open and Close).
const (
	wantLoginTrips = 2
	wantLoginStmts = 3
)

// TestAbuseForgetBatched: logins without LOGIN-DELAY that arrive while a
// batch of forgets is being written are forgotten together, in one round
// trip, each with postie_login_success's rules: the address's failures
// go, and the user's when they all came from that address.
func TestAbuseForgetBatched(t *testing.T) {
	s, c := newCountingStore(t, pg.DB(t))
	a := s.Abuse()
	addr := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }
	// Names as a client may type them, with array syntax and quotes.
	name := func(i int) string { return fmt.Sprintf(`u%d,"{}\' NULL`, i) }
	const n = 10
	for i := range n {
		if _, _, _, err := a.LoginFailure(t.Context(), addr(i), name(i), time.Hour, 0, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	// u0 failed from another address too: not forgotten by u0's login
	// from addr(0). addr(n) logs in as nobody failing: its failure stays.
	if _, _, _, err := a.LoginFailure(t.Context(), addr(n+1), name(0), time.Hour, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.LoginFailure(t.Context(), addr(n), "", time.Hour, 0, time.Hour); err != nil {
		t.Fatal(err)
	}

	a.flushing <- struct{}{} // a batch being written: the logins queue
	errs := make(chan error, n)
	for i := range n {
		go func() {
			_, err := a.LoginSuccess(t.Context(), addr(i), name(i), "", 0)
			errs <- err
		}()
	}
	for queued := 0; queued < n; {
		time.Sleep(time.Millisecond)
		a.mu.Lock()
		if a.next != nil {
			queued = len(a.next.addrs)
		}
		a.mu.Unlock()
	}
	t0 := c.trips.Load()
	<-a.flushing
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if got := c.trips.Load() - t0; got != 1 {
		t.Errorf("%d logins forgotten in %d round trips, want 1", n, got)
	}
	var addrs, users []string
	if err := s.pool.QueryRow(t.Context(), `SELECT
		(SELECT coalesce(array_agg(host(addr) ORDER BY addr), '{}') FROM postie_abuse_addrs),
		(SELECT coalesce(array_agg(name ORDER BY name), '{}') FROM postie_abuse_users)`).Scan(&addrs, &users); err != nil {
		t.Fatal(err)
	}
	if want := []string{addr(n).String(), addr(n + 1).String()}; !slices.Equal(addrs, want) {
		t.Errorf("addresses with failures left: %q, want %q", addrs, want)
	}
	if want := []string{name(0)}; !slices.Equal(users, want) {
		t.Errorf("users with failures left: %q, want %q", users, want)
	}
}

// TestSnapshotUnchangedReadsNoMessage: a login that finds a maildrop
// unchanged since the node's cached snapshot reads none of its messages
// in the database (EXPLAIN ANALYZE of snapshotSQL: the scan of
// postie_messages is never executed), however many it has; a changed
// one reads them all, unless the session does not hold its lease (a login
// refused [IN-USE]).
func TestSnapshotUnchangedReadsNoMessage(t *testing.T) {
	s := newTestStore(t, pg.DB(t), "n")
	for i := range 200 {
		if _, err := s.Deliver(t.Context(), "alice", strings.NewReader(fmt.Sprintf("Subject: %d\n\nhi\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	md, err := s.Open(t.Context(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	var gen, box int64
	if err := s.pool.QueryRow(t.Context(), `SELECT generation, id FROM postie_mailboxes WHERE name = 'alice'`).Scan(&gen, &box); err != nil {
		t.Fatal(err)
	}
	tok := md.(*maildrop).token
	read := func(tok string, gen int64) (rows float64) {
		t.Helper()
		var plan []map[string]any
		if err := s.pool.QueryRow(t.Context(), "EXPLAIN (ANALYZE, FORMAT JSON) "+snapshotSQL,
			[]string{"alice"}, []string{tok}, []int64{gen}, []int64{box}).Scan(&plan); err != nil {
			t.Fatal(err)
		}
		var walk func(n map[string]any)
		walk = func(n map[string]any) {
			if n["Relation Name"] == "postie_messages" {
				loops, _ := n["Actual Loops"].(float64)
				r, _ := n["Actual Rows"].(float64)
				rows += loops * r
			}
			if r, ok := n["Rows Removed by Join Filter"].(float64); ok {
				rows += r
			}
			for _, c := range asSlice(n["Plans"]) {
				walk(c)
			}
		}
		walk(plan[0]["Plan"].(map[string]any))
		return rows
	}
	if got := read(tok, gen); got != 0 {
		t.Errorf("an unchanged maildrop of 200 messages: %v message rows read, want 0", got)
	}
	if got := read(tok, gen-1); got != 200 {
		t.Errorf("a changed maildrop of 200 messages: %v message rows read, want 200", got)
	}
	if got := read(newToken(), gen-1); got != 0 {
		t.Errorf("a changed maildrop of 200 messages, lease held by another session: %v message rows read, want 0", got)
	}
}

// TestSortMessages: a snapshot's messages are put in the order of their
// ids, each with its own size and UIDL, whatever order the rows came in.
func TestSortMessages(t *testing.T) {
	md := &maildrop{
		msgs:  []message{{id: 7, chunks: 1}, {id: 3, chunks: 2}, {id: 5, chunks: 3}},
		infos: []store.MessageInfo{{UID: "u7", Size: 70}, {UID: "u3", Size: 30}, {UID: "u5", Size: 50}},
	}
	sortMessages(md)
	wantIDs, wantUIDs := []int64{3, 5, 7}, []string{"u3", "u5", "u7"}
	for i := range md.msgs {
		if md.msgs[i].id != wantIDs[i] || md.infos[i].UID != wantUIDs[i] || md.infos[i].Size != md.msgs[i].id*10 || md.msgs[i].chunks != []int{0, 0, 0, 2, 0, 3, 0, 1}[md.msgs[i].id] {
			t.Errorf("message %d: %+v %+v, want id %d, %s", i, md.msgs[i], md.infos[i], wantIDs[i], wantUIDs[i])
		}
	}
}

func asSlice(v any) []map[string]any {
	xs, _ := v.([]any)
	out := make([]map[string]any, 0, len(xs))
	for _, x := range xs {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// TestStatementsPlannedOnce: the statements of a login, a delivery and a
// QUIT that deletes run their generic plan, made once per connection,
// not a plan of their own at each execution (PostgreSQL's default for a
// statement whose parameters are lists: its planner then cost the
// database 40% of a login's CPU). A DSN that chooses plan_cache_mode
// keeps its choice.
func TestStatementsPlannedOnce(t *testing.T) {
	dsn := pg.DB(t)
	s, err := New(t.Context(), Options{DSN: dsn, LeaseDuration: testLease, Timeout: 5 * time.Second, Node: "n", MaxConns: 1,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 6 {
		deliverT(t, s, "alice", fmt.Sprintf("message %d\n", i))
		md := openT(t, s, "alice")
		if err := md.Commit(t.Context(), []int{0}); err != nil {
			t.Fatal(err)
		}
		md.Close()
		s.waitReleases(t.Context())
	}
	// MaxConns 1: the statements above ran on the connection read here.
	rows, err := s.pool.Query(t.Context(), `SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements`)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for rows.Next() {
		var stmt string
		var generic, custom int64
		if err := rows.Scan(&stmt, &generic, &custom); err != nil {
			t.Fatal(err)
		}
		for name, sql := range map[string]string{"leaseSQL": leaseSQL, "snapshotSQL": snapshotSQL, "deliverSQL": deliverSQL, "commitSQL": commitSQL} {
			if strings.TrimSpace(stmt) == strings.TrimSpace(sql) {
				seen[name] = true
				if custom != 0 || generic == 0 {
					t.Errorf("%s: %d generic plans, %d custom plans, want only generic", name, generic, custom)
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 {
		t.Errorf("statements found prepared: %v, want leaseSQL, snapshotSQL, deliverSQL and commitSQL", seen)
	}

	cfg, err := PoolConfig(dsn + " plan_cache_mode=auto")
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; got != "auto" {
		t.Errorf("plan_cache_mode from the DSN: %q, want auto", got)
	}
}
