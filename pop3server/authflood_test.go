package pop3server_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/postie-mail/postie/pop3server"
)

// heldAuth is an authenticator under the test's control: checks for
// user1 block until the client's context ends (then wait for finish
// before returning) or until release is closed; other users are checked
// by the usual table at once.
type heldAuth struct {
	entered                    chan struct{}
	release, finish            chan struct{}
	calls, cancelled, complete atomic.Int32
}

func newHeldAuth() *heldAuth {
	return &heldAuth{entered: make(chan struct{}, 1000), release: make(chan struct{}), finish: make(chan struct{})}
}

func (h *heldAuth) Authenticate(ctx context.Context, user, pass string) (string, bool, error) {
	if user != "user1" {
		return users.Authenticate(ctx, user, pass)
	}
	h.calls.Add(1)
	h.entered <- struct{}{}
	select {
	case <-h.release:
		h.complete.Add(1)
		return "", false, nil
	case <-ctx.Done():
		h.cancelled.Add(1)
		<-h.finish
		return "", false, ctx.Err()
	}
}

// waitCount waits until f() reaches want; it fails the test (it does not
// time anything) if that has not happened after 10 s.
func waitCount(t *testing.T, what string, f func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d, want %d", what, f(), want)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

const busy = "-ERR [SYS/TEMP] too many logins in progress from your address, try again later"

// Issue 13, finding 3: 100 connections from one address guess at once.
// Only MaxAuthChecksPerIP of their checks run and MaxAuthQueuePerIP
// wait; every other guess is refused with [SYS/TEMP] before any check.
// Meanwhile another address logs in. When the flooding clients hang up,
// their running checks are cancelled (none completes) and the waiting
// one never starts; afterwards the address's places are all free again.
func TestParallelGuessesBoundedPerAddress(t *testing.T) {
	const flood, inFlight, queue = 100, 2, 1
	h := newHeldAuth()
	s := startPostie(t, func(o *pop3server.Options) {
		o.Authenticator = h
		o.TrustedNets = []netip.Prefix{}
		o.AllowCleartext = true
		o.Limits.MaxConnsPerIP = 2 * flood
		o.Limits.MaxAuthChecksPerIP = inFlight
		o.Limits.MaxAuthQueuePerIP = queue
	})
	// On failure too, held checks return before the server closes.
	var finished sync.Once
	finish := func() { finished.Do(func() { close(h.finish) }) }
	t.Cleanup(finish)
	s.deliverCorpus(t, "user2")
	replies := make(chan string, flood)
	var conns []*client
	for range flood {
		cl := dialFrom(t, "127.0.0.2", s.addr)
		cl.expect("+OK postie POP3 server ready")
		cl.cmd("USER user1", "+OK send PASS")
		cl.send("PASS guess")
		conns = append(conns, cl)
		go func() {
			l, err := cl.line()
			if err != nil {
				l = "error: " + err.Error()
			}
			replies <- l
		}()
	}
	for range inFlight {
		select {
		case <-h.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d checks started, want %d", h.calls.Load(), inFlight)
		}
	}
	for i := range flood - inFlight - queue {
		if l := <-replies; l != busy {
			t.Fatalf("flooding guess %d answered %q, want %q", i+1, l, busy)
		}
	}
	if n := h.calls.Load(); n != inFlight {
		t.Fatalf("%d checks started, want %d", n, inFlight)
	}
	// Another address logs in while the flood's checks are held.
	good := dialFrom(t, "127.0.0.3", s.addr)
	good.expect("+OK postie POP3 server ready")
	good.login("user2", "pass2")
	good.cmd("QUIT", "+OK bye, 0 messages deleted")

	for _, cl := range conns {
		cl.c.Close()
	}
	waitCount(t, "checks cancelled", func() int { return int(h.cancelled.Load()) }, inFlight)
	// Only the sessions whose checks are still returning are left: the
	// waiting one ended without a check.
	waitCount(t, "sessions", s.srv.Sessions, inFlight)
	finish()
	waitSessions(t, s, 0)
	if c, x, n := h.calls.Load(), h.cancelled.Load(), h.complete.Load(); c != inFlight || x != inFlight || n != 0 {
		t.Errorf("checks: %d started, %d cancelled, %d completed; want %d, %d, 0", c, x, n, inFlight, inFlight)
	}
	if n := s.srv.Stats().AuthBusy; n != flood-inFlight-queue {
		t.Errorf("Stats().AuthBusy = %d, want %d", n, flood-inFlight-queue)
	}
	// Nothing is left held: the address logs in again.
	again := dialFrom(t, "127.0.0.2", s.addr)
	again.expect("+OK postie POP3 server ready")
	again.login("user2", "pass2")
	again.cmd("QUIT", "+OK bye, 0 messages deleted")
}

// A failed login keeps its address's place until its delayed reply is
// due, so that parallel connections do not multiply the guesses made per
// delay; the place is freed when the waiting client hangs up.
func TestFailureDelayHoldsAddressPlace(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) {
		o.TrustedNets = []netip.Prefix{}
		o.AllowCleartext = true
		o.Limits.AuthFailDelay = time.Hour
		o.Limits.MaxAuthFailDelay = time.Hour
		o.Limits.MaxAuthChecksPerIP = 1
		o.Limits.MaxAuthQueuePerIP = -1
	})
	s.deliverCorpus(t, "user2")
	guesser := dialFrom(t, "127.0.0.2", s.addr)
	guesser.expect("+OK postie POP3 server ready")
	guesser.cmd("USER user1", "+OK send PASS")
	guesser.send("PASS guess") // its reply waits an hour
	// The second connection is refused until the first's place is free;
	// the first's failure is known once its log line is out, which is
	// before the delay starts, so poll the counter.
	waitCount(t, "failures", func() int { return int(s.srv.Stats().AuthFailures) }, 1)
	other := dialFrom(t, "127.0.0.2", s.addr)
	other.expect("+OK postie POP3 server ready")
	other.cmd("USER user2", "+OK send PASS")
	other.cmd("PASS pass2", busy)
	guesser.c.Close()
	waitSessions(t, s, 1)
	other.cmd("USER user2", "+OK send PASS")
	other.send("PASS pass2")
	if l, err := other.line(); err != nil || l[:13] != "+OK logged in" {
		t.Fatalf("login after the guesser left: %q %v", l, err)
	}
}

