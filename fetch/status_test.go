package fetch

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStatus: each run (not a dry run) leaves its result for postie
// fetch status; a failed run keeps when the last good one was.
func TestStatus(t *testing.T) {
	p := startPostie(t, nil)
	p.deliver(t, "user1", corpus[0], corpus[1])
	clk := &testClock{t: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)}
	t.Setenv("POSTIE_FETCH_STATUS_PASS", "pass1")
	c := config(t, account("st", p.addr, "maildir = \""+t.TempDir()+"/M\"", `password_env = "POSTIE_FETCH_STATUS_PASS"`))
	a := c.Accounts[0]
	if s, err := c.LastStatus(a); s != nil || err != nil {
		t.Fatalf("before any run: %v %v", s, err)
	}
	New(c, a, Options{Now: clk.Now, DryRun: true, Logger: quiet()}).Run(context.Background())
	if s, _ := c.LastStatus(a); s != nil {
		t.Errorf("a dry run left a status")
	}
	runOnce(t, c, Options{Now: clk.Now, Logger: quiet()})
	s, err := c.LastStatus(a)
	if err != nil || s == nil || s.Fetched != 2 || s.Deleted != 2 || s.Error != "" || !s.Time.Equal(clk.Now()) || !s.LastOK.Equal(clk.Now()) {
		t.Fatalf("after a run: %+v %v", s, err)
	}
	fi, _ := os.Stat(c.statusFile(a))
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("status file mode %v", fi.Mode())
	}
	good := clk.Now()
	clk.Add(time.Hour)
	t.Setenv("POSTIE_FETCH_STATUS_PASS", "wrong")
	res := New(c, a, Options{Now: clk.Now, Logger: quiet()}).Run(context.Background())
	s, _ = c.LastStatus(a)
	if res.Err == nil || s.Kind != "auth" || s.Error != res.Err.Err.Error() || !s.LastOK.Equal(good) || !s.Time.Equal(clk.Now()) || strings.Contains(s.Error, "wrong") {
		t.Errorf("after a failed run: %+v", s)
	}
	os.WriteFile(c.statusFile(a), []byte("{"), 0o600)
	if _, err := c.LastStatus(a); err == nil {
		t.Error("damaged status file: no error")
	}
}

func TestStatusSummary(t *testing.T) {
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.Local)
	s := &Status{Time: at, Fetched: 3, Octets: 2048, Deleted: 3, Left: 2}
	if got, want := s.Summary(at.Add(90*time.Second)), "last run 2026-05-01 10:00:00 (1m30s ago): fetched 3 (2.0 KiB), deleted 3, skipped 0, 2 left for the next run"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	s = &Status{Time: at, Error: "account \"a\" is not signed in", Kind: "auth"}
	if got, want := s.Summary(at), "last run 2026-05-01 10:00:00 (0s ago): fetched 0 (0 B), deleted 0, skipped 0; error (auth): account \"a\" is not signed in; no run without an error yet"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestStatusSASL: the SCRAM refusal that postie fetch status shows, only
// while the runs of that account remember it.
func TestStatusSASL(t *testing.T) {
	c := config(t, account("a", "pop.example.org:995", "maildir = \""+t.TempDir()+"/M\""))
	a := c.Accounts[0]
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.Local)
	s := &Status{Time: at, SCRAMRefused: at, SCRAMRefusedFor: scramKey(a), SCRAMFallback: "plain"}
	for _, tc := range []struct {
		fallback, key string
		now           time.Time
		want          string
	}{
		{"plain", scramKey(a), at, "SASL: SCRAM refused on 2026-05-01 10:00:00, using PLAIN until 2026-05-31 10:00:00"},
		{"user", scramKey(a), at.Add(29 * 24 * time.Hour), "SASL: SCRAM refused on 2026-05-01 10:00:00, using USER/PASS until 2026-05-31 10:00:00"},
		{"login", scramKey(a), at, "SASL: SCRAM refused on 2026-05-01 10:00:00, using LOGIN until 2026-05-31 10:00:00"},
		// A status file written before the mechanism was recorded, or
		// with one fetch does not write (not printed).
		{"", scramKey(a), at, "SASL: SCRAM refused on 2026-05-01 10:00:00, using the next mechanism until 2026-05-31 10:00:00"},
		{"\x1b[2Jplain", scramKey(a), at, "SASL: SCRAM refused on 2026-05-01 10:00:00, using the next mechanism until 2026-05-31 10:00:00"},
		// Forgotten after 30 days; not for another user or server; not
		// from the future.
		{"plain", scramKey(a), at.Add(30 * 24 * time.Hour), ""},
		{"plain", "other@" + a.Addr(), at, ""},
		{"plain", scramKey(a), at.Add(-time.Second), ""},
	} {
		s.SCRAMFallback, s.SCRAMRefusedFor = tc.fallback, tc.key
		if got := s.SASL(a, tc.now); got != tc.want {
			t.Errorf("%s for %s at %v:\ngot  %q\nwant %q", tc.fallback, tc.key, tc.now, got, tc.want)
		}
	}
	if got := (&Status{Time: at}).SASL(a, at); got != "" {
		t.Errorf("no refusal: %q", got)
	}
}
