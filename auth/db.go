package auth

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a DB.
type Options struct {
	// Logger receives warnings about the file and errors about stored
	// hashes; never a password or a hash. Default slog.Default().
	Logger *slog.Logger
	// CacheTTL is the lifetime of a cached successful verification.
	// Zero means DefaultCacheTTL (10m); negative disables the cache.
	CacheTTL time.Duration
	// SCRAMSecret keys the salts of the SCRAM credentials derived from
	// PLAIN entries (see SCRAMCredentials). Give it the same stable
	// secret as sasl.Config.SCRAMSecret, so that real and fake salts are
	// alike and survive restarts; empty means a random one per process.
	SCRAMSecret []byte
}

// DB is a passwd-file loaded in memory, or the users of a PostgreSQL
// database (OpenPostgres). It is safe for concurrent use.
type DB struct {
	path  string
	pg    *pgUsers // nil for a passwd-file
	log   *slog.Logger
	cache *credCache // nil when disabled
	dummy string     // stands in for the hash of an unknown user

	apopDummy string        // stands in for the secret of an unknown APOP user
	scram     *scramDerived // SCRAM credentials derived from PLAIN entries

	// sem bounds concurrent hash verifications: an Argon2 check holds
	// 64 MiB and one core, so more at once than there are cores only
	// costs memory.
	sem chan struct{}

	// verifications counts calls of Verify made by Authenticate (the
	// dummy ones included); tests use it to see the cache work.
	verifications atomic.Int64

	editMu sync.Mutex // one edit at a time in this process (flock across processes)

	mu    sync.RWMutex
	state *state
}

// state is what a load of the file yields; it is replaced, never changed.
type state struct {
	users map[string]string // name → stored password ("" = cannot log in)
	homes map[string]string // name → home field, where not empty
	fold  map[string]string // ASCII lower case → the stored name, when unambiguous
	// hashes are the stored passwords in a known scheme, in file order:
	// a failed login for a name without one is checked against one of
	// them, so that it costs what a real check costs here.
	hashes []string
}

// stand returns the stored password a login for user, who has none, is
// checked against: one of the stored ones, chosen by the name (the same
// name always costs the same), or dummy when there are none. Always the
// Argon2 dummy would tell unknown names from users stored in a cheaper
// scheme (SHA512-CRYPT: milliseconds against a tenth of a second).
func (st *state) stand(user, dummy string) string {
	if st == nil || len(st.hashes) == 0 {
		return dummy
	}
	h := fnv.New32a()
	h.Write([]byte(asciiLower(user)))
	return st.hashes[h.Sum32()%uint32(len(st.hashes))]
}

// Open loads the passwd-file at path. A missing file is an empty DB (it is
// created by the first Add).
func Open(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, errors.New("auth: Open: empty path")
	}
	db := newDB(path, opts)
	if err := db.Reload(); err != nil {
		return nil, err
	}
	return db, nil
}

// newDB returns an empty DB named path (a file, or the table for
// OpenPostgres) with what opts asks for: logger, SCRAM secret, cache.
func newDB(path string, opts Options) *DB {
	db := &DB{
		path:  path,
		log:   opts.Logger,
		dummy: dummyHash(),

		apopDummy: hex.EncodeToString(randomBytes(16)),
		scram:     newSCRAMDerived(opts.SCRAMSecret),
		sem:       make(chan struct{}, max(2, runtime.GOMAXPROCS(0))),
	}
	if db.log == nil {
		db.log = slog.Default()
	}
	switch {
	case opts.CacheTTL == 0:
		db.cache = newCredCache(DefaultCacheTTL, maxCacheEntries)
	case opts.CacheTTL > 0:
		db.cache = newCredCache(opts.CacheTTL, maxCacheEntries)
	}
	return db
}

// dummyHash returns a DefaultScheme hash with the parameters Hash uses and
// random salt and key bytes: checking a password against it costs what a
// real check costs, but nothing matches it, and making it costs nothing.
func dummyHash() string {
	enc := base64.RawStdEncoding
	return fmt.Sprintf("{ARGON2ID}$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", cost.argon2idMemory, cost.argon2idTime, argon2Threads,
		enc.EncodeToString(randomBytes(argon2SaltLen)), enc.EncodeToString(randomBytes(argon2KeyLen)))
}

