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
// Maildir unchanged for more than the cache's margin). Run with
//
//	go test -bench Snapshot -run '^$' ./store/maildir
func BenchmarkSnapshot(b *testing.B) {
	for _, mode := range []string{"names/read", "cache/read", "names/cached"} {
		for _, n := range []int{10_000, 100_000} {
			b.Run(fmt.Sprintf("%s/%dk", mode, n/1000), func(b *testing.B) {
				cacheSize := -1
				if strings.HasSuffix(mode, "/cached") {
					cacheSize = 0
				}
				s, err := New(Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotCache: cacheSize})
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
					// with nothing new.
					time.Sleep(snapMargin + 100*time.Millisecond)
				}
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					md, err := s.Open(b.Context(), "alice")
					if err != nil {
						b.Fatal(err)
					}
					if got := len(md.Messages()); got != n {
						b.Fatalf("%d messages, want %d", got, n)
					}
					md.Close()
				}
				// CPU time (user+system) is steadier than wall time on
				// a shared machine.
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

// cpuTime returns the CPU time the process has used, in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// makeMaildir fills dir with n small messages, a third in new/ and the rest
// in cur/ with flags, created directly (no fsync).
func makeMaildir(b *testing.B, dir string, n int, cached bool) {
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
		if err := saveSizes(dir, cache); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSnapshotCold is BenchmarkSnapshot with the page, dentry and
// inode caches dropped before every login (root only), as after a reboot:
//
//	go test -bench SnapshotCold -run '^$' -benchtime 5x ./store/maildir
func BenchmarkSnapshotCold(b *testing.B) {
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
		b.Skipf("cannot drop caches: %v", err)
	}
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("names/%dk", n/1000), func(b *testing.B) {
			// The cache would survive drop_caches: this is the
			// first login after a restart.
			s, err := New(Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotCache: -1})
			if err != nil {
				b.Fatal(err)
			}
			dir, _ := s.Path("alice")
			if err := ensure(dir); err != nil {
				b.Fatal(err)
			}
			makeMaildir(b, dir, n, false)
			for b.Loop() {
				b.StopTimer()
				syscall.Sync()
				os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
				b.StartTimer()
				md, err := s.Open(b.Context(), "alice")
				if err != nil {
					b.Fatal(err)
				}
				md.Close()
			}
		})
	}
}
