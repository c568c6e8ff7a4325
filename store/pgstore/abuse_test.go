package pgstore

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/testenv/pop3test"
	"github.com/postie-mail/postie/pop3server"
)

var _ pop3server.AbuseStore = (*Abuse)(nil)

// abuseNode is one POP3 server of a two-node cluster on one database.
type abuseNode struct {
	srv *pop3test.Server
	st  *Store
	log *testenv.SyncBuffer
}

// startAbuseNode runs a POP3 server on st whose login abuse state is the
// database's. Loopback is not trusted here (cleartext is allowed), so
// that its failures count as a guesser's would.
func startAbuseNode(t *testing.T, st *Store, lim pop3server.Limits) *abuseNode {
	t.Helper()
	n := &abuseNode{st: st, log: &testenv.SyncBuffer{}}
	n.srv = pop3test.Start(t, pop3test.Options{
		Logger: slog.New(slog.NewTextHandler(n.log, nil)),
		Tweak: func(o *pop3server.Options) {
			o.Store = st
			o.Abuse = st.Abuse()
			o.TrustedNets = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
			o.AllowCleartext = true
			o.Limits = lim
		},
	})
	return n
}

// dial connects to n and returns the greeting.
func (n *abuseNode) dial(t *testing.T) (net.Conn, *bufio.Reader, string) {
	t.Helper()
	c, err := net.Dial("tcp", n.srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	return c, r, line
}

// login sends USER and PASS on a new connection and returns PASS's reply.
func (n *abuseNode) login(t *testing.T, user, pass string) string {
	t.Helper()
	c, r, greeting := n.dial(t)
	defer c.Close()
	if !strings.HasPrefix(greeting, "+OK") {
		t.Fatalf("greeting %q", greeting)
	}
	if _, err := c.Write([]byte("USER " + user + "\r\nPASS " + pass + "\r\n")); err != nil {
		t.Fatal(err)
	}
	var reply string
	for range 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("USER/PASS: %v", err)
		}
		reply = line
	}
	c.Write([]byte("QUIT\r\n"))
	r.ReadString('\n')
	return reply
}

var delayRE = regexp.MustCompile(`msg="authentication failed".* delay=(\S+)`)

// lastDelay is the delay of the last failure n logged.
func (n *abuseNode) lastDelay(t *testing.T) string {
	t.Helper()
	m := delayRE.FindAllStringSubmatch(n.log.String(), -1)
	if len(m) == 0 {
		t.Fatalf("no failure logged:\n%s", n.log.String())
	}
	return m[len(m)-1][1]
}

