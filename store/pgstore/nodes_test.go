package pgstore

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

func deliverT(t *testing.T, s *Store, user, body string) store.DeliveryInfo {
	t.Helper()
	info, err := s.Deliver(t.Context(), user, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Deliver(%s): %v", user, err)
	}
	return info
}

func openT(t *testing.T, s *Store, user string) store.Maildrop {
	t.Helper()
	md, err := s.Open(t.Context(), user)
	if err != nil {
		t.Fatalf("Open(%s): %v", user, err)
	}
	return md
}

func readT(t *testing.T, md store.Maildrop, i int) string {
	t.Helper()
	r, err := md.Open(t.Context(), i)
	if err != nil {
		t.Fatalf("Open(%d): %v", i, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading %d: %v", i, err)
	}
	return string(b)
}

// crash makes s behave as a node that died: no more renewals, no lease
// released, connections gone.
func crash(s *Store) {
	s.once.Do(func() {
		s.stopRenewing()
		s.pool.Close()
	})
}

// TestTwoNodesLock: the lease of a session on one node keeps the other
// node out ([IN-USE]) for as long as the session lives, well past one
// lease duration (renewals), and Close lets the other in at once.
func TestTwoNodesLock(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a, b := newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")
	deliverT(t, a, "alice", "hello\n")
	md := openT(t, a, "alice")
	deadline := time.Now().Add(2 * testLease)
	for time.Now().Before(deadline) {
		md2, err := b.Open(t.Context(), "alice")
		if !errors.Is(err, store.ErrInUse) {
			if md2 != nil {
				md2.Close()
			}
			t.Fatalf("node b Open while node a's session lives: %v, want ErrInUse", err)
		}
		time.Sleep(testLease / 5)
	}
	// The same node's second session is refused too.
	if md2, err := a.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		if md2 != nil {
			md2.Close()
		}
		t.Fatalf("node a second Open: %v, want ErrInUse", err)
	}
	// Other maildrops are free.
	openT(t, b, "bob").Close()
	if got := readT(t, md, 0); got != "hello\n" {
		t.Errorf("message = %q", got)
	}
	if err := md.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	md = openT(t, b, "alice")
	defer md.Close()
	if n := len(md.Messages()); n != 1 {
		t.Errorf("node b sees %d messages, want 1", n)
	}
}

// TestDeadNodeLeaseExpires: a node that dies holding a lock (no Close, no
// renewal) frees the maildrop once its lease expires, not before.
func TestDeadNodeLeaseExpires(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a, b := newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")
	deliverT(t, a, "alice", "hello\n")
	openT(t, a, "alice") // never closed: the node dies
	crash(a)
	died := time.Now()
	if md, err := b.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		if md != nil {
			md.Close()
		}
		if time.Since(died) < testLease/2 {
			t.Fatalf("Open right after the node died: %v, want ErrInUse (the lease is still running)", err)
		}
	}
	var md store.Maildrop
	for {
		var err error
		md, err = b.Open(t.Context(), "alice")
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrInUse) {
			t.Fatalf("Open: %v", err)
		}
		if time.Since(died) > 20*testLease {
			t.Fatalf("maildrop still locked %v after its node died (lease %v)", time.Since(died), testLease)
		}
		time.Sleep(testLease / 10)
	}
	defer md.Close()
	if got := readT(t, md, 0); got != "hello\n" {
		t.Errorf("message = %q", got)
	}
	if st := b.Stats(); st.LeasesTakenOver != 1 {
		t.Errorf("node b: %d expired leases taken over, want 1", st.LeasesTakenOver)
	}
	// A lease released at Close is no takeover.
	md.Close()
	md2 := openT(t, b, "alice")
	md2.Close()
	if st := b.Stats(); st.LeasesTakenOver != 1 {
		t.Errorf("node b after an ordinary login: %d takeovers, want still 1", st.LeasesTakenOver)
	}
}

