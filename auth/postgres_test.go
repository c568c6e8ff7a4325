package auth

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/store/pgstore"
)

var pg testenv.Postgres

// pgDSN returns a fresh database with postie's schema.
func pgDSN(t *testing.T) string {
	t.Helper()
	dsn := pg.DB(t)
	if err := pgstore.Migrate(t.Context(), pgstore.Options{DSN: dsn, Timeout: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	return dsn
}

// pgNode opens a PostgreSQL user database on a pool of its own, as a node
// of a cluster would; log (if not nil) receives its log.
func pgNode(t *testing.T, dsn string, listen bool, log io.Writer) *DB {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if log == nil {
		log = io.Discard
	}
	db, err := OpenPostgres(t.Context(), PostgresOptions{
		Options: Options{Logger: slog.New(slog.NewTextHandler(log, nil))},
		Pool:    pool, Timeout: 10 * time.Second, Listen: listen,
	})
	if err != nil {
		t.Fatalf("OpenPostgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func login(t *testing.T, db *DB, user, password string) bool {
	t.Helper()
	name, ok, err := db.Authenticate(t.Context(), user, password)
	if err != nil {
		t.Fatalf("Authenticate(%s): %v", user, err)
	}
	if ok && name == "" {
		t.Fatalf("Authenticate(%s): ok without a name", user)
	}
	return ok
}

// eventually polls cond; the bound only keeps a broken test from hanging
// (a change reaches a listening node in milliseconds).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s: not after 30s", what)
		}
	}
}

// TestPostgresTwoNodes: two nodes on one database. An account added and a
// password changed on node A reach node B through LISTEN/NOTIFY, without
// a reload; once B has the change it refuses the old password, cached
// verification or not, and takes the new one.
func TestPostgresTwoNodes(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	a := pgNode(t, dsn, true, nil)
	b := pgNode(t, dsn, true, nil)

	if err := a.Add("alice", "old secret", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	if err := a.Add("Alice", "x", "SHA512-CRYPT"); err == nil {
		t.Errorf("Add of a name that differs only in case succeeded")
	}
	eventually(t, "node B sees the new user", func() bool { return b.Exists("alice") })
	if !login(t, b, "alice", "old secret") || !login(t, b, "ALICE", "old secret") {
		t.Fatal("node B refuses the password set on node A")
	}
	if n := b.cache.len(); n == 0 {
		t.Fatal("node B did not cache the verification")
	}
	if err := a.SetPassword("alice", "new secret", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B refuses the old password", func() bool { return !login(t, b, "alice", "old secret") })
	if !login(t, b, "alice", "new secret") {
		t.Error("node B refuses the new password")
	}
	for range 3 {
		if login(t, b, "alice", "old secret") {
			t.Fatal("node B accepted the old password again")
		}
	}
	if err := a.Delete("alice"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "node B forgets the deleted user", func() bool { return !b.Exists("alice") })
	if login(t, b, "alice", "new secret") {
		t.Error("node B accepted a deleted user")
	}
}

// TestPostgresNoListener: a node that gets no notification (its listener
// gone: here it never had one) reads the user's row at each login, so it
// refuses a changed password from the moment the change is committed,
// even one it verified and cached before.
func TestPostgresNoListener(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	a := pgNode(t, dsn, true, nil)
	if err := a.Add("bob", "old", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	deaf := pgNode(t, dsn, false, nil)
	if !login(t, deaf, "bob", "old") {
		t.Fatal("refused the current password")
	}
	if err := a.SetPassword("bob", "new", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	if login(t, deaf, "bob", "old") {
		t.Error("a node without notifications accepted the old password after the change was committed")
	}
	if !login(t, deaf, "bob", "new") {
		t.Error("refused the new password")
	}
	// The listening node's own Close leaves it asking the database too.
	a.Close()
	if err := deaf.SetPassword("bob", "newer", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	if login(t, a, "bob", "new") {
		t.Error("a node whose listener stopped accepted a changed password")
	}
}

// TestPostgresListenerReconnects: when the listening connection is killed
// (pg_terminate_backend of every connection, as a database restart would), the node says so,
// reconnects by itself, and a change made meanwhile reaches it.
func TestPostgresListenerReconnects(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	var log testenv.SyncBuffer
	b := pgNode(t, dsn, true, &log)
	if err := b.Add("carol", "one", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	db := dsn[strings.Index(dsn, "dbname=")+len("dbname="):]
	db, _, _ = strings.Cut(db, " ")
	pg.ExecIn(t, dsn, fmt.Sprintf(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = '%s' AND pid <> pg_backend_pid() AND backend_type = 'client backend'`, db))
	eventually(t, "the node logs the lost listener", func() bool { return strings.Contains(log.String(), "lost the connection that listens") })
	pg.ExecIn(t, dsn, `UPDATE postie_users SET home = '/home/carol' WHERE name = 'carol'`)
	eventually(t, "the change made by psql reaches the node", func() bool {
		h, _ := b.Home("carol")
		return h == "/home/carol"
	})
	eventually(t, "the node logs that it listens again", func() bool { return strings.Contains(log.String(), "listening for user changes again") })
	pg.ExecIn(t, dsn, `TRUNCATE postie_users`)
	eventually(t, "TRUNCATE reaches the node", func() bool { return !b.Exists("carol") })
}

// TestPostgresImport: one command copies a passwd-file (hashes of every
// kind, SCRAM keys, home and extra fields) into the database; a second
// run changes nothing; the imported users log in as they did from the
// file, and fields survive the trip.
func TestPostgresImport(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	plainHash, _ := Hash("SHA512-CRYPT", "pw1")
	scramHash, _ := Hash("SCRAM-SHA-256", "pw2")
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	file := "# users\n" +
		"dave:" + plainHash + ":1000:1000:Dave:/home/dave:/bin/sh:userdb_quota_rule=*:storage=1G\n" +
		"erin:" + scramHash + "\n" +
		"bad line without colon\n" +
		"dave:{PLAIN}dup::::::\n" +
		"frank:{PLAIN}pw3::::::\r\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	db := pgNode(t, dsn, true, nil)
	if err := db.Add("Frank", "other", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	st, err := db.Import(path)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ImportStats{Added: 2, Skipped: 3}); st != want {
		t.Errorf("first import: %+v, want %+v", st, want)
	}
	st, err = db.Import(path)
	if want := (ImportStats{Unchanged: 2, Skipped: 3}); st != want || err != nil {
		t.Errorf("second import: %+v, %v; want %+v", st, err, want)
	}
	if !login(t, db, "dave", "pw1") || !login(t, db, "erin", "pw2") {
		t.Error("an imported user cannot log in")
	}
	if h, _ := db.Home("dave"); h != "/home/dave" {
		t.Errorf("home of dave = %q", h)
	}
	if _, _, ok, err := db.SCRAMCredentials(t.Context(), "erin", "SCRAM-SHA-256"); !ok || err != nil {
		t.Errorf("SCRAM keys of erin: %v, %v", ok, err)
	}
	got := pg.ExecIn(t, dsn, `SELECT extra, gecos FROM postie_users WHERE name = 'dave'`)
	if !strings.Contains(got, "userdb_quota_rule=*:storage=1G") || !strings.Contains(got, "Dave") {
		t.Errorf("dave's row: %s", got)
	}
	// A change in the file is an update.
	os.WriteFile(path, []byte("dave:{PLAIN}changed::::/home/dave2::\n"), 0o600)
	if st, err = db.Import(path); st != (ImportStats{Updated: 1}) || err != nil {
		t.Errorf("import of a changed entry: %+v, %v", st, err)
	}
	if !login(t, db, "dave", "changed") || login(t, db, "dave", "pw1") {
		t.Error("after the update the password is not the file's")
	}
	if _, err := db.Import(filepath.Join(dir, "missing")); err == nil {
		t.Error("import of a missing file succeeded")
	}
}

// TestPostgresOddNames: names are data, never SQL or patterns: quotes,
// LIKE wildcards and non-ASCII names are stored and matched exactly (the
// case folding is ASCII only, as for the passwd-file); an invalid name is
// refused before the database is asked.
func TestPostgresOddNames(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	db := pgNode(t, dsn, false, nil)
	for _, name := range []string{"o'brien", "%", "a_c", "名前", `back"slash`} {
		if err := db.Add(name, "pw "+name, "SHA512-CRYPT"); err != nil {
			t.Fatalf("Add(%q): %v", name, err)
		}
	}
	for _, tc := range []struct {
		user string
		ok   bool
	}{
		{"o'brien", true}, {"O'BRIEN", true}, {"%", true}, {"a_c", true}, {"abc", false}, {"名前", true}, {`back"slash`, true}, {"x%", false},
	} {
		want := strings.ToLower(tc.user)
		if tc.user == "名前" || tc.user == `back"slash` {
			want = tc.user
		}
		if got := login(t, db, tc.user, "pw "+want); got != tc.ok {
			t.Errorf("login %q = %v, want %v", tc.user, got, tc.ok)
		}
	}
	for _, bad := range []string{"", "a b", "a:b", ".x", "a\x00b", "a/b"} {
		if err := db.Add(bad, "pw", "SHA512-CRYPT"); !errors.Is(err, ErrBadUsername) {
			t.Errorf("Add(%q) = %v, want ErrBadUsername", bad, err)
		}
		if _, ok, err := db.Authenticate(t.Context(), bad, "pw"); ok || err != nil {
			t.Errorf("Authenticate(%q) = %v, %v", bad, ok, err)
		}
	}
	if err := db.SetPassword("nobody", "pw", "SHA512-CRYPT"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("SetPassword of an unknown user: %v", err)
	}
	if err := db.Delete("nobody"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Delete of an unknown user: %v", err)
	}
	if got := pg.ExecIn(t, dsn, `SELECT count(*) FROM postie_users`); !strings.Contains(got, "5") {
		t.Errorf("rows: %s", got)
	}
}

// TestPostgresDeliveryLookups: the lookups of delivery (Lookup, Exists,
// Home and their Context forms) are bounded as logins are. A node that
// gets no notifications refuses a user deleted on another node right
// after the COMMIT, and finds the home of a user re-created with another
// one where it is now.
func TestPostgresDeliveryLookups(t *testing.T) {
	t.Parallel()
	dsn := pgDSN(t)
	a := pgNode(t, dsn, true, nil)
	if err := a.Add("dave", "pw", "SHA512-CRYPT"); err != nil {
		t.Fatal(err)
	}
	pg.ExecIn(t, dsn, `UPDATE postie_users SET home = '/home/old/dave' WHERE name = 'dave'`)
	deaf := pgNode(t, dsn, false, nil)
	if name, ok, err := deaf.LookupContext(t.Context(), "DAVE"); name != "dave" || !ok || err != nil {
		t.Fatalf("LookupContext(DAVE) = %q, %v, %v", name, ok, err)
	}
	if h, ok := deaf.Home("dave"); h != "/home/old/dave" || !ok {
		t.Fatalf("Home(dave) = %q, %v", h, ok)
	}

	if err := a.Delete("dave"); err != nil {
		t.Fatal(err)
	}
	if name, ok, err := deaf.LookupContext(t.Context(), "dave"); ok || err != nil {
		t.Errorf("after the delete, LookupContext(dave) = %q, %v, %v; want no such user", name, ok, err)
	}
	if name, ok := deaf.Lookup("dave"); ok {
		t.Errorf("after the delete, Lookup(dave) = %q", name)
	}
	if deaf.Exists("dave") {
		t.Error("after the delete, Exists(dave)")
	}
	if h, ok, err := deaf.HomeContext(t.Context(), "dave"); ok || err != nil {
		t.Errorf("after the delete, HomeContext(dave) = %q, %v, %v", h, ok, err)
	}

	// Re-created elsewhere with another home (by psql: no node saw it).
	pg.ExecIn(t, dsn, `INSERT INTO postie_users (name, password, home) VALUES ('Dave', '{PLAIN}x', '/home/new/dave')`)
	if name, ok, err := deaf.LookupContext(t.Context(), "dave"); name != "Dave" || !ok || err != nil {
		t.Errorf("after the re-creation, LookupContext(dave) = %q, %v, %v", name, ok, err)
	}
	if h, ok, err := deaf.HomeContext(t.Context(), "dave"); h != "/home/new/dave" || !ok || err != nil {
		t.Errorf("after the re-creation, HomeContext(dave) = %q, %v, %v; want the new home", h, ok, err)
	}
}

// TestPostgresDeliveryLookupsFrozen: when the database must be asked and
// does not answer, the lookups of delivery return the error (a temporary
// failure for intake), never "no such user".
func TestPostgresDeliveryLookupsFrozen(t *testing.T) {
	t.Parallel()
	var own testenv.Postgres
	t.Cleanup(own.Stop)
	dsn := own.DB(t)
	if err := pgstore.Migrate(t.Context(), pgstore.Options{DSN: dsn, Timeout: 30 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}); err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	own.ExecIn(t, dsn, `INSERT INTO postie_users (name, password, home) VALUES ('erin', '{PLAIN}x', '/home/erin')`)
	var log testenv.SyncBuffer
	deaf := pgNode(t, dsn, false, &log)
	if _, ok, err := deaf.LookupContext(t.Context(), "erin"); !ok || err != nil {
		t.Fatalf("LookupContext(erin) = %v, %v", ok, err)
	}
	own.Freeze(t)
	if name, ok, err := deaf.LookupContext(t.Context(), "erin"); err == nil {
		t.Errorf("frozen database: LookupContext(erin) = %q, %v, nil; want an error", name, ok)
	}
	if h, ok, err := deaf.HomeContext(t.Context(), "erin"); err == nil {
		t.Errorf("frozen database: HomeContext(erin) = %q, %v, nil; want an error", h, ok)
	}
	// The forms without an error log it.
	if deaf.Exists("erin") {
		t.Error("frozen database: Exists(erin) without the database")
	}
	if !strings.Contains(log.String(), "looking up a user failed") {
		t.Errorf("the failure of Exists is not logged:\n%s", log.String())
	}
	own.Thaw(t)
	if _, ok, err := deaf.LookupContext(t.Context(), "erin"); !ok || err != nil {
		t.Errorf("thawed: LookupContext(erin) = %v, %v", ok, err)
	}
}
