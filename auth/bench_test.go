package auth

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
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
