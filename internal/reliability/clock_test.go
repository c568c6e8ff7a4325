package reliability

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/store/maildir"
)

// TestClockJumps delivers through four stores at once, as four delivery
// processes would (and with the same process id, as when ids are reused),
// whose clocks misbehave: one stands still, one steps back an hour at each
// reading, one jumps days back and forth at random, one is the system's.
// Every message gets its own UIDL, stable across logins, and the real
// server lists and sends them all whole.
func TestClockJumps(t *testing.T) {
	r, seed := newRand(t)
	in := newInst(t, instOptions{})
	per := iterations(50, 1000)
	base := time.Date(2026, 3, 29, 1, 59, 59, 999_999_000, time.UTC) // a DST step in Europe
	var mu sync.Mutex
	step := base
	clocks := map[string]func() time.Time{
		"frozen": func() time.Time { return base },
		"back": func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			step = step.Add(-time.Hour)
			return step
		},
		"jumping": func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			return base.Add(time.Duration(r.Int64N(int64(6*24*time.Hour))) - 3*24*time.Hour)
		},
		"system": time.Now,
	}
	if err := os.MkdirAll(in.mailRoot, 0o700); err != nil {
		t.Fatal(err)
	}
	mb := newMailbox()
	var wg sync.WaitGroup
	c := 0
	for name, clock := range clocks {
		c++
		st, err := maildir.New(maildir.Options{Root: in.mailRoot, Now: clock, Hostname: "clock-" + name,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		rc := rand.New(rand.NewPCG(seed, uint64(c)))
		wg.Go(func() {
			for k := range per {
				id := fmt.Sprintf("%s.%d", name, k)
				user := users[k%2]
				msg := newMessage(rc, id, 100+rc.IntN(2000))
				mb.mu.Lock()
				mb.wants[user][id] = &want{wire: wireForm(msg)}
				mb.mu.Unlock()
				if _, err := st.Deliver(t.Context(), user, strings.NewReader(msg)); err != nil {
					t.Errorf("deliver %s: %v", id, err)
					return
				}
				mb.ack(user, id)
			}
		})
	}
	wg.Wait()
	in.start()
	// check requires distinct UIDLs within a maildrop and, the second
	// time, the same ones as the first.
	for range 2 {
		if n := mb.checkAll(in); n != 4*per {
			t.Errorf("%d messages listed, want %d", n, 4*per)
		}
	}
}
