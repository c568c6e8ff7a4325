package maildir

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUsageReadsNoMessage: sizes come from S= fields, the size cache and
// stat(2); FIFOs in place of messages prove that no file is opened (an
// open would block).
func TestUsageReadsNoMessage(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	mustDeliver(t, s, "alice", "Subject: a\n\nbody\n") // S=17
	mkfifo := func(path string) {
		t.Helper()
		if err := syscall.Mkfifo(path, 0o600); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
	}
	// A name with S= (Dovecot's form), a FIFO: never opened.
	mkfifo(filepath.Join(dir, "cur", "1700000001.M1P1.mx,S=1000,W=1020:2,S"))
	// No S=, but remembered in the size cache.
	mkfifo(filepath.Join(dir, "new", "1700000002.M2P1.mx"))
	cache := "postie-sizes 1\n1700000002.M2P1.mx 510 500\n"
	writeFile(t, filepath.Join(dir, cacheName), cache)
	// No S= and not cached: stat(2).
	writeFile(t, filepath.Join(dir, "new", "1700000003.M3P1.mx"), strings.Repeat("x", 77))
	// The same message in new/ and cur/ (caught mid-move) counts once.
	writeFile(t, filepath.Join(dir, "new", "1700000004.M4P1.mx,S=5"), "12345")
	writeFile(t, filepath.Join(dir, "cur", "1700000004.M4P1.mx,S=5:2,"), "12345")
	// Dot-files and garbage are not messages.
	writeFile(t, filepath.Join(dir, "new", ".hidden,S=9999"), "x")

	done := make(chan struct{})
	var n int
	var b int64
	var err error
	go func() { n, b, err = s.Usage(t.Context(), "alice"); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Usage blocked: it opened a FIFO")
	}
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(17 + 1000 + 500 + 77 + 5); n != 5 || b != want {
		t.Errorf("Usage = %d messages, %d octets; want 5, %d", n, b, want)
	}
}

func TestUsageMissingMaildir(t *testing.T) {
	s, _ := newTestStore(t, "h")
	n, b, err := s.Usage(t.Context(), "nobody")
	if n != 0 || b != 0 || err != nil {
		t.Errorf("Usage of a missing Maildir = %d, %d, %v", n, b, err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "nobody")); err == nil {
		t.Error("Usage created a Maildir")
	}
}

func BenchmarkUsage(b *testing.B) {
	for _, n := range []int{1000, 10_000} {
		b.Run(fmt.Sprintf("%d", n), func(b *testing.B) {
			s, err := New(Options{Root: b.TempDir(), Hostname: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			dir, _ := s.Path("alice")
			if err := ensure(dir); err != nil {
				b.Fatal(err)
			}
			makeMaildir(b, dir, n, false)
			for b.Loop() {
				if got, _, err := s.Usage(b.Context(), "alice"); err != nil || got != n {
					b.Fatalf("Usage = %d, %v", got, err)
				}
			}
		})
	}
}

// TestTmpCleanup: files in tmp/ older than 36 hours are removed by Open and
// Deliver, at most once an hour per Maildir; younger ones (deliveries in
// progress) and directories stay.
func TestTmpCleanup(t *testing.T) {
	s, logs := newTestStore(t, "h")
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now }
	dir, _ := s.Path("alice")
	mustDeliver(t, s, "alice", "x\n") // makes the Maildir; first cleanup done
	tmp := filepath.Join(dir, "tmp")
	old := filepath.Join(tmp, "1893412800.M1P99.dead")
	young := filepath.Join(tmp, "1893412800.M2P99.busy")
	writeFile(t, old, "partial")
	writeFile(t, young, "in progress")
	if err := os.Mkdir(filepath.Join(tmp, "olddir"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old, filepath.Join(tmp, "olddir")} {
		if err := os.Chtimes(p, now.Add(-37*time.Hour), now.Add(-37*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(young, now.Add(-34*time.Hour), now.Add(-34*time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Within the hour: nothing is looked at.
	now = now.Add(30 * time.Minute)
	mustOpen(t, s, "alice").Close()
	mustDeliver(t, s, "alice", "y\n")
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("tmp/ cleaned twice within an hour: %v", err)
	}

	// An hour after the last cleanup, Open removes the stale file only.
	now = now.Add(31 * time.Minute)
	mustOpen(t, s, "alice").Close()
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale tmp file still there: %v", err)
	}
	for _, p := range []string{young, filepath.Join(tmp, "olddir")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(p), err)
		}
	}
	if !strings.Contains(logs.String(), "removed stale file in tmp/") {
		t.Errorf("removal not logged:\n%s", logs)
	}

	// Deliver cleans too, once its hour has passed (the young file is
	// now 37 hours old).
	now = now.Add(2 * time.Hour)
	mustDeliver(t, s, "alice", "z\n")
	if _, err := os.Stat(young); !os.IsNotExist(err) {
		t.Errorf("tmp file now 37h old still there: %v", err)
	}
	md := mustOpen(t, s, "alice")
	defer md.Close()
	if n := len(md.Messages()); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}
