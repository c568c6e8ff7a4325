package auth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postie-mail/postie/store/pgstore"
)

// benchDB opens a file holding one DefaultScheme (ARGON2ID, Dovecot's
// parameters) user.
func benchDB(b *testing.B, ttl int) *DB {
	b.Helper()
	stored, err := Hash(DefaultScheme, "secret")
	if err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(b.TempDir(), "passwd")
	if err := os.WriteFile(path, []byte("alice:"+stored+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	opts := Options{Logger: slog.New(slog.DiscardHandler)}
	if ttl < 0 {
		opts.CacheTTL = -1
	}
	db, err := Open(path, opts)
	if err != nil {
		b.Fatal(err)
	}
	return db
}

func benchAuthenticate(b *testing.B, db *DB) {
	ctx := context.Background()
	if _, ok, err := db.Authenticate(ctx, "alice", "secret"); !ok || err != nil {
		b.Fatalf("Authenticate = %v, %v", ok, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok, err := db.Authenticate(ctx, "alice", "secret"); !ok || err != nil {
			b.Fatalf("Authenticate = %v, %v", ok, err)
		}
	}
}

// A repeat login within CacheTTL: one HMAC and a map look-up.
func BenchmarkAuthenticateArgon2idCached(b *testing.B) {
	benchAuthenticate(b, benchDB(b, 0))
}

// Every login pays the full Argon2id (m=64 MiB, t=3, p=1).
func BenchmarkAuthenticateArgon2idUncached(b *testing.B) {
	benchAuthenticate(b, benchDB(b, -1))
}

// BenchmarkLoginBackends compares a repeat login (the verification
// cached) against the users of a passwd-file, of PostgreSQL with the
// listener keeping them current (memory only), and of PostgreSQL without
// one (a row read per login: what a node pays while its listener is
// down).
func BenchmarkLoginBackends(b *testing.B) {
	b.Run("passwd-file", func(b *testing.B) { benchAuthenticate(b, benchDB(b, 0)) })
	pgBench := func(b *testing.B, listen bool) {
		dsn := pg.DB(b)
		if err := pgstore.Migrate(b.Context(), pgstore.Options{DSN: dsn, Logger: slog.New(slog.DiscardHandler)}); err != nil {
			b.Fatal(err)
		}
		pool, err := pgxpool.New(b.Context(), dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer pool.Close()
		db, err := OpenPostgres(b.Context(), PostgresOptions{Options: Options{Logger: slog.New(slog.DiscardHandler)}, Pool: pool, Listen: listen})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Add("alice", "secret", DefaultScheme); err != nil {
			b.Fatal(err)
		}
		if listen {
			for !db.pg.fresh() {
				time.Sleep(time.Millisecond)
			}
		}
		benchAuthenticate(b, db)
	}
	b.Run("postgres", func(b *testing.B) { pgBench(b, true) })
	b.Run("postgres-no-listener", func(b *testing.B) { pgBench(b, false) })
}
