package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultMaxStaleness is PostgresOptions.MaxStaleness when it is zero.
const DefaultMaxStaleness = time.Second

// usersChannel is the LISTEN/NOTIFY channel of postie_users (see the
// trigger of store/pgstore's migration 0004).
const usersChannel = "postie_users"

// usersEditLock is the key of the advisory lock edits take, so that two
// adds of names equal but for case do not both pass the check
// ("postie02" in ASCII).
const usersEditLock = 0x706f737469653032

// PostgresOptions configure a DB whose users live in PostgreSQL.
type PostgresOptions struct {
	Options
	// Pool is the connection pool to the database (required), whose
	// schema holds postie_users (store/pgstore migrates it).
	Pool *pgxpool.Pool
	// ClosePool has Close close Pool too.
	ClosePool bool
	// Timeout bounds every round trip; default 10s.
	Timeout time.Duration
	// Listen keeps the users in memory current: a connection of its own
	// LISTENs for changes (reconnecting when it is lost) and checks every
	// MaxStaleness/4 that it still gets them. Without it (a `postie user`
	// command) every login reads the user's row.
	Listen bool
	// MaxStaleness bounds how old the users in memory may be when a
	// login trusts them; past it (the listener lost, the database not
	// answering) each login reads its row from the database instead.
	// Zero means DefaultMaxStaleness.
	MaxStaleness time.Duration
}

// pgUsers is the PostgreSQL side of a DB.
type pgUsers struct {
	pool      *pgxpool.Pool
	closePool bool
	timeout   time.Duration
	maxStale  time.Duration
	base      time.Time // freshAt counts from here (monotonic)
	// freshAt is when (nanoseconds after base) the last check started
	// that proved the users in memory current, i.e. every change
	// committed before it applied; 0 = never.
	freshAt atomic.Int64

	mu   sync.Mutex         // one (re)load or apply at a time
	rows map[string]userRow // the table as last read

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// userRow is one row of postie_users.
type userRow struct {
	name, password                      string
	uid, gid, gecos, home, shell, extra string
}

func (r userRow) line() line {
	rest := ":" + strings.Join([]string{r.uid, r.gid, r.gecos, r.home, r.shell, r.extra}, ":")
	if rest == "::::::" {
		rest = ""
	}
	return line{kind: lineEntry, user: r.name, password: r.password, rest: rest}
}

// rowOf splits an entry of a passwd-file into the columns.
func rowOf(l line) userRow {
	r := userRow{name: l.user, password: l.password}
	if l.rest != "" {
		f := strings.SplitN(l.rest[1:], ":", 6)
		f = append(f, make([]string, 6-len(f))...)
		r.uid, r.gid, r.gecos, r.home, r.shell, r.extra = f[0], f[1], f[2], f[3], f[4], f[5]
	}
	return r
}

const userColumns = `name, password, uid, gid, gecos, home, shell, extra`

func scanRows(rows pgx.Rows) ([]userRow, error) {
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (userRow, error) {
		var r userRow
		err := row.Scan(&r.name, &r.password, &r.uid, &r.gid, &r.gecos, &r.home, &r.shell, &r.extra)
		return r, err
	})
}

// OpenPostgres opens the user database in table postie_users, reading all
// of it. With opts.Listen it stays current by LISTEN/NOTIFY until Close.
func OpenPostgres(ctx context.Context, opts PostgresOptions) (*DB, error) {
	if opts.Pool == nil {
		return nil, errors.New("auth: OpenPostgres: no pool")
	}
	db := newDB("postgres:postie_users", opts.Options)
	p := &pgUsers{pool: opts.Pool, closePool: opts.ClosePool, timeout: opts.Timeout, maxStale: opts.MaxStaleness, base: time.Now(),
		stop: make(chan struct{}), done: make(chan struct{})}
	if p.timeout <= 0 {
		p.timeout = 10 * time.Second
	}
	if p.maxStale <= 0 {
		p.maxStale = DefaultMaxStaleness
	}
	db.pg = p
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	if err := db.loadAll(ctx, p.pool, true); err != nil {
		return nil, err
	}
	if opts.Listen {
		go db.listen()
	} else {
		close(p.done)
	}
	return db, nil
}

// Close stops the listener of a PostgreSQL DB (and closes its pool with
// PostgresOptions.ClosePool); it does nothing for a passwd-file. Logins
// after Close read their rows from the database.
func (db *DB) Close() error {
	if db.pg != nil {
		db.pg.once.Do(func() { close(db.pg.stop) })
		<-db.pg.done
		// Nothing keeps the users in memory current any more.
		db.pg.freshAt.Store(0)
		if db.pg.closePool {
			db.pg.pool.Close()
		}
	}
	return nil
}