// BenchmarkLoginDuringFlood measures one login from an address while 100
// connections from another keep guessing passwords as fast as the server
// answers (flood), and with no flood (idle) for comparison, with bcrypt at
// cost 4 and 10 as the password hash and the default limits (AuthFailDelay
// 2s).
// login-ms is the mean time of the legitimate login from connect to +OK;
// checks/s the flood's guesses that were checked, refused/s those
// refused with [SYS/TEMP]. The flood runs in the same process, on the
// same cores: what it costs the clients slows the server too.
//
//	go test -run '^$' -bench LoginDuringFlood -benchtime 20x ./pop3server
func BenchmarkLoginDuringFlood(b *testing.B) {
	for _, cost := range []int{4, 10} {
		b.Run(fmt.Sprintf("bcrypt%d", cost), func(b *testing.B) { benchmarkLoginDuringFlood(b, cost) })
	}
}

func benchmarkLoginDuringFlood(b *testing.B, cost int) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pass2"), cost)
	if err != nil {
		b.Fatal(err)
	}
	auth := pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
		return user, bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil, nil
	})
	for _, flood := range []int{0, 100} {
		name := "idle"
		if flood > 0 {
			name = "flood"
		}
		b.Run(name, func(b *testing.B) {
			s := startPostie(b, func(o *pop3server.Options) {
				o.Authenticator = auth
				o.TrustedNets = []netip.Prefix{}
				o.AllowCleartext = true
				o.Limits.AuthFailDelay = 0 // the default
				o.Limits.MaxConnsPerIP = 2 * flood
			})
			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			var checked, refused atomic.Int64
			for range flood {
				wg.Go(func() {
					d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}}
					for ctx.Err() == nil {
						c, err := d.DialContext(ctx, "tcp", s.addr)
						if err != nil {
							continue
						}
						context.AfterFunc(ctx, func() { c.Close() })
						br := newReader(c)
						br.ReadString('\n')
						for ctx.Err() == nil {
							if _, err := c.Write([]byte("USER user1\r\nPASS guess\r\n")); err != nil {
								break
							}
							br.ReadString('\n')
							l, err := br.ReadString('\n')
							if err != nil {
								break
							}
							if strings.HasPrefix(l, "-ERR [SYS/TEMP]") {
								refused.Add(1)
							} else {
								checked.Add(1)
							}
						}
						c.Close()
					}
				})
			}
			defer func() { stop(); wg.Wait() }()
			if flood > 0 {
				time.Sleep(time.Second) // let the flood build up
			}
			var total time.Duration
			b.ResetTimer()
			for b.Loop() {
				start := time.Now()
				cl := dialFrom(b, "127.0.0.3", s.addr)
				cl.expect("+OK postie POP3 server ready")
				cl.login("user2", "pass2")
				total += time.Since(start)
				cl.cmd("QUIT", "+OK bye, 0 messages deleted")
				cl.c.Close()
			}
			b.ReportMetric(float64(total.Microseconds())/1000/float64(b.N), "login-ms")
			b.ReportMetric(float64(checked.Load())/b.Elapsed().Seconds(), "checks/s")
			b.ReportMetric(float64(refused.Load())/b.Elapsed().Seconds(), "refused/s")
		})
	}
}