// TestStats: the pool's state, lease renewals, and round trips reported
// to ObserveRoundTrip.
func TestStats(t *testing.T) {
	t.Parallel()
	var trips atomic.Int64
	s, err := New(t.Context(), Options{DSN: pg.DB(t), LeaseDuration: testLease, Timeout: 5 * time.Second, MaxConns: 3,
		Logger:           slog.New(slog.NewTextHandler(io.Discard, nil)),
		ObserveRoundTrip: func(d time.Duration) { trips.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := trips.Load()
	if before == 0 {
		t.Error("the start's statements were not observed")
	}
	deliverT(t, s, "alice", "x\n")
	md := openT(t, s, "alice")
	if trips.Load() <= before {
		t.Error("delivery and login were not observed")
	}
	st := s.Stats()
	if st.MaxConns != 3 || st.AcquiredConns != 0 || st.TotalConns < 1 || st.IdleConns != st.TotalConns {
		t.Errorf("pool stats with no statement running: %+v", st)
	}
	// The open session's lease gets renewed (every third of the lease).
	for start := time.Now(); s.Stats().LeaseRenewals == 0; time.Sleep(testLease / 10) {
		if time.Since(start) > 20*testLease {
			t.Fatal("no lease renewal counted")
		}
	}
	md.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Errorf("Ping: %v", err)
	}
	if st := s.Stats(); st.LeaseRenewalFailures != 0 || st.LeasesLost != 0 {
		t.Errorf("failures counted with the database up: %+v", st)
	}
}

// TestLostLeaseDeletesNothing: a session whose lease expired (its node
// stopped renewing, e.g. cut off from the database) and was taken over by
// another node deletes nothing at UPDATE, and says so.
func TestLostLeaseDeletesNothing(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a, b := newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")
	for i := range 3 {
		deliverT(t, a, "alice", fmt.Sprintf("m%d\n", i))
	}
	mdA := openT(t, a, "alice")
	a.stopRenewing()
	var mdB store.Maildrop
	for start := time.Now(); ; time.Sleep(testLease / 10) {
		var err error
		if mdB, err = b.Open(t.Context(), "alice"); err == nil {
			break
		}
		if !errors.Is(err, store.ErrInUse) || time.Since(start) > 20*testLease {
			t.Fatalf("node b Open: %v", err)
		}
	}
	if err := mdA.Commit(t.Context(), []int{0, 1}); !errors.Is(err, store.ErrInUse) {
		t.Errorf("Commit with a lost lease: %v, want an ErrInUse error", err)
	}
	mdA.Close() // must not release node b's lease
	if md, err := a.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		if md != nil {
			md.Close()
		}
		t.Errorf("Open after the old session's Close: %v, want ErrInUse (node b holds it)", err)
	}
	if n := len(mdB.Messages()); n != 3 {
		t.Errorf("node b sees %d messages, want 3", n)
	}
	if err := mdB.Commit(t.Context(), []int{2}); err != nil {
		t.Fatalf("node b Commit: %v", err)
	}
	mdB.Close()
	md := openT(t, b, "alice")
	defer md.Close()
	if got := []string{readT(t, md, 0), readT(t, md, 1)}; len(md.Messages()) != 2 || !slices.Equal(got, []string{"m0\n", "m1\n"}) {
		t.Errorf("after node b's UPDATE: %d messages %q, want m0, m1", len(md.Messages()), got)
	}
}

// TestTwoNodesConcurrentDeliveries: both nodes deliver to the same users
// at once; every message lands once, with its own UIDL, and the counters
// of Usage add up.
func TestTwoNodesConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	nodes := []*Store{newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")}
	const per = 25
	type key struct{ user, body string }
	got := map[key]store.DeliveryInfo{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for n, s := range nodes {
		for _, user := range []string{"alice", "bob"} {
			for i := range per {
				wg.Go(func() {
					body := fmt.Sprintf("node %d message %d\n", n, i)
					info, err := s.Deliver(t.Context(), user, strings.NewReader(body))
					if err != nil {
						t.Errorf("Deliver: %v", err)
						return
					}
					mu.Lock()
					got[key{user, body}] = info
					mu.Unlock()
				})
			}
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, user := range []string{"alice", "bob"} {
		md := openT(t, nodes[i], user)
		msgs := md.Messages()
		if len(msgs) != 2*per {
			t.Fatalf("%s: %d messages, want %d", user, len(msgs), 2*per)
		}
		var octets int64
		seen := map[string]bool{}
		for k, m := range msgs {
			body := readT(t, md, k)
			info, ok := got[key{user, body}]
			if !ok || info.UID != m.UID || m.Size != int64(len(body)+1) {
				t.Errorf("%s message %d: %q %+v, delivery gave %+v", user, k, body, m, info)
			}
			if seen[m.UID] {
				t.Errorf("%s: UIDL %s twice", user, m.UID)
			}
			seen[m.UID] = true
			octets += int64(len(body))
		}
		md.Close()
		n, b, err := nodes[1-i].Usage(t.Context(), user)
		if err != nil || n != 2*per || b != octets {
			t.Errorf("Usage(%s) = %d, %d, %v; want %d, %d", user, n, b, err, 2*per, octets)
		}
	}
}

// TestConcurrentMigrations: nodes starting together on an empty database
// all come up; the schema is made once.
func TestConcurrentMigrations(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	const nodes = 4
	stores := make([]*Store, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			s, err := New(t.Context(), Options{DSN: dsn, LeaseDuration: testLease, Node: fmt.Sprintf("node-%d", i)})
			if err != nil {
				t.Errorf("node %d New: %v", i, err)
				return
			}
			stores[i] = s
		})
	}
	wg.Wait()
	for _, s := range stores {
		if s != nil {
			t.Cleanup(func() { s.Close() })
		}
	}
	if t.Failed() {
		return
	}
	var versions, prefixes int
	var prefix string
	if err := stores[0].pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM postie_schema), (SELECT count(*) FROM postie_meta WHERE key = 'uid_prefix'), (SELECT value FROM postie_meta WHERE key = 'uid_prefix')`).Scan(&versions, &prefixes, &prefix); err != nil {
		t.Fatal(err)
	}
	if versions != SchemaVersion() || prefixes != 1 {
		t.Errorf("postie_schema has %d rows (want %d), uid_prefix %d rows (want 1)", versions, SchemaVersion(), prefixes)
	}
	// All nodes agree on the UIDL prefix.
	for i, s := range stores {
		if s.uidPrefix != prefix+"." {
			t.Errorf("node %d uid prefix %q, want %q", i, s.uidPrefix, prefix+".")
		}
	}
	// A restart finds nothing to do.
	newTestStore(t, dsn, "node-again")
}

// TestNewerSchemaRefused: a node older than the database's schema does not
// start.
func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	s := newTestStore(t, dsn, "new")
	if _, err := s.pool.Exec(t.Context(), `INSERT INTO postie_schema (version, name, node) VALUES ($1, 'future.sql', 'x')`, SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	old, err := New(t.Context(), Options{DSN: dsn})
	if err == nil {
		old.Close()
		t.Fatal("New on a newer schema succeeded")
	}
	if want := fmt.Sprintf("version %d, newer than this postie knows (%d)", SchemaVersion()+1, SchemaVersion()); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

func TestBadDSN(t *testing.T) {
	t.Parallel()
	for _, dsn := range []string{"", "postgres://u:secretpw@[::1", "host=/nonexistent-dir-postie port=1 connect_timeout=2 password=secretpw"} {
		s, err := New(t.Context(), Options{DSN: dsn, Timeout: 2 * time.Second})
		if err == nil {
			s.Close()
			t.Errorf("New(%q) succeeded", dsn)
			continue
		}
		if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("New(%q) error shows the password: %v", dsn, err)
		}
	}
}

// TestMessageGone: a message removed behind the session's back (by an
// operator) gives ErrMessageGone, and UPDATE still removes the others.
func TestMessageGone(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, pg.DB(t), "n")
	deliverT(t, s, "alice", "a\n")
	deliverT(t, s, "alice", "")
	deliverT(t, s, "alice", "c\n")
	md := openT(t, s, "alice")
	defer md.Close()
	if _, err := s.pool.Exec(t.Context(), `DELETE FROM postie_messages WHERE id IN (SELECT id FROM postie_messages ORDER BY id LIMIT 2)`); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 1} {
		if r, err := md.Open(t.Context(), i); !errors.Is(err, store.ErrMessageGone) {
			if r != nil {
				r.Close()
			}
			t.Errorf("Open(%d) of a removed message: %v, want ErrMessageGone", i, err)
		}
	}
	if err := md.Commit(t.Context(), []int{0, 2}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	// The counters follow every deletion, the operator's too.
	if n, b, err := s.Usage(t.Context(), "alice"); err != nil || n != 0 || b != 0 {
		t.Errorf("Usage = %d, %d, %v; want 0, 0", n, b, err)
	}
}

// TestFailedBigDelivery: a delivery of several chunks whose input breaks
// half-way leaves no chunk behind.
func TestFailedBigDelivery(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, pg.DB(t), "n")
	big := bytes.Repeat([]byte("0123456789abcdef\n"), 3*chunkSize/17)
	r := io.MultiReader(bytes.NewReader(big), &errReader{errors.New("connection reset")})
	if _, err := s.Deliver(t.Context(), "alice", r); err == nil {
		t.Fatal("Deliver with a broken reader succeeded")
	}
	var chunks, msgs int
	if err := s.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM postie_chunks), (SELECT count(*) FROM postie_messages)`).Scan(&chunks, &msgs); err != nil {
		t.Fatal(err)
	}
	if chunks != 0 || msgs != 0 {
		t.Errorf("after a failed delivery: %d chunks, %d messages left", chunks, msgs)
	}
	info := deliverT(t, s, "alice", string(big))
	md := openT(t, s, "alice")
	defer md.Close()
	if got := readT(t, md, 0); got != string(big) || md.Messages()[0].UID != info.UID {
		t.Errorf("big message read back differs (%d octets, want %d)", len(got), len(big))
	}
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// TestDatabaseOutage: with the database unreachable (connections frozen,
// as behind a dead network), every operation fails within the timeout
// instead of hanging, and the store works again when the database is back.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	px := newFreezeProxy(t, pg.SocketDir(t)+"/.s.PGSQL.5432")
	tcpDSN := strings.Replace(dsn, "host="+pg.SocketDir(t)+" port=5432", fmt.Sprintf("host=127.0.0.1 port=%d", px.port()), 1)
	s, err := New(t.Context(), Options{DSN: tcpDSN, LeaseDuration: testLease, Timeout: time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	defer s.Close()
	deliverT(t, s, "alice", "before\n")
	px.freeze(true)
	for name, op := range map[string]func() error{
		"Deliver": func() error { _, err := s.Deliver(t.Context(), "alice", strings.NewReader("during\n")); return err },
		"Open": func() error {
			md, err := s.Open(t.Context(), "alice")
			if err == nil {
				md.Close()
			}
			return err
		},
		"Usage": func() error { _, _, err := s.Usage(t.Context(), "alice"); return err },
	} {
		done := make(chan error, 1)
		go func() { done <- op() }()
		select {
		case err := <-done:
			if err == nil {
				t.Errorf("%s succeeded with the database unreachable", name)
			} else if errors.Is(err, store.ErrInUse) || errors.Is(err, store.ErrBadUser) || errors.Is(err, store.ErrNoSuchUser) {
				t.Errorf("%s: %v, want a temporary error", name, err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s hung with the database unreachable", name)
		}
	}
	px.freeze(false)
	var md store.Maildrop
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if md, err = s.Open(t.Context(), "alice"); err == nil {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("Open after the outage: %v", err)
		}
	}
	defer md.Close()
	if n := len(md.Messages()); n != 1 {
		t.Errorf("after the outage: %d messages, want 1 (the delivery that failed must not land)", n)
	}
}

// freezeProxy forwards TCP connections to a Unix socket; frozen, it stops
// moving bytes (and new connections get nowhere), like a dead network.
type freezeProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	frozen bool
	conns  []net.Conn
}

func newFreezeProxy(t *testing.T, target string) *freezeProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &freezeProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.freeze(false)
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			wg.Go(func() { p.pipe(u, c) })
			wg.Go(func() { p.pipe(c, u) })
		}
	})
	return p
}