// Ping makes a round trip to the PostgreSQL user database, bounded by
// PostgresOptions.Timeout (for readiness checks); nil for a passwd-file.
func (db *DB) Ping(ctx context.Context) error {
	if db.pg == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, db.pg.timeout)
	defer cancel()
	if err := db.pg.pool.Ping(ctx); err != nil {
		return dbErr("ping", err)
	}
	return nil
}

func (p *pgUsers) now() int64 { return int64(time.Since(p.base)) + 1 }

// fresh reports whether the users in memory may be trusted for a login.
func (p *pgUsers) fresh() bool {
	f := p.freshAt.Load()
	return f > 0 && p.now()-f <= int64(p.maxStale)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// loadAll reads the whole table into memory.
func (db *DB) loadAll(ctx context.Context, q querier, warn bool) error {
	rows, err := q.Query(ctx, `SELECT `+userColumns+` FROM postie_users`)
	if err != nil {
		return dbErr("reading the users", err)
	}
	list, err := scanRows(rows)
	if err != nil {
		return dbErr("reading the users", err)
	}
	m := make(map[string]userRow, len(list))
	for _, r := range list {
		m[r.name] = r
	}
	p := db.pg
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows = m
	db.publish(warn)
	if db.cache != nil {
		db.cache.clear()
	}
	return nil
}

// refresh re-reads the rows of names.
func (db *DB) refresh(ctx context.Context, q querier, names []string) error {
	rows, err := q.Query(ctx, `SELECT `+userColumns+` FROM postie_users WHERE name = ANY($1)`, names)
	if err != nil {
		return dbErr("reading changed users", err)
	}
	list, err := scanRows(rows)
	if err != nil {
		return dbErr("reading changed users", err)
	}
	p := db.pg
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]userRow, len(p.rows)+len(list))
	for k, v := range p.rows {
		m[k] = v
	}
	for _, n := range names {
		delete(m, n)
		if db.cache != nil {
			db.cache.forget(n)
		}
	}
	for _, r := range list {
		m[r.name] = r
	}
	p.rows = m
	db.publish(false)
	return nil
}

// publish makes p.rows the DB's state; p.mu is held.
func (db *DB) publish(warn bool) {
	names := make([]string, 0, len(db.pg.rows))
	for n := range db.pg.rows {
		names = append(names, n)
	}
	slices.Sort(names)
	f := &passwdFile{lines: make([]line, 0, len(names))}
	for _, n := range names {
		f.lines = append(f.lines, db.pg.rows[n].line())
	}
	st := db.index(f, warn)
	db.mu.Lock()
	db.state = st
	db.mu.Unlock()
}

// listen keeps the users current until Close: LISTEN on a connection of
// its own, a full read after each (re)connection, the changed rows on
// each notification, and a round trip every MaxStaleness/4 that proves
// the connection alive. A lost connection is retried with backoff; in
// the meantime logins read their rows from the database.
func (db *DB) listen() {
	p := db.pg
	defer close(p.done)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stop:
			cancel()
		case <-p.done:
		}
	}()
	backoff := 100 * time.Millisecond
	lost := false
	for {
		err := db.listenOnce(ctx, func() {
			if lost {
				db.log.Info("auth: listening for user changes again")
				lost = false
			}
			backoff = 100 * time.Millisecond
		})
		if ctx.Err() != nil {
			return
		}
		p.freshAt.Store(0)
		if !lost {
			db.log.Warn("auth: lost the connection that listens for user changes; logins read the database until it is back", "err", err)
			lost = true
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// listenOnce runs one listening connection until it fails or ctx ends;
// up is called once it listens and the users are read.
func (db *DB) listenOnce(ctx context.Context, up func()) error {
	p := db.pg
	cctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	pc, err := p.pool.Acquire(cctx)
	if err != nil {
		return err
	}
	// The connection leaves the pool for good: it listens.
	conn := pc.Hijack()
	defer func() {
		// A hung server must not hold the reconnection up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		conn.Close(cctx)
	}()
	if _, err := conn.Exec(cctx, "LISTEN "+usersChannel); err != nil {
		return err
	}
	// Changes committed from here on are notified: read the rest.
	t0 := p.now()
	if err := db.loadAll(cctx, conn, false); err != nil {
		return err
	}
	p.freshAt.Store(t0)
	up()
	beat := p.maxStale / 4
	for {
		wctx, wcancel := context.WithTimeout(ctx, beat)
		n, err := conn.WaitForNotification(wctx)
		wcancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			if err := db.applyNotifications(ctx, conn, n); err != nil {
				return err
			}
			continue
		case !errors.Is(err, context.DeadlineExceeded) && !pgTimeout(err):
			return err
		}
		// Quiet for a beat: a round trip shows that the connection
		// lives, and PostgreSQL delivers every notification committed
		// before it ahead of its reply.
		t0 := p.now()
		pctx, pcancel := context.WithTimeout(ctx, p.timeout)
		_, err = conn.Exec(pctx, "SELECT 1")
		if err == nil {
			err = db.applyNotifications(pctx, conn, nil)
		}
		pcancel()
		if err != nil {
			return err
		}
		p.freshAt.Store(t0)
	}
}

func pgTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// applyNotifications applies first (if not nil) and every notification
// already received on conn.
func (db *DB) applyNotifications(ctx context.Context, conn *pgx.Conn, first *pgconn.Notification) error {
	var names []string
	all := false
	add := func(payload string) {
		if payload == "" {
			all = true
		} else if !slices.Contains(names, payload) {
			names = append(names, payload)
		}
	}
	if first != nil {
		add(first.Payload)
	}
	done, cancel := context.WithCancel(ctx)
	cancel() // buffered notifications only: no wait
	for {
		n, err := conn.WaitForNotification(done)
		if err != nil || n == nil {
			break
		}
		add(n.Payload)
	}
	rctx, rcancel := context.WithTimeout(ctx, db.pg.timeout)
	defer rcancel()
	switch {
	case all:
		return db.loadAll(rctx, conn, false)
	case len(names) > 0:
		return db.refresh(rctx, conn, names)
	}
	return nil
}

// dbErr wraps a database error with what was being done.
func dbErr(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("auth: %s: the database did not answer in time: %w", what, err)
	}
	return fmt.Errorf("auth: %s: %w", what, err)
}

