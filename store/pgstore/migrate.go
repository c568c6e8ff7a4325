package pgstore

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// migrationLock is the key of the advisory lock migrations run under
// ("postie01" in ASCII).
const migrationLock = 0x706f737469653031

// migration is one file of migrations/, named NNNN_what.sql.
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := strings.TrimPrefix(n, "migrations/")
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("pgstore: migration file %s: name must be NNNN_what.sql", n)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return a.version - b.version })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("pgstore: migrations must be numbered 1, 2, ... without gaps; found %s", m.name)
		}
	}
	return ms, nil
}

// SchemaVersion is the schema version this package applies and expects.
func SchemaVersion() int {
	ms, _ := migrations()
	return len(ms)
}

// migrate applies the migrations the database lacks, all in one
// transaction under an advisory lock: a node that starts while another
// migrates waits for it, then finds nothing left to do.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	// Each round trip is bounded by Timeout, waiting for another node's
	// migration (the advisory lock) included: a node must not hang at
	// start while the database does (an MTA's delivery slots wait for
	// `postie deliver`), and a hung database fails the first of them.
	// A database that answers gets Timeout per statement, not for the
	// whole step: the first creates every table.
	var cancel context.CancelFunc = func() {}
	defer func() { cancel() }()
	op := func() context.Context {
		cancel()
		var c context.Context
		c, cancel = s.op(ctx)
		return c
	}
	// Usually the schema is current: one read, no lock, no DDL (the role
	// may lack the right to create tables once the schema exists).
	current, err := s.schemaVersion(op(), s.pool)
	if err != nil {
		return dbError("migrate: reading the version", err)
	}
	if current > len(ms) {
		return newerSchema(current, len(ms))
	}
	if current == len(ms) {
		return nil
	}
	tx, err := s.pool.Begin(op())
	if err != nil {
		return dbError("migrate", err)
	}
	defer func() {
		rctx, rcancel := s.op(context.WithoutCancel(ctx))
		defer rcancel()
		tx.Rollback(rctx)
	}()
	if _, err := tx.Exec(op(), `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return dbError("migrate: advisory lock (another node migrating?)", err)
	}
	// Another node may have migrated while we waited for the lock.
	if current, err = s.schemaVersion(op(), tx); err != nil {
		return dbError("migrate: reading the version", err)
	}
	if current > len(ms) {
		return newerSchema(current, len(ms))
	}
	if current == 0 {
		if _, err := tx.Exec(op(), `CREATE TABLE postie_schema (
			version integer PRIMARY KEY,
			name    text NOT NULL,
			applied timestamptz NOT NULL DEFAULT clock_timestamp(),
			node    text NOT NULL)`); err != nil {
			return dbError("migrate: postie_schema", grantHint(err))
		}
	}
	for _, m := range ms[current:] {
		if _, err := tx.Exec(op(), m.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
			return dbError("migrate: "+m.name, grantHint(err))
		}
		if _, err := tx.Exec(op(), `INSERT INTO postie_schema (version, name, node) VALUES ($1, $2, $3)`, m.version, m.name, s.node); err != nil {
			return dbError("migrate: recording "+m.name, err)
		}
	}
	if err := tx.Commit(op()); err != nil {
		return dbError("migrate: commit", err)
	}
	if n := len(ms) - current; n > 0 {
		s.log.Info("pgstore: schema migrated", "from", current, "to", len(ms))
	}
	return nil
}

// schemaVersion returns the last migration applied, 0 when there is no
// schema yet.
func (s *Store) schemaVersion(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (int, error) {
	var exists bool
	// A scan of the catalog, not to_regclass: its cache may not yet know
	// of a table another node just committed.
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c
		JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relname = 'postie_schema' AND n.nspname = ANY (current_schemas(false)))`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM postie_schema`).Scan(&v)
	return v, err
}

func newerSchema(current, known int) error {
	return fmt.Errorf("pgstore: the database schema is at version %d, newer than this postie knows (%d): upgrade postie", current, known)
}

// grantHint adds to a permission error what the role needs: since
// PostgreSQL 15 only the database's owner may create in schema public.
func grantHint(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
		return fmt.Errorf("%w (the first start creates postie's tables: run it as the owner of the database, or give the role a schema of its own: CREATE SCHEMA <role> AUTHORIZATION <role>)", err)
	}
	return err
}
