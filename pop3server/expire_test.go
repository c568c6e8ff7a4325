package pop3server_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store"
)

// fakeClock is the EXPIRE clock of a test server.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startExpire starts a server with EXPIRE days (pop3server.Limits.Expire)
// on the fake clock, user1's maildrop holding the corpus.
func startExpire(t *testing.T, days int, clock *fakeClock, tweak func(*pop3server.Options)) *server {
	t.Helper()
	s := startPostie(t, func(o *pop3server.Options) {
		o.Limits.Expire = &days
		o.Now = clock.Now
		if tweak != nil {
			tweak(o)
		}
	})
	s.deliverCorpus(t, "user1")
	return s
}

const capaHead = "C: CAPA\nS: +OK capability list follows\nS: TOP\nS: USER\nS: UIDL\nS: RESP-CODES\nS: AUTH-RESP-CODE\nS: PIPELINING\n"
const capaTail = "S: IMPLEMENTATION postie\nS: .\n"

// RFC 2449 §6.7 EXPIRE 2: a message retrieved (RETR, or TOP of every
// line) goes at the first login two days after, not a second sooner; one
// only partly seen by TOP, or never retrieved, stays.
func TestExpireDays(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startExpire(t, 2, clock, nil)
	run := func(script string) { t.Helper(); runScript(t, s.addr, testenv.Exact, expand(script, "user1", s.uids)) }

	run(greet + capaHead + "S: EXPIRE 2\n" + capaTail +
		"C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n" +
		capaHead + "S: EXPIRE 2\n" + capaTail +
		"C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\n" +
		"C: TOP 2 1\nS: +OK top of message follows\nD: From: b@example.com\nD: Subject: two\nD: \nD: ..leading dot\nD: .\n" +
		"C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	clock.add(time.Hour)
	// Retrieved again later: the first retrieval counts. TOP of every line
	// of message 3 counts as retrieving it.
	run(login + "C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\n" +
		"C: TOP 3 100\nS: +OK top of message follows\n" + stuffed(2) + "D: .\n" +
		"C: QUIT\nS: +OK bye, 0 messages deleted\nE:")

	clock.add(2*24*time.Hour - time.Hour - time.Second)
	run(login + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	clock.add(time.Second) // two days after message 1's first RETR
	run(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 2 messages ({total-1} octets)\n" +
		"C: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid2}\nU: 2 {uid3}\nD: .\n" +
		"C: RETR 2\nS: +OK {size3} octets\n" + stuffed(2) + "D: .\n" +
		"C: DELE 1\nS: +OK message 1 deleted\nC: QUIT\nS: +OK bye, 1 messages deleted\nE:")
	clock.add(time.Hour) // message 3: two days after its TOP
	run(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 0 messages (0 octets)\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:")
}

// EXPIRE 0: no mail may stay on the server. QUIT removes what was
// retrieved as if it had been deleted (RFC 2449 §6.7's implicit DELE);
// a session that ends without QUIT removes nothing and records nothing
// (RFC 1939 §6), so the next login still lists what it retrieved: a
// client that could not store a message gets it again.
func TestExpireZero(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startExpire(t, 0, clock, nil)
	run := func(script string) { t.Helper(); runScript(t, s.addr, testenv.Exact, expand(script, "user1", s.uids)) }

	run(login + capaHead + "S: EXPIRE 0\n" + capaTail +
		"C: RETR 2\nS: +OK {size2} octets\n" + stuffed(1) + "D: .\n" +
		"C: TOP 3 0\nS: +OK top of message follows\nD: Subject: three\nD: \nD: .\n" +
		"C: RSET\nS: +OK maildrop has 3 messages ({total} octets)\n" +
		"C: QUIT\nS: +OK bye, 1 messages deleted\nE:")
	run(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 2 messages ({total-2} octets)\n" +
		"C: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid1}\nU: 2 {uid3}\nD: .\n" +
		"C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .") // no QUIT: the client goes away
	waitSessions(t, s, 0)
	clock.add(time.Hour)
	run(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 2 messages ({total-2} octets)\n" +
		"C: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid1}\nU: 2 {uid3}\nD: .\n" +
		"C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\nC: QUIT\nS: +OK bye, 1 messages deleted\nE:")
	run(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 1 messages ({size3} octets)\n" +
		"C: UIDL\nS: +OK unique-id listing follows\nU: 1 {uid3}\nD: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:")
}

// EXPIRE NEVER: nothing is recorded or removed, however long ago it was
// retrieved.
func TestExpireNever(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startExpire(t, -1, clock, nil)
	run := func(script string) { t.Helper(); runScript(t, s.addr, testenv.Exact, expand(script, "user1", s.uids)) }
	run(greet + capaHead + "S: EXPIRE NEVER\n" + capaTail +
		"C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n" +
		capaHead + "S: EXPIRE NEVER\n" + capaTail +
		"C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	clock.add(100 * 365 * 24 * time.Hour)
	run(login + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	if _, err := os.Stat(filepath.Join(s.maildir(t, "user1"), "postie-retrieved")); err == nil {
		t.Errorf("EXPIRE NEVER recorded retrievals")
	}
}

// Per-user values: before login CAPA gives the default tagged USER, after
// login the user's own, which is the one enforced.
func TestExpireUser(t *testing.T) {
	t.Parallel()
	clock := newFakeClock()
	s := startExpire(t, 5, clock, func(o *pop3server.Options) {
		o.ExpireFor = func(user string) (int, bool) {
			switch user {
			case "user1":
				return 0, true
			case "user3":
				return -1, true
			}
			return 0, false
		}
	})
	s.deliverCorpus(t, "user2")
	user1 := func(script string) { t.Helper(); runScript(t, s.addr, testenv.Exact, expand(script, "user1", s.uids)) }
	user2 := func(script string) {
		t.Helper()
		runScript(t, s.addr, testenv.Exact, expand(script, "user2", s.uids[3:]))
	}
	user3 := func(script string) { t.Helper(); runScript(t, s.addr, testenv.Exact, expand(script, "user3", nil)) }

	user1(greet + capaHead + "S: EXPIRE 5 USER\n" + capaTail +
		"C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n" +
		capaHead + "S: EXPIRE 0\n" + capaTail +
		"C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\nC: QUIT\nS: +OK bye, 1 messages deleted\nE:")
	user2(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 3 messages ({total} octets)\n" +
		capaHead + "S: EXPIRE 5\n" + capaTail +
		"C: RETR 1\nS: +OK {size1} octets\n" + stuffed(0) + "D: .\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	user3(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 0 messages (0 octets)\n" +
		capaHead + "S: EXPIRE NEVER\n" + capaTail + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	clock.add(5*24*time.Hour - time.Second)
	user2(login + "C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	clock.add(time.Second)
	user2(greet + "C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\nS: +OK logged in, 2 messages ({total-1} octets)\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:")
}

func (s *server) maildir(t *testing.T, user string) string {
	t.Helper()
	dir, err := s.store.Path(user)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// noExpirer hides store.Expirer from the maildrops of a store.
type noExpirer struct{ store.Store }

func (s noExpirer) Open(ctx context.Context, user string) (store.Maildrop, error) {
	md, err := s.Store.Open(ctx, user)
	if err != nil {
		return nil, err
	}
	return struct{ store.Maildrop }{md}, nil
}

// EXPIRE with a number of days over a store that cannot enforce it: no
// login rather than a promise broken; NEVER needs nothing of the store.
func TestExpireNeedsExpirer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		days  int
		reply string
	}{
		{30, "S: -ERR [SYS/TEMP] unable to open maildrop\nC: QUIT\nS: +OK bye\nE:"},
		{-1, "S: +OK logged in, 3 messages ({total} octets)\nC: QUIT\nS: +OK bye, 0 messages deleted\nE:"},
	} {
		s := startExpire(t, tc.days, newFakeClock(), func(o *pop3server.Options) { o.Store = noExpirer{o.Store} })
		runScript(t, s.addr, testenv.Exact, expand(greet+"C: USER {user}\nS: +OK send PASS\nC: PASS {pass}\n"+tc.reply, "user1", s.uids))
	}
}