// queryEntry reads user's row from the database (when the users in
// memory are not fresh enough to trust), matched as Lookup matches.
func (db *DB) queryEntry(ctx context.Context, user string) (userRow, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, db.pg.timeout)
	defer cancel()
	rows, err := db.pg.pool.Query(ctx, `SELECT `+userColumns+` FROM postie_users WHERE lower(name) = lower($1)`, user)
	if err != nil {
		return userRow{}, false, dbErr("reading a user", err)
	}
	list, err := scanRows(rows)
	if err != nil {
		return userRow{}, false, dbErr("reading a user", err)
	}
	r, ok := matchRow(list, user)
	return r, ok, nil
}

// matchRow picks user's row among those lower() matched: the exact name,
// else the only one equal ignoring ASCII case.
func matchRow(list []userRow, user string) (userRow, bool) {
	var fold []userRow
	for _, r := range list {
		if r.name == user {
			return r, true
		}
		if asciiLower(r.name) == asciiLower(user) {
			fold = append(fold, r)
		}
	}
	if len(fold) == 1 {
		return fold[0], true
	}
	return userRow{}, false
}

// pgEdit runs change in a transaction under the edit lock, then reads
// the changed rows into memory (the listener would, a moment later).
func (db *DB) pgEdit(user string, change func(ctx context.Context, tx pgx.Tx) (string, error)) error {
	p := db.pg
	ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
	defer cancel()
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return dbErr("edit", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(usersEditLock)); err != nil {
		return dbErr("edit", err)
	}
	name, err := change(ctx, tx)
	if err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return dbErr("edit: commit", err)
	}
	return db.refresh(ctx, p.pool, []string{name})
}

// findRow returns user's row in the transaction, matched as by Lookup.
func findRow(ctx context.Context, tx pgx.Tx, user string) (userRow, error) {
	rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM postie_users WHERE lower(name) = lower($1)`, user)
	if err != nil {
		return userRow{}, dbErr("edit", err)
	}
	list, err := scanRows(rows)
	if err != nil {
		return userRow{}, dbErr("edit", err)
	}
	r, ok := matchRow(list, user)
	if !ok {
		return userRow{}, fmt.Errorf("%w: %s", ErrNoSuchUser, user)
	}
	return r, nil
}

func (db *DB) pgAdd(user, stored string) error {
	return db.pgEdit(user, func(ctx context.Context, tx pgx.Tx) (string, error) {
		rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM postie_users WHERE lower(name) = lower($1)`, user)
		if err != nil {
			return "", dbErr("add", err)
		}
		list, err := scanRows(rows)
		if err != nil {
			return "", dbErr("add", err)
		}
		for _, r := range list {
			if asciiLower(r.name) == asciiLower(user) {
				return "", fmt.Errorf("%w: %s", ErrUserExists, user)
			}
		}
		if _, err := tx.Exec(ctx, `INSERT INTO postie_users (name, password) VALUES ($1, $2)`, user, stored); err != nil {
			return "", dbErr("add", err)
		}
		return user, nil
	})
}