// Reload re-reads the file (on SIGHUP). On error the DB keeps its old
// contents. A file that is missing or holds no user is an error too when
// the DB has users (they are kept): a passwd-file lost or truncated by
// mistake must not make every delivery a permanent "no such user" bounce.
// (A DB without users, as Open makes from a missing file, takes any file.)
func (db *DB) Reload() error {
	if db.pg != nil {
		ctx, cancel := context.WithTimeout(context.Background(), db.pg.timeout)
		defer cancel()
		return db.loadAll(ctx, db.pg.pool, true)
	}
	data, err := os.ReadFile(db.path)
	missing := errors.Is(err, fs.ErrNotExist)
	if err != nil && !missing {
		return fmt.Errorf("auth: %w", err)
	}
	st := db.index(parseFile(data), true)
	if len(st.users) == 0 {
		if cur := db.current(); cur != nil && len(cur.users) > 0 {
			n := len(cur.users)
			what := "holds no user"
			if missing {
				what = "does not exist"
			}
			return fmt.Errorf("auth: %s %s; keeping the users loaded before (%d; restart to serve none)", db.path, what, n)
		}
	}
	db.mu.Lock()
	db.state = st
	db.mu.Unlock()
	return nil
}

func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	return data, nil
}

// apply makes f the DB's contents, logging what of it is unusable.
func (db *DB) apply(f *passwdFile) {
	st := db.index(f, true)
	db.mu.Lock()
	db.state = st
	db.mu.Unlock()
}

// index builds the lookup maps of f. The first of two entries for the same
// name wins. With warn, skipped lines and unknown schemes are logged (line
// numbers and reasons, never a password).
func (db *DB) index(f *passwdFile, warn bool) *state {
	st := &state{users: make(map[string]string), homes: make(map[string]string), fold: make(map[string]string)}
	folds := make(map[string]int)
	for i, l := range f.lines {
		switch l.kind {
		case lineMalformed:
			if warn {
				db.log.Warn("auth: skipping malformed passwd-file line", "file", db.path, "line", i+1, "problem", l.problem)
			}
			continue
		case lineEntry:
		default:
			continue
		}
		if _, dup := st.users[l.user]; dup {
			if warn {
				db.log.Warn("auth: skipping duplicate passwd-file entry", "file", db.path, "line", i+1, "user", l.user)
			}
			continue
		}
		if warn && l.password != "" {
			if _, ok := storedScheme(l.password); !ok {
				db.log.Warn("auth: unknown password scheme", "file", db.path, "line", i+1, "user", l.user)
			}
		}
		st.users[l.user] = l.password
		if h := l.home(); h != "" {
			st.homes[l.user] = h
		}
		if _, ok := storedScheme(l.password); ok && l.password != "" {
			st.hashes = append(st.hashes, l.password)
		}
		folds[asciiLower(l.user)]++
	}
	for name := range st.users {
		lower := asciiLower(name)
		if _, exact := st.users[lower]; exact {
			st.fold[lower] = lower
		} else if folds[lower] == 1 {
			st.fold[lower] = name
		}
	}
	return st
}

// lookup finds the stored name for user: the exact name, else the one
// that equals it ignoring ASCII case (if only one does).
func (st *state) lookup(user string) (string, bool) {
	if _, ok := st.users[user]; ok {
		return user, true
	}
	name, ok := st.fold[asciiLower(user)]
	return name, ok
}

func (db *DB) current() *state {
	db.mu.RLock()
	defer db.mu.RUnlock()
	return db.state
}

// Lookup returns the name as stored in the file for user (exact, else
// ASCII case-insensitive), and whether there is one: the maildrop to
// deliver into. For a PostgreSQL DB it is bounded as logins are (see
// PostgresOptions.MaxStaleness); a database that does not answer is
// logged and counts as no such user here: delivery uses LookupContext,
// which tells the two apart.
func (db *DB) Lookup(user string) (canonical string, ok bool) {
	name, _, ok, err := db.lookup(context.Background(), user)
	if err != nil {
		db.log.Warn("auth: looking up a user failed", "user", user, "err", err)
		return "", false
	}
	return name, ok
}

