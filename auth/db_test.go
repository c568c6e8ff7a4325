package auth

import (
	"context"
	"errors"
	"fmt"
	"github.com/postie-mail/postie/internal/testenv"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The POP3 server's Authenticator (pop3server), restated so this package
// does not import the engine.
var _ interface {
	Authenticate(ctx context.Context, user, password string) (canonical string, ok bool, err error)
} = (*DB)(nil)

// syncBuffer is testenv.SyncBuffer under this package's old name.
type syncBuffer = testenv.SyncBuffer

// openTest writes content (unless it is "-") to a passwd file in a fresh
// directory and opens it with a logger writing to the returned buffer.
func openTest(t *testing.T, content string, opts Options) (*DB, string, *syncBuffer) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passwd")
	if content != "-" {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncBuffer{}
	opts.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	return db, path, logs
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// authOK authenticates and fails the test on an error.
func authOK(t *testing.T, db *DB, user, password string) (string, bool) {
	t.Helper()
	name, ok, err := db.Authenticate(context.Background(), user, password)
	if err != nil {
		t.Fatalf("Authenticate(%q): %v", user, err)
	}
	if !ok && name != "" {
		t.Errorf("Authenticate(%q) failed but named %q", user, name)
	}
	return name, ok
}

const sampleFile = "# postie users\n" +
	"\n" +
	"alice:{SSHA256}TGGa+CTXh5gTQHWmMh5i0W/wmvdax3kUhwr7BpGWi3XvRWi4:1000:1000:Alice:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G\n" +
	"Bob:$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN.Pq.H91p5hVO1\r\n" +
	"carol:{PLAIN}hunter2-in-the-clear junk\tjunk\n" + // a tab: malformed
	"dave\n" + // no password field: malformed
	"erin:\n" + // no password: cannot log in
	"frank:{FOO}unknown-scheme-material\n" +
	"alice:{PLAIN}second-alice-is-ignored\n" +
	"grace:{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=\n"

func TestLoad(t *testing.T) {
	db, _, logs := openTest(t, sampleFile, Options{})
	if got, want := db.Users(), []string{"Bob", "alice", "erin", "frank", "grace"}; !slices.Equal(got, want) {
		t.Errorf("Users() = %q; want %q", got, want)
	}
	log := logs.String()
	for _, want := range []string{"line=5", "line=6", "line=9", "level=WARN"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	for _, secret := range []string{"hunter2", "unknown-scheme-material", "second-alice", "TGGa", "TVLl"} {
		if strings.Contains(log, secret) {
			t.Errorf("log shows %q:\n%s", secret, log)
		}
	}
}

// cheapDummy makes the failed logins of a test cost little. The real
// dummy is checked by TestDummyHash.
func cheapDummy(db *DB) {
	db.dummy = "{ARGON2ID}$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHRzYWx0$8+YXdo4KnnDEDy8h6pBvF3a8a3YDLTYJt4/qKhhQqXQ"
}

func TestDummyHash(t *testing.T) {
	a, b := dummyHash(), dummyHash()
	if a == b {
		t.Error("two dummy hashes are equal")
	}
	// Same scheme and cost as what Hash writes for DefaultScheme.
	g := generating[0]
	if g.scheme != DefaultScheme || !regexp.MustCompile(g.shape).MatchString(a) {
		t.Errorf("dummy %q does not look like Hash(%q)", a, DefaultScheme)
	}
	if ok, err := Verify(a, ""); ok || err != nil {
		t.Errorf("Verify(dummy) = %v, %v; want false, nil", ok, err)
	}
}

func TestAuthenticate(t *testing.T) {
	db, _, logs := openTest(t, sampleFile, Options{CacheTTL: -1})
	cheapDummy(db)
	tests := []struct {
		user, password string
		want           string // canonical name; "" for a failure
	}{
		{"alice", "secret", "alice"},
		{"ALICE", "secret", "alice"}, // ASCII case-insensitive
		{"alice", "second-alice-is-ignored", ""},
		{"Bob", "secret", "Bob"},
		{"bob", "secret", "Bob"}, // stored with a capital
		{"BOB", "secret", "Bob"},
		{"grace", "secret", "grace"},
		{"alice", "Secret", ""},
		{"alice", "", ""},
		{"nobody", "secret", ""},
		{"carol", "hunter2-in-the-clear junk\tjunk", ""}, // malformed line
		{"erin", "", ""},
		{"erin", "x", ""},
		{"frank", "unknown-scheme-material", ""},
		{"../alice", "secret", ""},
		{"", "secret", ""},
		{"al ice", "secret", ""},
		{"\u212alice", "secret", ""}, // the Kelvin sign is not 'k', nor 'a'..'z'
	}
	for _, tt := range tests {
		before := db.verifications.Load()
		name, ok := authOK(t, db, tt.user, tt.password)
		if name != tt.want || ok != (tt.want != "") {
			t.Errorf("Authenticate(%q, %q) = %q, %v; want %q", tt.user, tt.password, name, ok, tt.want)
		}
		// Whatever the reason for a failure, one verification was done:
		// no shortcut tells an unknown user from a wrong password.
		if n := db.verifications.Load() - before; n != 1 {
			t.Errorf("Authenticate(%q, %q) did %d verifications; want 1", tt.user, tt.password, n)
		}
	}
	log := logs.String()
	if !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "user=frank") {
		t.Errorf("unknown scheme not logged at Error with the user:\n%s", log)
	}
	if strings.Contains(log, "unknown-scheme-material") || strings.Contains(log, "secret") {
		t.Errorf("log shows a hash or password:\n%s", log)
	}
}

// Two names differing only in case: each matches itself exactly, and a
// third spelling matches neither rather than guessing.
func TestAuthenticateAmbiguousCase(t *testing.T) {
	db, _, _ := openTest(t, "Zed:{PLAIN}upper\nZED:{PLAIN}allcaps\n", Options{CacheTTL: -1})
	cheapDummy(db)
	for _, tt := range []struct{ user, password, want string }{
		{"Zed", "upper", "Zed"},
		{"ZED", "allcaps", "ZED"},
		{"zed", "upper", ""},
		{"zEd", "allcaps", ""},
	} {
		if name, _ := authOK(t, db, tt.user, tt.password); name != tt.want {
			t.Errorf("Authenticate(%q) = %q; want %q", tt.user, name, tt.want)
		}
	}
	if db.Exists("zed") {
		t.Error("Exists(zed) with Zed and ZED stored")
	}
	db, _, _ = openTest(t, "Zed:{PLAIN}upper\nzed:{PLAIN}lower\n", Options{CacheTTL: -1})
	if name, _ := authOK(t, db, "ZED", "lower"); name != "zed" {
		t.Errorf("Authenticate(ZED) = %q; want the all-lower-case zed", name)
	}
}

func TestAuthenticateContext(t *testing.T) {
	db, _, _ := openTest(t, "alice:{PLAIN}secret\n", Options{})
	// With every verification slot taken, a cancelled context is the
	// only way out, and it is reported as system trouble.
	for range cap(db.sem) {
		db.sem <- struct{}{}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, ok, err := db.Authenticate(ctx, "alice", "secret"); ok || !errors.Is(err, context.Canceled) {
		t.Errorf("Authenticate with a cancelled context and no free slot = %v, %v; want false, context.Canceled", ok, err)
	}
	for range cap(db.sem) {
		<-db.sem
	}
	if _, ok := authOK(t, db, "alice", "secret"); !ok {
		t.Error("Authenticate after the slots were freed failed")
	}
}

func TestCache(t *testing.T) {
	db, _, _ := openTest(t, "alice:"+cheapArgon2id+"\n", Options{})
	cheapDummy(db)
	count := func() int64 { return db.verifications.Load() }

	for i := range 3 {
		if _, ok := authOK(t, db, "alice", "secret"); !ok {
			t.Fatalf("login %d failed", i)
		}
	}
	if n := count(); n != 1 {
		t.Errorf("3 good logins did %d verifications; want 1 (then cache hits)", n)
	}
	if _, ok := authOK(t, db, "ALICE", "secret"); !ok || count() != 1 {
		t.Errorf("login under another case: ok=%v, %d verifications; want a cache hit", ok, count())
	}
	// Wrong passwords are always verified, never cached.
	for range 2 {
		if _, ok := authOK(t, db, "alice", "wrong"); ok {
			t.Fatal("wrong password accepted")
		}
	}
	if n := count(); n != 3 {
		t.Errorf("after 2 wrong passwords, %d verifications; want 3", n)
	}

	// A new password: the old one is refused (verified again, not taken
	// from the cache), the new one verified once then cached.
	if err := db.SetPassword("alice", "new secret", "SSHA512"); err != nil {
		t.Fatal(err)
	}
	if _, ok := authOK(t, db, "alice", "secret"); ok {
		t.Error("old password accepted after SetPassword")
	}
	if n := count(); n != 4 {
		t.Errorf("old password after SetPassword: %d verifications; want 4", n)
	}
	authOK(t, db, "alice", "new secret")
	authOK(t, db, "alice", "new secret")
	if n := count(); n != 5 {
		t.Errorf("new password twice: %d verifications; want 5", n)
	}

	// Expiry.
	now := time.Now()
	db.cache.now = func() time.Time { return now.Add(DefaultCacheTTL) }
	if _, ok := authOK(t, db, "alice", "new secret"); !ok || count() != 6 {
		t.Errorf("after the TTL: ok=%v, %d verifications; want a fresh verification", ok, count())
	}

	// The cache holds no password.
	db.cache.mu.Lock()
	for k, e := range db.cache.m {
		if strings.Contains(k.user+string(k.mac[:])+e.stored, "secret") {
			t.Errorf("cache entry %+v holds the password", k)
		}
	}
	db.cache.mu.Unlock()
}

func TestCacheDisabled(t *testing.T) {
	db, _, _ := openTest(t, "alice:{SSHA}zJT7nOljHrjLoJw0K13Ubkq+1Xc+TLJI\n", Options{CacheTTL: -1})
	if db.cache != nil {
		t.Fatal("negative CacheTTL left a cache")
	}
	authOK(t, db, "alice", "secret")
	authOK(t, db, "alice", "secret")
	if n := db.verifications.Load(); n != 2 {
		t.Errorf("%d verifications without a cache; want 2", n)
	}
}

func TestCacheInvalidatedByReload(t *testing.T) {
	db, path, _ := openTest(t, "alice:{PLAIN}secret\n", Options{})
	authOK(t, db, "alice", "secret")
	if err := os.WriteFile(path, []byte("alice:{PLAIN}other\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := authOK(t, db, "alice", "secret"); !ok {
		t.Error("before Reload, the old contents should still be in force")
	}
	if err := db.Reload(); err != nil {
		t.Fatal(err)
	}
	if _, ok := authOK(t, db, "alice", "secret"); ok {
		t.Error("cached old password accepted after the file changed and was reloaded")
	}
}

func TestCacheBounded(t *testing.T) {
	c := newCredCache(time.Hour, 3)
	for i := range 10 {
		c.add(fmt.Sprint("user", i), "pw", "{PLAIN}pw")
	}
	if n := c.len(); n != 3 {
		t.Errorf("cache holds %d entries; want the bound 3", n)
	}
	if !c.hit("user9", "pw", "{PLAIN}pw") {
		t.Error("the newest entry was evicted")
	}
	if c.hit("user9", "pw", "{PLAIN}changed") {
		t.Error("hit against a changed stored hash")
	}
	if c.hit("user9", "pw", "{PLAIN}pw") {
		t.Error("a stale entry was kept")
	}
}

func TestOpenMissingFile(t *testing.T) {
	db, path, _ := openTest(t, "-", Options{})
	if users := db.Users(); len(users) != 0 {
		t.Errorf("Users() of a missing file = %q", users)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("Open created the file: %v", err)
	}
	if err := db.Add("alice", "secret", ""); err != nil {
		t.Fatal(err)
	}
	if content := readString(t, path); !strings.HasPrefix(content, fmt.Sprintf("alice:{ARGON2ID}$argon2id$v=19$m=%d,t=%d,p=1$", cost.argon2idMemory, cost.argon2idTime)) {
		t.Errorf("Add with the default scheme wrote %q", content)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v; want 0600", fi.Mode().Perm())
	}
	if _, ok := authOK(t, db, "alice", "secret"); !ok {
		t.Error("added user cannot log in")
	}
	if _, err := Open("", Options{}); err == nil {
		t.Error("Open of an empty path: no error")
	}
}

func TestEdit(t *testing.T) {
	const before = "# users\r\n" +
		"\r\n" +
		"alice:{PLAIN}a:1000:1000:Alice:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G\r\n" +
		"broken line\r\n" +
		"bob:{PLAIN}b:1001\r\n" +
		"# trailer"
	db, path, _ := openTest(t, before, Options{})
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}

	if err := db.Add("carol", "c-pass", "SSHA256"); err != nil {
		t.Fatal(err)
	}
	if err := db.SetPassword("ALICE", "new-a", "PLAIN"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete("bob"); err != nil {
		t.Fatal(err)
	}
	got := readString(t, path)
	lines := strings.Split(got, "\n")
	want := []string{
		"# users\r",
		"\r",
		"alice:{PLAIN}new-a:1000:1000:Alice:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G\r",
		"broken line\r",
		"# trailer",
	}
	if len(lines) != 7 || !slices.Equal(lines[:5], want) || lines[6] != "" ||
		!strings.HasPrefix(lines[5], "carol:{SSHA256}") || !strings.HasSuffix(lines[5], "::::::\r") {
		t.Errorf("file after edits:\n%q\nwant the lines\n%q\nthen carol's CRLF entry", lines, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode of a 0644 file after a rewrite %v; want 0640 (group kept, others dropped)", fi.Mode().Perm())
	}
	if got, want := db.Users(), []string{"alice", "carol"}; !slices.Equal(got, want) {
		t.Errorf("Users() = %q; want %q", got, want)
	}
	if _, ok := authOK(t, db, "carol", "c-pass"); !ok {
		t.Error("carol cannot log in")
	}
	if _, ok := authOK(t, db, "alice", "new-a"); !ok {
		t.Error("alice cannot log in with her new password")
	}
	if db.Exists("bob") {
		t.Error("bob exists after Delete")
	}
	// Another DB on the file sees the same.
	other, err := Open(path, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := other.Users(), []string{"alice", "carol"}; !slices.Equal(got, want) {
		t.Errorf("reopened Users() = %q; want %q", got, want)
	}
	// No temporary files left behind.
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != "passwd" && e.Name() != "passwd.lock" {
			t.Errorf("left in the directory: %s", e.Name())
		}
	}
}

func TestEditErrors(t *testing.T) {
	db, path, _ := openTest(t, "alice:{PLAIN}a\nBob:{PLAIN}b\n", Options{})
	before := readString(t, path)
	for _, tt := range []struct {
		name string
		err  error
		want error
	}{
		{"Add existing", db.Add("alice", "x", "SSHA"), ErrUserExists},
		{"Add existing, other case", db.Add("ALICE", "x", "SSHA"), ErrUserExists},
		{"Add existing, other case 2", db.Add("bob", "x", "SSHA"), ErrUserExists},
		{"Add bad name", db.Add("../x", "x", ""), ErrBadUsername},
		{"Add unknown scheme", db.Add("x", "x", "FOO"), ErrUnknownScheme},
		{"Add verify-only scheme", db.Add("x", "x", "MD5-CRYPT"), ErrUnknownScheme},
		{"SetPassword unknown", db.SetPassword("nobody", "x", "SSHA"), ErrNoSuchUser},
		{"SetPassword bad name", db.SetPassword("a/b", "x", ""), ErrBadUsername},
		{"Delete unknown", db.Delete("nobody"), ErrNoSuchUser},
		{"Delete bad name", db.Delete(".."), ErrBadUsername},
	} {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v; want %v", tt.name, tt.err, tt.want)
		}
	}
	// Passwords the file cannot hold.
	for _, pw := range []string{"", "a:b", "a\nb"} {
		if err := db.Add("x", pw, "PLAIN"); err == nil {
			t.Errorf("Add with PLAIN password %q: no error", pw)
		}
	}
	if err := db.Add("x", "a:b\nc", "PLAIN.B64"); err != nil {
		t.Errorf("Add with PLAIN.B64: %v", err)
	}
	if _, ok := authOK(t, db, "x", "a:b\nc"); !ok {
		t.Error("PLAIN.B64 user cannot log in")
	}
	if err := db.Delete("x"); err != nil {
		t.Fatal(err)
	}
	if got := readString(t, path); got != before {
		t.Errorf("file changed by failed edits:\n%q\nwant\n%q", got, before)
	}
}

// Two processes (here two DBs, each with its own lock file descriptor)
// adding users at the same time must not lose each other's entries.
func TestConcurrentAdds(t *testing.T) {
	_, path, _ := openTest(t, "-", Options{})
	const perWriter = 15
	var wg sync.WaitGroup
	for w := range 2 {
		db, err := Open(path, Options{Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for i := range perWriter {
				if err := db.Add(fmt.Sprintf("w%d-u%d", w, i), "pw", "PLAIN"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(db.Users()); got != 2*perWriter {
		t.Errorf("%d users after concurrent adds; want %d:\n%s", got, 2*perWriter, readString(t, path))
	}
}

func TestReload(t *testing.T) {
	db, path, _ := openTest(t, "alice:{PLAIN}a\n", Options{})
	if err := os.WriteFile(path, []byte("bob:{PLAIN}b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := db.Users(); !slices.Equal(got, []string{"bob"}) {
		t.Errorf("after Reload, Users() = %q; want [bob]", got)
	}
	// An unreadable file: Reload fails and the old contents stay.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := db.Reload(); err == nil {
		t.Error("Reload of a directory: no error")
	}
	if _, ok := authOK(t, db, "bob", "b"); !ok {
		t.Error("a failed Reload lost the old contents")
	}
	// A missing file, or one without users, would make every delivery
	// bounce: Reload fails, naming the file, and the users stay.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ content, want string }{
		{"-", path + " does not exist; keeping the users loaded before (1; restart to serve none)"},
		{"", path + " holds no user; keeping the users loaded before (1; restart to serve none)"},
		{"# all gone\n\nbroken line\n", path + " holds no user; keeping the users loaded before (1; restart to serve none)"},
	} {
		if tc.content != "-" {
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		err := db.Reload()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Reload of %q: %v; want an error saying %q", tc.content, err, tc.want)
		}
		if _, ok := authOK(t, db, "bob", "b"); !ok {
			t.Errorf("Reload of %q lost the users", tc.content)
		}
	}
	// A DB without users takes a missing or empty file.
	db2, path2, _ := openTest(t, "-", Options{})
	if err := db2.Reload(); err != nil {
		t.Errorf("Reload of a missing file into an empty DB: %v", err)
	}
	if err := os.WriteFile(path2, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db2.Reload(); err != nil {
		t.Errorf("Reload of an empty file into an empty DB: %v", err)
	}
	if got := db2.Users(); len(got) != 0 {
		t.Errorf("Users() = %q", got)
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	db, path, _ := openTest(t, "alice:{SSHA}zJT7nOljHrjLoJw0K13Ubkq+1Xc+TLJI\n", Options{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for range 20 {
				if _, ok, err := db.Authenticate(context.Background(), "alice", "secret"); !ok || err != nil {
					t.Errorf("Authenticate = %v, %v", ok, err)
					return
				}
				db.Exists("alice")
				db.Users()
			}
		})
		if i%4 == 0 {
			wg.Go(func() {
				if err := db.Add(fmt.Sprint("u", i), "x", "PLAIN"); err != nil {
					t.Error(err)
				}
				if err := db.Reload(); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	if !strings.Contains(readString(t, path), "u4:") {
		t.Error("concurrent Add lost")
	}
}

func TestLookup(t *testing.T) {
	db, _, _ := openTest(t, sampleFile, Options{})
	for user, want := range map[string]string{"alice": "alice", "ALICE": "alice", "bob": "Bob", "nobody": "", "../alice": ""} {
		got, ok := db.Lookup(user)
		if got != want || ok != (want != "") {
			t.Errorf("Lookup(%q) = %q, %v; want %q", user, got, ok, want)
		}
		if db.Exists(user) != ok {
			t.Errorf("Exists(%q) disagrees with Lookup", user)
		}
	}
}

// TestRewriteKeepsMode: a rewrite keeps the owner's and group's bits of
// the file it replaces, so a passwd-file root:postie 0640 that the server
// reads as postie stays readable by it after `postie user` ran as root,
// and never gives anything to other users.
func TestRewriteKeepsMode(t *testing.T) {
	for _, tc := range []struct{ before, after os.FileMode }{
		{0o600, 0o600}, {0o640, 0o640}, {0o660, 0o660}, {0o644, 0o640}, {0o666, 0o660}, {0o400, 0o400},
	} {
		db, path, _ := openTest(t, "alice:{PLAIN}a\n", Options{})
		if err := os.Chmod(path, tc.before); err != nil {
			t.Fatal(err)
		}
		if err := db.Add("bob", "b", "PLAIN"); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.after {
			t.Errorf("mode %v after a rewrite of a %v file; want %v", got, tc.before, tc.after)
		}
	}
}