func (db *DB) pgSetPassword(user, stored string) error {
	return db.pgEdit(user, func(ctx context.Context, tx pgx.Tx) (string, error) {
		r, err := findRow(ctx, tx, user)
		if err != nil {
			return "", err
		}
		if _, err := tx.Exec(ctx, `UPDATE postie_users SET password = $2, changed = clock_timestamp() WHERE name = $1`, r.name, stored); err != nil {
			return "", dbErr("passwd", err)
		}
		return r.name, nil
	})
}

func (db *DB) pgDelete(user string) error {
	return db.pgEdit(user, func(ctx context.Context, tx pgx.Tx) (string, error) {
		r, err := findRow(ctx, tx, user)
		if err != nil {
			return "", err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM postie_users WHERE name = $1`, r.name); err != nil {
			return "", dbErr("del", err)
		}
		return r.name, nil
	})
}

// ImportStats counts what an Import did.
type ImportStats struct {
	Added, Updated, Unchanged int
	// Skipped are entries left out: malformed lines, a second entry for
	// a name, a name taken by another that differs only in case.
	Skipped int
}

// Import copies the users of the passwd-file at path into the PostgreSQL
// user database, in one transaction: new names are added, existing ones
// get the file's password and fields, and the others are kept. Running it
// again changes nothing. Lines the file's own reader would skip are
// skipped (and logged without their contents).
func (db *DB) Import(path string) (ImportStats, error) {
	var stats ImportStats
	if db.pg == nil {
		return stats, errors.New("auth: Import needs the PostgreSQL user database")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return stats, fmt.Errorf("auth: %w", err)
	}
	f := parseFile(data)
	p := db.pg
	// An import is many rows: a minute per thousand lines at least.
	ctx, cancel := context.WithTimeout(context.Background(), max(p.timeout, time.Duration(len(f.lines)/1000+1)*time.Minute))
	defer cancel()
	tx, err := p.pool.Begin(ctx)
	if err != nil {
		return stats, dbErr("import", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(usersEditLock)); err != nil {
		return stats, dbErr("import", err)
	}
	rows, err := tx.Query(ctx, `SELECT `+userColumns+` FROM postie_users`)
	if err != nil {
		return stats, dbErr("import", err)
	}
	list, err := scanRows(rows)
	if err != nil {
		return stats, dbErr("import", err)
	}
	have := make(map[string]userRow, len(list))
	folded := make(map[string]string, len(list)) // ASCII lower → a stored name
	for _, r := range list {
		have[r.name] = r
		folded[asciiLower(r.name)] = r.name
	}
	seen := map[string]bool{}
	var changed []string
	for i, l := range f.lines {
		switch l.kind {
		case lineMalformed:
			db.log.Warn("auth: import: skipping malformed line", "file", path, "line", i+1, "problem", l.problem)
			stats.Skipped++
			continue
		case lineEntry:
		default:
			continue
		}
		if seen[l.user] {
			db.log.Warn("auth: import: skipping duplicate entry", "file", path, "line", i+1, "user", l.user)
			stats.Skipped++
			continue
		}
		seen[l.user] = true
		r := rowOf(l)
		old, exists := have[r.name]
		if !exists {
			if other, taken := folded[asciiLower(r.name)]; taken {
				db.log.Warn("auth: import: skipping a name another user has but for case", "file", path, "line", i+1, "user", r.name, "existing", other)
				stats.Skipped++
				continue
			}
			folded[asciiLower(r.name)] = r.name
		}
		switch {
		case exists && old == r:
			stats.Unchanged++
			continue
		case exists:
			stats.Updated++
		default:
			stats.Added++
		}
		if _, err := tx.Exec(ctx, `INSERT INTO postie_users (`+userColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
			ON CONFLICT (name) DO UPDATE SET password = EXCLUDED.password, uid = EXCLUDED.uid, gid = EXCLUDED.gid,
				gecos = EXCLUDED.gecos, home = EXCLUDED.home, shell = EXCLUDED.shell, extra = EXCLUDED.extra, changed = clock_timestamp()`,
			r.name, r.password, r.uid, r.gid, r.gecos, r.home, r.shell, r.extra); err != nil {
			return ImportStats{}, dbErr("import "+r.name, err)
		}
		changed = append(changed, r.name)
	}
	if err := tx.Commit(ctx); err != nil {
		return ImportStats{}, dbErr("import: commit", err)
	}
	if len(changed) > 0 {
		if err := db.refresh(ctx, p.pool, changed); err != nil {
			return stats, err
		}
	}
	return stats, nil
}
