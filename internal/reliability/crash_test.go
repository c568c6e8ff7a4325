package reliability

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// newRand returns the random source of a test, logging its seed;
// POSTIE_SEED=N repeats a run.
func newRand(t *testing.T) (*rand.Rand, uint64) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("POSTIE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("POSTIE_SEED=%q", s)
		}
		seed = n
	}
	t.Logf("seed %d (POSTIE_SEED=%d repeats this run)", seed, seed)
	return rand.New(rand.NewPCG(seed, 1)), seed
}

// foreign is a message as another delivery agent would leave it.
type foreign struct {
	name  string // file name in new/ (or cur/); default a Dovecot-style one
	id    string
	msg   string
	sized bool // the default name carries ,S= and ,W=
}

// writeForeign puts msgs into maildir/new (or where their names say: a
// name "cur/..." goes to cur/), creating the Maildir, in the given order:
// default names sort in it. It returns the paths written.
func writeForeign(t *testing.T, maildir string, msgs []foreign) []string {
	t.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(maildir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var paths []string
	for _, m := range msgs {
		name := m.name
		if name == "" {
			seq := foreignSeq.Add(1)
			name = fmt.Sprintf("1700000000.M%06dP4242Q%d.%s.rel", seq, seq, m.id)
			if m.sized {
				name += fmt.Sprintf(",S=%d,W=%d", len(m.msg), len(wireForm(m.msg)))
			}
		}
		if !strings.HasPrefix(name, "cur/") {
			name = "new/" + name
		}
		p := filepath.Join(maildir, name)
		if err := os.WriteFile(p, []byte(m.msg), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// foreignSeq numbers the default names of writeForeign (tests run in
// parallel).
var foreignSeq atomic.Int64

// TestCrashDuringUpdate kills `postie serve` with SIGKILL at a random
// moment after a client that marked thousands of messages deleted sent
// QUIT, then restarts it and checks the maildrop: after an acknowledged
// QUIT every marked message is gone; after an unacknowledged one either
// all marked messages are still there or all are gone (the update
// journal), every other message is there, whole, once, with its UIDL, and
// the next login meets no stale lock.
// The first round is not killed: it measures how long UPDATE takes; half
// the kills fall in the first 5 ms after QUIT, the others between 0 and
// 1.5 times that.
func TestCrashDuringUpdate(t *testing.T) {
	const n = 3000
	rounds := iterations(3, 40)
	r, _ := newRand(t)
	in := newInst(t, instOptions{})
	md := in.maildir("alice")
	wants := map[string]*want{}
	next := 0
	topUp := func() {
		present := 0
		for _, w := range wants {
			if !w.gone {
				present++
			}
		}
		var msgs []foreign
		for ; present < n; present++ {
			next++
			id := "u" + strconv.Itoa(next)
			msg := newMessage(r, id, 100+r.IntN(1500))
			// Two in three with their sizes in the name; the server
			// measures the others at the next login.
			msgs = append(msgs, foreign{id: id, msg: msg, sized: next%3 != 0})
			wants[id] = &want{wire: wireForm(msg), must: true}
		}
		writeForeign(t, md, msgs)
	}
	in.start()
	var updateTime time.Duration
	var acked, partial, none, all int
	for round := range rounds {
		topUp()
		found := in.check("alice", wants)
		if len(found) != n {
			t.Fatalf("round %d: %d messages before the session, want %d", round, len(found), n)
		}
		// Mark a random half or more, in one pipelined burst.
		p := in.login("alice")
		var marked []string
		var dele bytes.Buffer
		frac := 0.5 + r.Float64()/2
		for id, s := range found {
			if r.Float64() < frac {
				marked = append(marked, id)
				fmt.Fprintf(&dele, "DELE %d\r\n", s.num)
			}
		}
		p.send(dele.String())
		for range marked {
			if l := p.line(); !strings.HasPrefix(l, "+OK") {
				t.Fatalf("round %d: DELE: %q", round, l)
			}
		}
		start := time.Now()
		p.send("QUIT\r\n")
		var delay time.Duration
		if round > 0 {
			// Half the kills in the first 5 ms, where the journal
			// is being written; the others anywhere in UPDATE.
			limit := int64(updateTime) * 3 / 2
			if r.IntN(2) == 0 {
				limit = int64(5 * time.Millisecond)
			}
			delay = time.Duration(r.Int64N(limit + 1))
			time.Sleep(delay)
			in.kill()
		}
		p.c.SetReadDeadline(time.Now().Add(time.Minute))
		reply, err := p.readLine()
		if round == 0 {
			updateTime = time.Since(start)
			t.Logf("UPDATE of %d deletions took %v", len(marked), updateTime.Round(time.Microsecond))
		}
		ok := err == nil && strings.HasPrefix(reply, "+OK")
		if err == nil && !ok {
			t.Errorf("round %d: QUIT: %q", round, reply)
		}
		for _, id := range marked {
			if ok {
				wants[id].gone, wants[id].must = true, false
			} else {
				wants[id].must = false
			}
		}
		if in.running {
			in.kill()
		}
		in.start()
		after := in.check("alice", wants)
		removed := 0
		for _, id := range marked {
			if _, there := after[id]; !there {
				removed++
			}
		}
		switch {
		case ok:
			acked++
		case removed == 0:
			none++
		case removed == len(marked):
			all++
		default:
			partial++
			t.Errorf("round %d: an unacknowledged UPDATE removed %d of the %d messages marked: want all or none", round, removed, len(marked))
		}
		t.Logf("round %d: %d marked, killed %v after QUIT, reply %q, %d removed", round, len(marked), delay.Round(time.Microsecond), reply, removed)
		settle(wants, after)
	}
	t.Logf("%d rounds: QUIT acknowledged %d, unacknowledged with none removed %d, some %d, all %d", rounds, acked, none, partial, all)
}

// settle records what a check found: messages there must stay, those not
// there must never come back.
func settle(wants map[string]*want, found map[string]seen) {
	for id, w := range wants {
		w.dele = false
		if _, ok := found[id]; ok {
			w.must = true
		} else {
			w.gone, w.must = true, false
		}
	}
}

// mailbox is what the tests expect of each user's maildrop, shared by
// concurrent senders.
type mailbox struct {
	mu    sync.Mutex
	wants map[string]map[string]*want // user → id → want
	acks  int
	deled int // deletions acknowledged by QUIT
	fails int
}

func newMailbox() *mailbox {
	mb := &mailbox{wants: map[string]map[string]*want{}}
	for _, u := range users {
		mb.wants[u] = map[string]*want{}
	}
	return mb
}

// expect registers a message about to be sent to user (not yet
// acknowledged).
func (mb *mailbox) expect(user, id, msg string) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	mb.wants[user][id] = &want{wire: wireForm(msg)}
}

func (mb *mailbox) ack(user, id string) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	if w := mb.wants[user][id]; !w.gone && !w.dele {
		w.must = true
	}
	mb.acks++
}

func (mb *mailbox) fail() {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	mb.fails++
}

// checkAll checks every user's maildrop and settles what was found.
func (mb *mailbox) checkAll(in *inst) int {
	total := 0
	for _, u := range users {
		found := in.check(u, mb.wants[u])
		settle(mb.wants[u], found)
		total += len(found)
	}
	return total
}

// TestCrashDuringLMTP kills `postie serve` with SIGKILL at a random moment
// (50–350 ms into each round) while several LMTP clients deliver messages
// (up to 256 kB, to one to three recipients), then restarts it: every
// message acknowledged with 250 for a recipient is in that recipient's
// maildrop exactly once and whole; one not acknowledged is there at most
// once, and whole.
func TestCrashDuringLMTP(t *testing.T) {
	rounds := iterations(3, 30)
	r, seed := newRand(t)
	in := newInst(t, instOptions{})
	mb := newMailbox()
	in.start()
	// The test means something only once a delivery was acknowledged
	// before a kill: on a loaded machine (the race detector, other tests)
	// the first rounds may all be killed before any 250, so rounds go on
	// until one was, up to maxRounds.
	const maxRounds = 30
	for round := 0; round < rounds || mb.acks == 0 && round < maxRounds; round++ {
		var wg sync.WaitGroup
		for c := range 4 {
			rc := rand.New(rand.NewPCG(seed, uint64(round*10+c+2)))
			wg.Go(func() {
				l, err := dialLMTP(in.lmtp)
				if err != nil {
					mb.fail()
					return
				}
				defer l.close()
				for k := 0; ; k++ {
					id := fmt.Sprintf("l%d.%d.%d", round, c, k)
					rcpts := users[:1+rc.IntN(len(users))]
					msg := newMessage(rc, id, 200+rc.IntN(256<<10))
					for _, u := range rcpts {
						mb.expect(u, id, msg)
					}
					replies, err := l.send(rcpts, msg)
					for i, rep := range replies {
						if strings.HasPrefix(rep, "250 ") {
							mb.ack(rcpts[i], id)
						}
					}
					if err != nil {
						return
					}
				}
			})
		}
		delay := time.Duration(50+r.IntN(300)) * time.Millisecond
		time.Sleep(delay)
		in.kill()
		wg.Wait()
		in.start()
		total := mb.checkAll(in)
		t.Logf("round %d: killed after %v; %d acknowledged so far, %d messages in the maildrops", round, delay, mb.acks, total)
	}
	if mb.acks == 0 {
		t.Errorf("no delivery was acknowledged in %d rounds", maxRounds)
	}
}

// TestCrashDuringDeliver runs `postie deliver` processes (three at a time,
// messages up to 512 kB) and kills a third of them with SIGKILL at a
// random moment, while a POP3 client retrieves and deletes messages of the
// same maildrops; then `postie serve` is killed too and restarted. Every
// delivery that exited 0 is there exactly once and whole, unless deleted
// by an acknowledged QUIT; killed ones are there at most once, whole.
func TestCrashDuringDeliver(t *testing.T) {
	rounds := iterations(3, 20)
	r, seed := newRand(t)
	in := newInst(t, instOptions{})
	mb := newMailbox()
	in.start()
	var killed, exited0 int
	// As in TestCrashDuringLMTP: on a loaded machine a round can end
	// before any deliver exited, so rounds go on until both kinds were
	// seen, up to maxRounds.
	const maxRounds = 20
	for round := 0; round < rounds || (exited0 == 0 || killed == 0) && round < maxRounds; round++ {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		for c := range 3 {
			rc := rand.New(rand.NewPCG(seed, uint64(round*10+c+2)))
			wg.Go(func() {
				for k := 0; ; k++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("d%d.%d.%d", round, c, k)
					user := users[rc.IntN(len(users))]
					msg := newMessage(rc, id, 200+rc.IntN(512<<10))
					mb.expect(user, id, msg)
					// Each worker's first run is killed early, so
					// that every test kills some.
					code, err := deliverMaybeKill(in, user, msg, rc, round == 0 && k == 0)
					mu.Lock()
					switch {
					case err != nil:
						t.Errorf("deliver %s: %v", id, err)
					case code == 0:
						exited0++
						mb.ack(user, id)
					case code < 0:
						killed++
					default:
						t.Errorf("deliver %s: exit %d", id, code)
					}
					mu.Unlock()
				}
			})
		}
		// A POP3 client deletes what it retrieves, until the server dies.
		wg.Go(func() { popDeleter(in, mb) })
		delay := time.Duration(200+r.IntN(400)) * time.Millisecond
		time.Sleep(delay)
		in.kill()
		close(stop)
		wg.Wait()
		in.start()
		total := mb.checkAll(in)
		t.Logf("round %d: server killed after %v; %d deliveries exited 0, %d killed, %d messages deleted by POP3 so far; %d messages in the maildrops", round, delay, exited0, killed, mb.deled, total)
	}
	if exited0 == 0 || killed == 0 {
		t.Errorf("%d deliveries exited 0 and %d were killed: the test did not exercise both", exited0, killed)
	}
}

// deliverMaybeKill runs `postie deliver` for user and, one time in three,
// kills it after up to 40 ms (with force: always, after up to 5 ms). It
// returns the exit code, -1 when killed.
func deliverMaybeKill(in *inst, user, msg string, r *rand.Rand, force bool) (int, error) {
	cmd := in.srv.Command("deliver", user)
	cmd.Stdin = strings.NewReader(msg)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	switch {
	case force:
		time.AfterFunc(time.Duration(r.IntN(5000))*time.Microsecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
	case r.IntN(3) == 0:
		time.AfterFunc(time.Duration(r.IntN(40000))*time.Microsecond, func() { cmd.Process.Signal(syscall.SIGKILL) })
	}
	err := cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, nil
	}
	if err != nil && cmd.ProcessState.ExitCode() <= 0 {
		return 0, err
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		return code, fmt.Errorf("exit %d: %s", code, stderr.String())
	}
	return 0, nil
}

// popDeleter logs in as alice again and again, retrieves up to five
// messages, marks them deleted and quits, until the server goes away;
// deletions acknowledged by QUIT are recorded as gone.
func popDeleter(in *inst, mb *mailbox) {
	for {
		if !popDeleteOnce(in, mb, "alice", 5) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// popDeleteOnce is one session of popDeleter; false when the server is
// gone.
func popDeleteOnce(in *inst, mb *mailbox, user string, max int) bool {
	c, err := net.DialTimeout("tcp", in.pop3, 5*time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	p := &popConn{c: c, br: bufio.NewReader(c)}
	ok := func(cmd string) bool {
		if cmd != "" {
			if _, err := c.Write([]byte(cmd + "\r\n")); err != nil {
				return false
			}
		}
		l, err := p.readLine()
		return err == nil && strings.HasPrefix(l, "+OK")
	}
	if !ok("") || !ok("USER "+user) || !ok("PASS "+password(user)) || !ok("STAT") {
		return false
	}
	var ids []string
	for i := 1; i <= max; i++ {
		if !ok("RETR " + strconv.Itoa(i)) {
			break // no such message, or the server died
		}
		msg, err := p.multi()
		if err != nil {
			return false
		}
		if !ok("DELE " + strconv.Itoa(i)) {
			return false
		}
		ids = append(ids, idOf(msg))
	}
	// From here on a crash may take any of them.
	mb.mu.Lock()
	for _, id := range ids {
		if w := mb.wants[user][id]; w != nil {
			w.dele, w.must = true, false
		}
	}
	mb.mu.Unlock()
	if !ok("QUIT") {
		return false
	}
	mb.mu.Lock()
	for _, id := range ids {
		if w := mb.wants[user][id]; w != nil {
			w.gone = true
		}
	}
	mb.deled += len(ids)
	mb.mu.Unlock()
	return true
}