func (p *freezeProxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// freeze stops or restarts the traffic. Thawing drops the connections
// that were frozen, with the bytes held back: a dead network loses them.
func (p *freezeProxy) freeze(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = on
	if !on {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

func (p *freezeProxy) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.frozen
}

// pipe copies src to dst, holding bytes back while frozen.
func (p *freezeProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && p.isFrozen() {
			time.Sleep(20 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// genReader produces n octets of text lines without holding them.
type genReader struct{ n, off int }

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.n {
		return 0, io.EOF
	}
	k := min(len(p), g.n-g.off)
	for i := range k {
		if (g.off+i)%64 == 63 {
			p[i] = '\n'
		} else {
			p[i] = 'a' + byte((g.off+i)%26)
		}
	}
	g.off += k
	return k, nil
}

// heapPeak samples the heap while fn runs and returns its growth at the
// peak over the heap before.
func heapPeak(fn func()) uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	base, peak := m.HeapAlloc, m.HeapAlloc
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapAlloc)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	fn()
	close(stop)
	<-done
	return peak - base
}

// TestBigMessageStreams: a 10 MiB message goes in and out without being
// held whole: the heap grows by much less than the message while it is
// delivered and while it is read back. (The garbage collector runs often
// here, so that the heap shows what is live rather than what is left.)
func TestBigMessageStreams(t *testing.T) {
	s := newTestStore(t, pg.DB(t), "n")
	defer debug.SetGCPercent(debug.SetGCPercent(5))
	const size = 10 << 20
	var info store.DeliveryInfo
	var err error
	deliverPeak := heapPeak(func() { info, err = s.Deliver(t.Context(), "alice", &genReader{n: size}) })
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(size + size/64); info.Size != want {
		t.Errorf("wire size %d, want %d", info.Size, want)
	}
	md := openT(t, s, "alice")
	defer md.Close()
	total := 0
	readPeak := heapPeak(func() {
		r, err := md.Open(t.Context(), 0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		want := &genReader{n: size}
		buf, wbuf := make([]byte, 64<<10), make([]byte, 64<<10)
		for {
			n, err := r.Read(buf)
			if n > 0 {
				io.ReadFull(want, wbuf[:n])
				if !bytes.Equal(buf[:n], wbuf[:n]) {
					t.Fatalf("message differs at octet %d", total)
				}
				total += n
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	if total != size {
		t.Errorf("read %d octets, want %d", total, size)
	}
	t.Logf("heap peak +%d KiB delivering, +%d KiB reading a %d KiB message", deliverPeak>>10, readPeak>>10, size>>10)
	// Holding the message whole would add at least its size; what
	// streaming holds is a few chunks and the protocol's buffers, seen at
	// 2–3.6 MiB (more under -race, and HeapAlloc also counts garbage the
	// collector has not reached yet), so the bound is half the message.
	if deliverPeak > size/2 || readPeak > size/2 {
		t.Errorf("heap grew by %d octets delivering and %d reading a %d octet message: not streamed", deliverPeak, readPeak, size)
	}
}

// TestLimitedRole: once the schema exists, a role that may only read and
// write the tables (no CREATE) runs a node: deliver, login, UPDATE.
func TestLimitedRole(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	owner := newTestStore(t, dsn, "owner")
	role := fmt.Sprintf("limited_%d", time.Now().UnixNano())
	for _, q := range []string{
		"CREATE ROLE " + role + " LOGIN",
		"REVOKE CREATE ON SCHEMA public FROM PUBLIC",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO " + role,
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO " + role,
	} {
		if _, err := owner.pool.Exec(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	s := newTestStore(t, strings.Replace(dsn, "user=postgres", "user="+role, 1), "limited")
	a := deliverT(t, s, "alice", "a\n")
	deliverT(t, s, "alice", "b\n")
	md := openT(t, s, "alice")
	if err := md.Commit(t.Context(), []int{1}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()
	md = openT(t, s, "alice")
	defer md.Close()
	if m := md.Messages(); len(m) != 1 || m[0].UID != a.UID {
		t.Errorf("after UPDATE: %+v, want only %s", m, a.UID)
	}
	if n, b, err := s.Usage(t.Context(), "alice"); n != 1 || b != 2 || err != nil {
		t.Errorf("Usage = %d, %d, %v; want 1, 2", n, b, err)
	}
}

// TestUserNames: names are data, never SQL; what maildir refuses (and
// what is not UTF-8, or longer than 255 octets) is ErrBadUser.
func TestUserNames(t *testing.T) {
	t.Parallel()
	s := newTestStore(t, pg.DB(t), "n")
	good := []string{"o'brien", `x"; DROP TABLE postie_messages; --`, "名前", "a b", "%", "_", "alice@example.org", strings.Repeat("u", 255)}
	for i, u := range good {
		body := fmt.Sprintf("for user %d\n", i)
		deliverT(t, s, u, body)
		md := openT(t, s, u)
		if n := len(md.Messages()); n != 1 {
			t.Errorf("%q: %d messages, want 1", u, n)
		} else if got := readT(t, md, 0); got != body {
			t.Errorf("%q reads %q, want %q", u, got, body)
		}
		md.Close()
	}
	for _, u := range []string{"\xff\xfe", "a\x7fb", `a\b`, ".hidden", strings.Repeat("u", 256), "tab\there"} {
		if _, err := s.Deliver(t.Context(), u, strings.NewReader("x\n")); !errors.Is(err, store.ErrBadUser) {
			t.Errorf("Deliver(%q): %v, want ErrBadUser", u, err)
		}
		if md, err := s.Open(t.Context(), u); !errors.Is(err, store.ErrBadUser) {
			if md != nil {
				md.Close()
			}
			t.Errorf("Open(%q): %v, want ErrBadUser", u, err)
		}
		if _, _, err := s.Usage(t.Context(), u); !errors.Is(err, store.ErrBadUser) {
			t.Errorf("Usage(%q): %v, want ErrBadUser", u, err)
		}
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM postie_mailboxes`).Scan(&n); err != nil || n != len(good) {
		t.Errorf("%d mailboxes (%v), want %d", n, err, len(good))
	}
}

// TestSnapshotCacheAcrossNodes: node a's cached snapshot is used only
// while nothing changed; deliveries and deletions through node b, and an
// operator's UPDATE of a message, show on node a's next login.
func TestSnapshotCacheAcrossNodes(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	a, b := newTestStore(t, dsn, "node-a"), newTestStore(t, dsn, "node-b")
	uids := func(s *Store) []string {
		t.Helper()
		md := openT(t, s, "alice")
		defer md.Close()
		var u []string
		for _, m := range md.Messages() {
			u = append(u, fmt.Sprintf("%s:%d", m.UID, m.Size))
		}
		return u
	}
	m1 := deliverT(t, a, "alice", "one\n")
	want := []string{m1.UID + ":5"}
	for range 2 {
		if got := uids(a); !slices.Equal(got, want) {
			t.Fatalf("node a: %q, want %q", got, want)
		}
	}
	if sn := a.snaps.get("alice"); sn == nil || len(sn.infos) != 1 {
		t.Fatalf("node a cached %+v, want the snapshot of one message", sn)
	}
	m2 := deliverT(t, b, "alice", "two\n")
	want = append(want, m2.UID+":5")
	if got := uids(a); !slices.Equal(got, want) {
		t.Errorf("node a after node b's delivery: %q, want %q", got, want)
	}
	md := openT(t, b, "alice")
	if err := md.Commit(t.Context(), []int{0}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	want = want[1:]
	if got := uids(a); !slices.Equal(got, want) {
		t.Errorf("node a after node b's UPDATE: %q, want %q", got, want)
	}
	if _, err := b.pool.Exec(t.Context(), `UPDATE postie_messages SET wire_size = 99`); err != nil {
		t.Fatal(err)
	}
	if got := uids(a); !slices.Equal(got, []string{m2.UID + ":99"}) {
		t.Errorf("node a after an operator's UPDATE: %q, want [%s:99]", got, m2.UID)
	}

	// An operator drops a maildrop, row and all; the next delivery makes
	// a new row, whose generations start over.
	deliverT(t, a, "carol", "old\n")
	md = openT(t, a, "carol")
	md.Close()
	for _, q := range []string{`DELETE FROM postie_messages WHERE mailbox_id = (SELECT id FROM postie_mailboxes WHERE name = 'carol')`,
		`DELETE FROM postie_mailboxes WHERE name = 'carol'`} {
		if _, err := b.pool.Exec(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	m3 := deliverT(t, b, "carol", "new\n")
	md = openT(t, a, "carol")
	defer md.Close()
	if m := md.Messages(); len(m) != 1 || m[0].UID != m3.UID {
		t.Errorf("node a after carol's maildrop was made again: %+v, want [%s]", m, m3.UID)
	} else if got := readT(t, md, 0); got != "new\n" {
		t.Errorf("node a reads %q", got)
	}
}

func TestSnapCacheLimit(t *testing.T) {
	c := newSnapCache(5)
	mk := func(n int) *snapshot {
		return &snapshot{gen: 1, msgs: make([]message, n), infos: make([]store.MessageInfo, n)}
	}
	c.put("a", mk(3))
	c.put("b", mk(2))
	if c.get("a") == nil || c.get("b") == nil || c.total != 5 {
		t.Fatalf("total %d, entries %d", c.total, len(c.m))
	}
	c.put("c", mk(6)) // bigger than the cache: not kept
	if c.get("c") != nil || c.total != 5 {
		t.Errorf("a snapshot over the limit was cached (total %d)", c.total)
	}
	check := func(what string) {
		t.Helper()
		sum := 0
		for _, s := range c.m {
			sum += len(s.msgs)
		}
		if sum != c.total || c.total > 5 {
			t.Errorf("%s: total %d, sum of the entries %d, limit 5", what, c.total, sum)
		}
	}
	c.put("c", mk(4))
	if c.get("c") == nil {
		t.Error("the newest snapshot was not kept")
	}
	check("after eviction")
	c.put("c", mk(1)) // replacing an entry frees its old size
	check("after replacing")
	var nilCache *snapCache
	nilCache.put("x", mk(1))
	if nilCache.get("x") != nil {
		t.Error("a nil cache returned a snapshot")
	}
}

// TestGrantRecipes: on PostgreSQL 15, where PUBLIC may no longer create
// in schema public, a role that is not a superuser runs the first start
// (the schema step) with either recipe of the README: a database the
// role owns, or a schema named after the role in a database it does not
// own. Without either the start fails with a message that names the
// missing right and the recipes.
func TestGrantRecipes(t *testing.T) {
	t.Parallel()
	pg.SocketDir(t)
	id := time.Now().UnixNano()
	dsnAs := func(role, db string) string {
		return strings.Replace(pg.DSN(t, db), "user=postgres", "user="+role, 1)
	}
	start := func(dsn string) error {
		s, err := New(t.Context(), Options{DSN: dsn, Timeout: 10 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err == nil {
			defer s.Close()
			deliverT(t, s, "alice", "hello\n")
			md := openT(t, s, "alice")
			defer md.Close()
			if n := len(md.Messages()); n != 1 {
				t.Errorf("%d messages, want 1", n)
			}
		}
		return err
	}

	t.Run("owned database", func(t *testing.T) {
		role, db := fmt.Sprintf("owner_%d", id), fmt.Sprintf("owned_%d", id)
		pg.Exec(t, "CREATE ROLE "+role+" LOGIN")
		pg.Exec(t, "CREATE DATABASE "+db+" OWNER "+role)
		if err := start(dsnAs(role, db)); err != nil {
			t.Fatalf("first start as the database's owner: %v", err)
		}
	})
	t.Run("own schema", func(t *testing.T) {
		role := fmt.Sprintf("schema_%d", id)
		pg.Exec(t, "CREATE ROLE "+role+" LOGIN")
		dsn := pg.DB(t) // owned by postgres
		pg.ExecIn(t, dsn, "CREATE SCHEMA "+role+" AUTHORIZATION "+role)
		if err := start(strings.Replace(dsn, "user=postgres", "user="+role, 1)); err != nil {
			t.Fatalf("first start with a schema of the role's own: %v", err)
		}
		// psql fails the test if the table is not there.
		pg.ExecIn(t, dsn, "SELECT count(*) FROM "+role+".postie_messages")
	})
	t.Run("no right", func(t *testing.T) {
		role := fmt.Sprintf("none_%d", id)
		pg.Exec(t, "CREATE ROLE "+role+" LOGIN")
		dsn := pg.DB(t)
		err := start(strings.Replace(dsn, "user=postgres", "user="+role, 1))
		if err == nil || !strings.Contains(err.Error(), "permission denied for schema public") || !strings.Contains(err.Error(), "CREATE SCHEMA") {
			t.Fatalf("first start without CREATE: %v, want the permission error and the recipes", err)
		}
	})
}