// LookupContext is Lookup that returns the failure of the PostgreSQL user
// database to answer as err (a temporary failure, not "no such user");
// err is always nil for a passwd-file. It implements intake.Users.
func (db *DB) LookupContext(ctx context.Context, user string) (canonical string, ok bool, err error) {
	name, _, ok, err := db.lookup(ctx, user)
	return name, ok, err
}

// lookup returns the stored name and home field of user: from memory,
// or, for a PostgreSQL DB whose users in memory may miss a change
// (PostgresOptions.MaxStaleness), from the database. err is a database
// error.
func (db *DB) lookup(ctx context.Context, user string) (name, home string, ok bool, err error) {
	if ValidUsername(user) != nil {
		return "", "", false, nil
	}
	if db.pg != nil && !db.pg.fresh() {
		r, ok, err := db.queryEntry(ctx, user)
		if err != nil || !ok {
			return "", "", false, err
		}
		return r.name, r.line().home(), true, nil
	}
	st := db.current()
	if name, ok = st.lookup(user); !ok {
		return "", "", false, nil
	}
	return name, st.homes[name], true, nil
}

// Home returns the home field of user's entry (matched as by Lookup), the
// 6th field of a Dovecot passwd-file line
// (user:password:uid:gid:gecos:home:shell:extra), as written; ok is false
// when there is no such user or the field is empty. It is bounded as
// Lookup is (a database that does not answer is logged, and ok is false);
// delivery uses HomeContext.
func (db *DB) Home(user string) (home string, ok bool) {
	home, ok, err := db.HomeContext(context.Background(), user)
	if err != nil {
		db.log.Warn("auth: looking up a user's home failed", "user", user, "err", err)
		return "", false
	}
	return home, ok
}

// HomeContext is Home that returns the failure of the PostgreSQL user
// database to answer as err; always nil for a passwd-file.
func (db *DB) HomeContext(ctx context.Context, user string) (home string, ok bool, err error) {
	_, home, ok, err = db.lookup(ctx, user)
	if err != nil || !ok {
		return "", false, err
	}
	return home, home != "", nil
}

// Exists reports whether user (matched as by Lookup, and bounded as it
// is) is in the file.
func (db *DB) Exists(user string) bool {
	_, ok := db.Lookup(user)
	return ok
}

