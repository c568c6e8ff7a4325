package pgstore

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
)

// PingResult is what Ping learned of the database.
type PingResult struct {
	// ServerVersion is the server's version string, e.g. "15.8".
	ServerVersion string
	// Schema is the last schema migration applied, 0 when postie has not
	// made its tables yet (the first node or deliver does); Known is the
	// last one this postie knows.
	Schema, Known int
}

// Ping connects to the database of dsn within ctx, asks for its version
// and postie's schema version, and disconnects. It changes nothing: what
// `postie config check` does. Its errors never quote the DSN.
func Ping(ctx context.Context, dsn string) (PingResult, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return PingResult{}, errors.New("pgstore: invalid DSN (see the libpq connection string format)")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return PingResult{}, dbError("connecting", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	r := PingResult{Known: SchemaVersion()}
	if err := conn.QueryRow(ctx, `SELECT current_setting('server_version')`).Scan(&r.ServerVersion); err != nil {
		return r, dbError("asking for the server version", err)
	}
	if r.Schema, err = (&Store{}).schemaVersion(ctx, conn); err != nil {
		return r, dbError("reading the schema version", err)
	}
	return r, nil
}
