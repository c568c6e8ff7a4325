package pgstore

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/store/maildir"
)

// The benchmarks compare pgstore with maildir on the same machine (the
// PostgreSQL server is the test binary's own, fsync on, on the same disk
// as the Maildirs). Run with
//
//	go test -bench . -run '^$' -benchtime 2s ./store/pgstore

// benchMessage is a typical 4 KiB message with LF ends.
var benchMessage = bytes.Repeat([]byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiu\n"), 60)

func benchStores(b *testing.B) map[string]func(b *testing.B) store.Store {
	return map[string]func(b *testing.B) store.Store{
		"pgstore": func(b *testing.B) store.Store {
			return newTestStore(b, pg.DB(b), "bench")
		},
		"maildir": func(b *testing.B) store.Store {
			s, err := maildir.New(maildir.Options{Root: b.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
}

// BenchmarkDeliver: durable deliveries of a 4 KiB message into one of 16
// maildrops, from 4 goroutines per CPU (as an MTA's parallel LMTP connections
// would), reported as deliveries/s.
func BenchmarkDeliver(b *testing.B) {
	for _, name := range []string{"pgstore", "maildir"} {
		b.Run(name, func(b *testing.B) {
			s := benchStores(b)[name](b)
			b.SetParallelism(4) // 4 goroutines per CPU: 8 on 2 CPUs
			b.ReportAllocs()
			b.SetBytes(int64(len(benchMessage)))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					if _, err := s.Deliver(b.Context(), fmt.Sprintf("user%d", i%16), bytes.NewReader(benchMessage)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}

// BenchmarkLoginStat: a login (lock and snapshot) then STAT (count and
// total size) then logout, on a maildrop of 10,000 messages. "cold"
// disables the store's snapshot cache (every login reads the whole list,
// as after a change), "cached" is a maildrop unchanged since the last
// login (a poll that finds nothing new).
func BenchmarkLoginStat(b *testing.B) {
	const n = 10_000
	for _, name := range []string{"pgstore-cold", "pgstore-cached", "maildir-cold", "maildir-cached"} {
		b.Run(name, func(b *testing.B) {
			var s store.Store
			switch name {
			case "pgstore-cold", "pgstore-cached":
				ps := newTestStore(b, pg.DB(b), "bench")
				if name == "pgstore-cold" {
					ps.snaps = nil
				}
				fillPG(b, ps, "alice", n)
				s = ps
			default:
				cache := -1
				if name == "maildir-cached" {
					cache = 0
				}
				root := b.TempDir()
				ms, err := maildir.New(maildir.Options{Root: root, SnapshotCache: cache, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					b.Fatal(err)
				}
				fillMaildir(b, filepath.Join(root, "alice"), n)
				s = ms
				if cache == 0 {
					// The cache trusts a directory unchanged for 2s.
					time.Sleep(2100 * time.Millisecond)
				}
			}
			login := func() {
				md, err := s.Open(b.Context(), "alice")
				if err != nil {
					b.Fatal(err)
				}
				var total int64
				msgs := md.Messages()
				for _, m := range msgs {
					total += m.Size
				}
				if len(msgs) != n || total != int64(n)*int64(len(benchMessage)+60) {
					b.Fatalf("STAT %d %d", len(msgs), total)
				}
				md.Close()
			}
			login()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				login()
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "logins/s")
		})
	}
}

// fillPG stores n copies of benchMessage for user in one statement, as n
// deliveries would have, then lets PostgreSQL gather its statistics.
func fillPG(b testing.TB, s *Store, user string, n int) {
	size, wire := int64(len(benchMessage)), int64(len(benchMessage)+60)
	_, err := s.pool.Exec(b.Context(), `
WITH b AS (INSERT INTO postie_mailboxes (name, messages, octets) VALUES ($1, $2::bigint, $2::bigint * $3::bigint) RETURNING id),
m AS (
	INSERT INTO postie_messages (id, mailbox_id, uid, size, wire_size, chunks)
	SELECT x.id, b.id, $5 || x.id, $3, $4, 1 FROM b, (SELECT nextval('postie_message_id') AS id FROM generate_series(1, $2::int)) x
	RETURNING id)
INSERT INTO postie_chunks (message_id, seq, data) SELECT id, 0, $6 FROM m`, user, n, size, wire, s.uidPrefix, benchMessage)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(b.Context(), `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// fillMaildir writes n copies of benchMessage into dir/new under names as
// maildir delivers them (sizes in the name), without fsync.
func fillMaildir(b *testing.B, dir string, n int) {
	for _, sub := range []string{"new", "cur", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		name := fmt.Sprintf("%d.M%06dP4242Q%dR%08x.bench,S=%d,W=%d", 1700000000+i/1000, i%1000, i, i*7919, len(benchMessage), len(benchMessage)+60)
		if err := os.WriteFile(filepath.Join(dir, "new", name), benchMessage, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}
