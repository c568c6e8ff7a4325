package maildir

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postie-mail/postie/store"
)

// BenchmarkSnapshotDovecot measures what taking over Dovecot's UIDLs adds
// to a login that reads the directories (snapshot cache off): "own" with
// dovecot_uidl_format unset, "dovecot" with a dovecot-uidlist listing
// every message and postie-uidls already written (every login after the
// first). Compare the two in one run:
//
//	go test -bench SnapshotDovecot -run '^$' -count 6 ./store/maildir
func BenchmarkSnapshotDovecot(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		for _, mode := range []string{"own", "dovecot"} {
			b.Run(fmt.Sprintf("%s/%dk", mode, n/1000), func(b *testing.B) {
				format := ""
				if mode == "dovecot" {
					format = "%08Xu%08Xv"
				}
				s, err := New(Options{Root: b.TempDir(), Hostname: "bench", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SnapshotCache: -1, DovecotUIDLFormat: format})
				if err != nil {
					b.Fatal(err)
				}
				dir, _ := s.Path("alice")
				if err := ensure(dir); err != nil {
					b.Fatal(err)
				}
				makeMaildir(b, dir, n, false)
				var ul strings.Builder
				fmt.Fprintf(&ul, "3 V1700000000 N%d G0123456789abcdef0123456789abcdef\n", n+1)
				for i := range n {
					fmt.Fprintf(&ul, "%d W11 :%d.M%06dP%dQ%dR%08x.bench.example.org,S=10,W=11\n", i+1, 1700000000+i/1000, i%1000, 4242, i, i*2654435761)
				}
				if err := os.WriteFile(filepath.Join(dir, uidlistName), []byte(ul.String()), 0o600); err != nil {
					b.Fatal(err)
				}
				openClose(b, s, n) // writes postie-uidls
				if mode == "dovecot" {
					md := mustOpenB(b, s)
					if u := md.Messages()[0].UID; u != "000000016553f100" {
						b.Fatalf("first UIDL %q", u)
					}
					md.Close()
				}
				b.ReportAllocs()
				cpu0 := cpuTime()
				for b.Loop() {
					openClose(b, s, n)
				}
				b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
			})
		}
	}
}

func mustOpenB(b *testing.B, s *Store) store.Maildrop {
	md, err := s.Open(b.Context(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	return md
}
