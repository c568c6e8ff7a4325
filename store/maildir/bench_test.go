package maildir

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSnapshot measures a login (Open: lock and snapshot, then Close)
// on big Maildirs: "names" with the sizes in the file names as postie
// delivers them, "cache" with names as Postfix writes them and the sizes
// remembered in postie-sizes; "read" with the snapshot cache disabled (every
// login reads the directories, as after a change), "cached" with it (the
// Maildir unchanged for more than the cache's margin), "restart" with a new
// Store for every login (the first login after a restart: the snapshot
// index on disk, for maildrops of indexMin messages or more), "changed"
// with new/ touched before every login (read as after a delivery, then
// kept in the cache and written to the index). Run with
//
//	go test -bench Snapshot -run '^$' ./store/maildir
func BenchmarkSnapshot(b *testing.B) {
	for _, mode := range []string{"names/read", "cache/read", "names/cached", "names/restart", "names/changed"} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/%dk", mode, n/1000), func(b *testing.B) {
				cacheSize := -1
				if !strings.HasSuffix(mode, "/read") {
					cacheSize = 0
				}
				opts := Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotCache: cacheSize}
				s, err := New(opts)
				if err != nil {
					b.Fatal(err)
				}
				dir, _ := s.Path("alice")
				if err := ensure(dir); err != nil {
					b.Fatal(err)
				}
				makeMaildir(b, dir, n, strings.HasPrefix(mode, "cache/"))
				if cacheSize >= 0 {
					// Older than the margin, as a maildrop polled
					// with nothing new; the first login writes the
					// index.
					time.Sleep(snapMargin + 100*time.Millisecond)
					openClose(b, s, n)
				}
				b.ReportAllocs()
				cpu0 := cpuTime()
				if strings.HasSuffix(mode, "/changed") {
					// The directories' stamps are always old
					// enough to be trusted.
					s.now = func() time.Time { return time.Now().Add(snapMargin + time.Second) }
				}
				restart, changed := strings.HasSuffix(mode, "/restart"), strings.HasSuffix(mode, "/changed")
				for b.Loop() {
					// (A switch here, in a b.Loop body, crashes
					// the go1.26.8 compiler's escape analysis.)
					if restart {
						if s, err = New(opts); err != nil {
							b.Fatal(err)
						}
					}
					if changed {
						now := time.Now()
						if err := os.Chtimes(filepath.Join(dir, dirNew), now, now); err != nil {
							b.Fatal(err)
						}
					}
					openClose(b, s, n)
				}
				// CPU time (user+system) is steadier than wall time on
				// a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
				if strings.HasSuffix(mode, "/restart") || strings.HasSuffix(mode, "/changed") {
					if hits, _ := s.snaps.stats(); hits != 0 {
						b.Fatalf("%d logins answered from the cache", hits)
					}
				}
			})
		}
	}
}

// openClose logs in to alice's maildrop, expecting n messages, and out.
func openClose(b *testing.B, s *Store, n int) {
	md, err := s.Open(b.Context(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	if got := len(md.Messages()); got != n {
		b.Fatalf("%d messages, want %d", got, n)
	}
	md.Close()
}

// cpuTime returns the CPU time the process has used, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// makeMaildir fills dir with n small messages, a third in new/ and the rest
// in cur/ with flags, created directly (no fsync).
func makeMaildir(b testing.TB, dir string, n int, cached bool) {
	body := []byte("012345678\n") // 10 octets, wire size 11
	var cache []cacheEntry
	for i := range n {
		unique := fmt.Sprintf("%d.M%06dP%dQ%dR%08x.bench.example.org", 1700000000+i/1000, i%1000, 4242, i, i*2654435761)
		name := unique + ",S=10,W=11"
		if cached {
			unique = fmt.Sprintf("%d.V801I%xM%d.mx.example.org", 1700000000+i/1000, i, i%1000)
			name = unique
			cache = append(cache, cacheEntry{unique, sizes{wire: 11, file: 10}})
		}
		path := filepath.Join(dir, dirNew, name)
		if i%3 != 0 {
			path = filepath.Join(dir, dirCur, name+":2,S")
		}
		if err := os.WriteFile(path, body, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	if cached {
		d, err := openMdir(dir)
		if err != nil {
			b.Fatal(err)
		}
		defer d.close()
		if err := saveSizes(d.fd, cache); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotCold is BenchmarkSnapshot with the page, dentry and
// inode caches dropped before every login (root only), as after a reboot:
// "read" reads the directories, "index" the snapshot index.
//
//	go test -bench SnapshotCold -run '^$' -benchtime 5x ./store/maildir
func BenchmarkSnapshotCold(b *testing.B) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Skipf("cannot drop caches: %v", err)
	}
	for _, mode := range []string{"read", "index"} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("names/%s/%dk", mode, n/1000), func(b *testing.B) {
				cacheSize := -1
				if mode == "index" {
					cacheSize = 0
				}
				opts := Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotCache: cacheSize}
				s, err := New(opts)
				if err != nil {
					b.Fatal(err)
				}
				dir, _ := s.Path("alice")
				if err := ensure(dir); err != nil {
					b.Fatal(err)
				}
				makeMaildir(b, dir, n, false)
				if mode == "index" {
					time.Sleep(snapMargin + 100*time.Millisecond)
					openClose(b, s, n)
				}
				for b.Loop() {
					b.StopTimer()
					// A new Store: the first login after a restart.
					if s, err = New(opts); err != nil {
						b.Fatal(err)
					}
					syscall.Sync()
					os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
					b.StartTimer()
					openClose(b, s, n)
				}
			})
		}
	}
}

// BenchmarkMessageOpen: what the store adds to a RETR of a small message
// in a session: Open(i), reading the 1 KiB message, Close. Since an idle
// session holds no directory descriptor, this includes reopening the
// Maildir and the message's folder.
//
//	go test -run '^$' -bench MessageOpen -count 6 ./store/maildir
func BenchmarkMessageOpen(b *testing.B) {
	s, err := New(Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Deliver(b.Context(), "alice", strings.NewReader(strings.Repeat("0123456789abcde\n", 64))); err != nil {
		b.Fatal(err)
	}
	md, err := s.Open(b.Context(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	defer md.Close()
	buf := make([]byte, 4096)
	for b.Loop() {
		r, err := md.Open(b.Context(), 0)
		if err != nil {
			b.Fatal(err)
		}
		for err == nil {
			_, err = r.Read(buf)
		}
		if err != io.EOF {
			b.Fatal(err)
		}
		r.Close()
	}
}