// TestAbuseSharedAcrossNodes: two servers on one database share LOGIN-DELAY,
// the failure delays of an address and the bans.
func TestAbuseSharedAcrossNodes(t *testing.T) {
	dsn := pg.DB(t)
	lim := pop3server.Limits{
		AuthFailDelay:    time.Millisecond,
		MaxAuthFailDelay: time.Second,
		BanAfter:         5,
		BanDuration:      time.Hour,
		LoginDelay:       time.Hour,
	}
	a := startAbuseNode(t, newTestStore(t, dsn, "node-a"), lim)
	b := startAbuseNode(t, newTestStore(t, dsn, "node-b"), lim)

	// LOGIN-DELAY: a login on A holds the user's next login on B.
	if got := a.login(t, "user1", "pass1"); !strings.HasPrefix(got, "+OK logged in") {
		t.Fatalf("first login on A: %q", got)
	}
	if got, want := b.login(t, "user1", "pass1"), "-ERR [LOGIN-DELAY] minimum time between logins not yet passed\r\n"; got != want {
		t.Fatalf("second login, on B: %q, want %q", got, want)
	}
	if got := b.login(t, "user2", "pass2"); !strings.HasPrefix(got, "+OK logged in") {
		t.Fatalf("another user's login on B: %q", got)
	}

	// Failure delays double across the nodes.
	for i, step := range []struct {
		n    *abuseNode
		want string
	}{{a, "1ms"}, {b, "2ms"}, {a, "4ms"}, {b, "8ms"}} {
		if got, want := step.n.login(t, "user3", "wrong"), "-ERR [AUTH] invalid user name or password\r\n"; got != want {
			t.Fatalf("failure %d: %q, want %q", i+1, got, want)
		}
		if got := step.n.lastDelay(t); got != step.want {
			t.Errorf("failure %d: delay %s, want %s (counted across nodes)", i+1, got, step.want)
		}
	}

	// The fifth failure, on A, bans the address: B refuses it too,
	// once it has read the bans again.
	a.login(t, "user3", "wrong")
	if !strings.Contains(a.log.String(), "address banned") {
		t.Fatalf("A did not ban after 5 failures:\n%s", a.log.String())
	}
	const banned = "-ERR [SYS/TEMP] too many failed logins from your address, try again later\r\n"
	for i := 0; ; i++ {
		c, _, greeting := b.dial(t)
		c.Close()
		if greeting == banned {
			break
		}
		if greeting != "+OK postie POP3 server ready\r\n" {
			t.Fatalf("greeting on B %q", greeting)
		}
		if i == 500 {
			t.Fatal("B still greets a client banned on A")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAbuseLoginForgetsInBackground: without LOGIN-DELAY a login does not
// wait for the database; the failures it makes good are forgotten in the
// background, on every node.
func TestAbuseLoginForgetsInBackground(t *testing.T) {
	dsn := pg.DB(t)
	lim := pop3server.Limits{AuthFailDelay: time.Millisecond, MaxAuthFailDelay: time.Second}
	a := startAbuseNode(t, newTestStore(t, dsn, "node-a"), lim)
	b := startAbuseNode(t, newTestStore(t, dsn, "node-b"), lim)
	for i, want := range []string{"1ms", "2ms"} {
		a.login(t, "user1", "wrong")
		if got := a.lastDelay(t); got != want {
			t.Fatalf("failure %d: delay %s, want %s", i+1, got, want)
		}
	}
	if got := b.login(t, "user1", "pass1"); !strings.HasPrefix(got, "+OK logged in") {
		t.Fatalf("login on B: %q", got)
	}
	for i := 0; ; i++ {
		var n int
		if err := a.st.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM postie_abuse_addrs) + (SELECT count(*) FROM postie_abuse_users)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if i == 500 {
			t.Fatalf("%d failures still recorded after the owner's login", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.login(t, "user1", "wrong")
	if got := a.lastDelay(t); got != "1ms" {
		t.Errorf("failure after the login on B: delay %s, want 1ms (counts forgotten)", got)
	}
}

// TestAbuseDatabaseDown: with the database gone, a node counts failures
// and applies LOGIN-DELAY on its own, and logins go on.
func TestAbuseDatabaseDown(t *testing.T) {
	st := newTestStore(t, pg.DB(t), "node-a")
	lim := pop3server.Limits{AuthFailDelay: time.Millisecond, MaxAuthFailDelay: time.Second, LoginDelay: time.Hour}
	n := startAbuseNode(t, st, lim)
	n.srv.Deliver(t, "user1", "Subject: x\r\n\r\nx\r\n")
	st.Close() // every round trip fails from here on

	for i, want := range []string{"1ms", "2ms", "4ms"} {
		if got, want := n.login(t, "user3", "wrong"), "-ERR [AUTH] invalid user name or password\r\n"; got != want {
			t.Fatalf("failure %d: %q, want %q", i+1, got, want)
		}
		if got := n.lastDelay(t); got != want {
			t.Errorf("failure %d: delay %s, want %s (counted locally)", i+1, got, want)
		}
	}
	if !strings.Contains(n.log.String(), "shared abuse state unavailable; counting on this node only") {
		t.Errorf("the outage was not logged:\n%s", n.log.String())
	}
	// The login itself needs the closed store: it fails, but it is
	// not refused by LOGIN-DELAY, and the second is.
	if got, want := n.login(t, "user1", "pass1"), "-ERR [SYS/TEMP]"; !strings.HasPrefix(got, want) {
		t.Fatalf("login with the store closed: %q, want %s...", got, want)
	}
	if got, want := n.login(t, "user1", "pass1"), "-ERR [LOGIN-DELAY] minimum time between logins not yet passed\r\n"; got != want {
		t.Fatalf("second login: %q, want %q", got, want)
	}
}

// BenchmarkLoginAbuse: what the shared abuse state costs a login. Whole
// POP3 logins (USER, PASS, QUIT over loopback, one connection each, each
// goroutine's 12 users in turn) on a pgstore node, with the abuse state in
// memory ("memory", the default) and in the database, with LOGIN-DELAY
// ("postgres-delay": one round trip per login) and without ("postgres":
// the failures forgotten in the background). The difference of ns/op is
// the cost per login.
//
//	go test -bench LoginAbuse -run '^$' -count 6 ./store/pgstore
func BenchmarkLoginAbuse(b *testing.B) {
	for _, name := range []string{"memory", "postgres", "postgres-delay"} {
		b.Run(name, func(b *testing.B) {
			st := newTestStore(b, pg.DB(b), "bench")
			srv := pop3test.Start(b, pop3test.Options{Tweak: func(o *pop3server.Options) {
				o.Store = st
				if name != "memory" {
					o.Abuse = st.Abuse()
				}
				if name == "postgres-delay" {
					o.Limits.LoginDelay = time.Microsecond
				}
			}})
			var next atomic.Int64
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				// Users of their own for each goroutine, 12 in turn: a
				// user's last session has ended when it comes round again.
				first := int(next.Add(1)-1) * 12 % 96
				for i := 0; pb.Next(); i++ {
					n := strconv.Itoa(first + i%12 + 1)
					c, err := net.Dial("tcp", srv.Addr)
					if err != nil {
						b.Error(err)
						return
					}
					c.Write([]byte("USER user" + n + "\r\nPASS pass" + n + "\r\nQUIT\r\n"))
					reply, _ := io.ReadAll(c)
					c.Close()
					if !strings.Contains(string(reply), "+OK logged in") {
						b.Errorf("login: %q", reply)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
		})
	}
}

// TestAbuseForgetSkipped: a login whose address and user have no failure
// in the database, as the node read it last (a read a login starts in the
// background when the last is a second old) and recorded itself since,
// writes nothing; one that has, on this node or (after a read) another,
// forgets them. Before any read, every login forgets.
func TestAbuseForgetSkipped(t *testing.T) {
	t.Parallel()
	dsn := pg.DB(t)
	sa, c := newCountingStore(t, dsn)
	a, b := sa.Abuse(), newTestStore(t, dsn, "node-b").Abuse()
	a.fresh = time.Hour // however slow the machine, a read stays usable
	ip := func(i byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 51, 100, i}) }
	login := func(addr netip.Addr, user string) int64 {
		t.Helper()
		t0 := c.forgets.Load()
		if _, err := a.LoginSuccess(t.Context(), addr, user, user, 0); err != nil {
			t.Fatal(err)
		}
		return c.forgets.Load() - t0
	}
	read := func() { // waits for the read the first login started
		t.Helper()
		for {
			a.mu.Lock()
			done := !a.failing.reading
			a.mu.Unlock()
			if done {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	failures := func() (n int) {
		t.Helper()
		if err := sa.pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM postie_abuse_addrs) + (SELECT count(*) FROM postie_abuse_users)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, _, _, err := a.LoginFailure(t.Context(), ip(2), "u2", time.Hour, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := login(ip(1), "u1"); got != 1 {
		t.Errorf("a login before any read made %d forgets, want 1", got)
	}
	read()
	if got := login(ip(1), "u1"); got != 0 {
		t.Errorf("a login with nothing to forget made %d forgets, want 0", got)
	}
	if _, _, _, err := b.LoginFailure(t.Context(), ip(3), "u3", time.Hour, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := a.LoginFailure(t.Context(), ip(4), "u4", time.Hour, 0, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := failures(); got != 6 {
		t.Fatalf("%d failure rows, want 6", got)
	}
	// Recorded on this node since the read: forgotten.
	if got := login(ip(4), "u4"); got != 1 {
		t.Errorf("a login after this node's failure made %d forgets, want 1", got)
	}
	// Recorded by node b: forgotten once node a has read it.
	a.readFailing(t.Context())
	if got := login(ip(3), "u3"); got != 1 {
		t.Errorf("a login after node b's failure made %d forgets, want 1", got)
	}
	if got := login(ip(2), "u2"); got != 1 {
		t.Errorf("a login after a failure read from the database made %d forgets, want 1", got)
	}
	if got := failures(); got != 0 {
		t.Errorf("%d failure rows left, want 0", got)
	}
}
