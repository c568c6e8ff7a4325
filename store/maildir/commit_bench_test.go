package maildir

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCommit measures UPDATE: Open, Commit of n deletions, Close,
// with the update journal that makes it all or nothing across a crash
// ("journal") and without it ("plain", as when the journal cannot be
// written). Run with
//
//	go test -bench Commit -run '^$' ./store/maildir
func BenchmarkCommit(b *testing.B) {
	for _, mode := range []string{"journal", "plain"} {
		for _, n := range []int{2, 3000} {
			b.Run(fmt.Sprintf("%s/%d", mode, n), func(b *testing.B) {
				s, err := New(Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				s.noJournal = mode == "plain"
				dir, _ := s.Path("alice")
				if err := ensure(dir); err != nil {
					b.Fatal(err)
				}
				all := make([]int, n)
				for i := range all {
					all[i] = i
				}
				for i := 0; i < b.N; i++ {
					b.StopTimer()
					for j := range n {
						name := fmt.Sprintf("1700000000.M%06dP1Q%d.bench,S=2,W=3", j, i)
						if err := os.WriteFile(filepath.Join(dir, dirNew, name), []byte("x\n"), 0o600); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
					md, err := s.Open(b.Context(), "alice")
					if err != nil {
						b.Fatal(err)
					}
					if err := md.Commit(b.Context(), all); err != nil {
						b.Fatal(err)
					}
					md.Close()
				}
			})
		}
	}
}