// Users returns the names in the file, sorted.
func (db *DB) Users() []string {
	st := db.current()
	names := make([]string, 0, len(st.users))
	for name := range st.users {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Authenticate checks user and password; it implements the POP3 server's
// Authenticator. It returns the name as stored in the file and ok == true
// on success. An unknown or invalid name, an entry without a password, an
// empty password and a wrong password all give ok == false after the same
// work (a check against a dummy DefaultScheme hash stands in for a missing
// one). A stored hash in an unknown scheme or undecodable is logged at
// Error (without the hash) and is ok == false too. err is non-nil only if
// ctx ends while waiting for a verification slot, or when the PostgreSQL
// user database, which must be asked (see PostgresOptions.MaxStaleness),
// does not answer.
func (db *DB) Authenticate(ctx context.Context, user, password string) (string, bool, error) {
	st := db.current()
	name, stored, found, err := db.entryCtx(ctx, st, user)
	if err != nil {
		return "", false, err
	}
	genuine := found && stored != "" && password != ""
	if genuine && db.cache != nil && db.cache.hit(name, password, stored) {
		return name, true, nil
	}
	if stored == "" {
		stored = st.stand(user, db.dummy)
	}

	ok, err := db.verify(ctx, stored, password)
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return "", false, err
	}
	if err != nil && !genuine {
		return "", false, nil // a stand-in that cannot be checked is no news
	}
	if err != nil {
		scheme, _ := storedScheme(stored)
		db.log.Error("auth: cannot verify stored password", "file", db.path, "user", name,
			"scheme", scheme, "err", err)
		return "", false, nil
	}
	if !genuine || !ok {
		return "", false, nil
	}
	if db.cache != nil {
		db.cache.add(name, password, stored)
	}
	return name, true, nil
}

// verify runs Verify in one of the db.sem slots.
func (db *DB) verify(ctx context.Context, stored, password string) (bool, error) {
	select {
	case db.sem <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	defer func() { <-db.sem }()
	db.verifications.Add(1)
	return Verify(stored, password)
}

// Add adds user with password hashed in scheme ("" = DefaultScheme). It
// fails with ErrUserExists if the name (ignoring ASCII case) is taken.
func (db *DB) Add(user, password, scheme string) error {
	stored, err := db.hashForFile(user, password, scheme)
	if err != nil {
		return err
	}
	if db.pg != nil {
		return db.pgAdd(user, stored)
	}
	return db.edit(func(f *passwdFile, st *state) error {
		for name := range st.users {
			if asciiLower(name) == asciiLower(user) {
				return fmt.Errorf("%w: %s", ErrUserExists, user)
			}
		}
		// uid:gid:gecos:home:shell:extra left empty, as Dovecot allows.
		f.lines = append(f.lines, f.newEntry(user, stored, "::::::"))
		return nil
	})
}

// SetPassword replaces the password of user (matched as by Lookup),
// keeping the rest of its line. It fails with ErrNoSuchUser.
func (db *DB) SetPassword(user, password, scheme string) error {
	stored, err := db.hashForFile(user, password, scheme)
	if err != nil {
		return err
	}
	if db.pg != nil {
		return db.pgSetPassword(user, stored)
	}
	return db.edit(func(f *passwdFile, st *state) error {
		i, err := findEntry(f, st, user)
		if err != nil {
			return err
		}
		old := f.lines[i]
		l := line{kind: lineEntry, user: old.user, password: stored, rest: old.rest}
		l.raw = l.format()
		if strings.HasSuffix(old.raw, "\r") { // keep the line's own line end
			l.raw += "\r"
		}
		f.lines[i] = l
		return nil
	})
}

// Delete removes user (matched as by Lookup). It fails with ErrNoSuchUser.
func (db *DB) Delete(user string) error {
	if err := ValidUsername(user); err != nil {
		return err
	}
	if db.pg != nil {
		return db.pgDelete(user)
	}
	return db.edit(func(f *passwdFile, st *state) error {
		i, err := findEntry(f, st, user)
		if err != nil {
			return err
		}
		f.lines = slices.Delete(f.lines, i, i+1)
		return nil
	})
}

// hashForFile validates the name and hashes the password into something a
// passwd-file field can hold.
func (db *DB) hashForFile(user, password, scheme string) (string, error) {
	if err := ValidUsername(user); err != nil {
		return "", err
	}
	if password == "" {
		return "", errors.New("auth: empty password")
	}
	if scheme == "" {
		scheme = DefaultScheme
	}
	stored, err := Hash(scheme, password)
	if err != nil {
		return "", err
	}
	if err := checkPasswordField(stored); err != nil {
		return "", err
	}
	return stored, nil
}

// findEntry returns the index in f of the line of the entry user names.
func findEntry(f *passwdFile, st *state, user string) (int, error) {
	name, ok := st.lookup(user)
	if ok {
		for i, l := range f.lines {
			if l.kind == lineEntry && l.user == name {
				return i, nil // the first one: the one in force
			}
		}
	}
	return 0, fmt.Errorf("%w: %s", ErrNoSuchUser, user)
}

// edit applies change to the file as it is on disk now, under the lock
// file, replaces the file atomically and makes the result the DB's
// contents.
func (db *DB) edit(change func(f *passwdFile, st *state) error) error {
	db.editMu.Lock()
	defer db.editMu.Unlock()
	unlock, err := lockFile(db.path + ".lock")
	if err != nil {
		return fmt.Errorf("auth: lock %s.lock: %w", db.path, err)
	}
	defer unlock()

	data, err := readFile(db.path)
	if err != nil {
		return err
	}
	f := parseFile(data)
	if err := change(f, db.index(f, false)); err != nil {
		return err
	}
	if err := writeAtomic(db.path, f.bytes()); err != nil {
		// The rename may have happened before the failure (an fsync of
		// the directory): hold whatever is on disk now.
		db.Reload()
		return err
	}
	db.apply(f)
	return nil
}
