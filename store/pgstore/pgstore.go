// Package pgstore is postie's PostgreSQL maildrop backend, for several
// `postie serve` nodes sharing one database behind a load balancer.
//
// # Schema
//
// The tables (see migrations/*.sql, embedded and applied by New):
//
//	postie_meta        settings of the database (the UIDL prefix)
//	postie_mailboxes   one row per maildrop: name, message count, stored octets
//	postie_messages    one row per message: id, UIDL, stored and wire size, chunk count
//	postie_chunks      message bodies, in pieces of at most 256 KiB (bytea)
//	postie_leases      the session lock of each maildrop: node, token, expiry (unlogged)
//	postie_abuse_addrs login failures and bans per client address (unlogged; see Abuse)
//	postie_abuse_users login failures per user name (unlogged)
//	postie_login_times the last login of each maildrop, for LOGIN-DELAY (unlogged)
//	postie_users       the user database of [auth] backend = "postgres" (package auth)
//	postie_schema      versions of the migrations applied
//
// Every node applies the migrations it knows at start, in one transaction
// under a transaction-level advisory lock, so that nodes started together
// wait for each other instead of racing. A database whose schema is newer
// than the node's is refused.
//
// # Deliveries
//
// A delivery reads the message in chunks, counting its stored and wire
// sizes (RFC 1939 §11: CRLF line ends, a final line end, before
// byte-stuffing) as it goes, and writes it in one transaction: a message
// of one chunk is a single statement, a bigger one a transaction of one
// statement per chunk. Deliver returns after COMMIT, which with
// synchronous_commit on (pgstore sets it unless the DSN chooses another
// level) means the WAL is flushed. A failed or canceled delivery leaves
// nothing.
//
// # UIDL
//
// Message ids come from a sequence and are never reused; the UIDL is
// "<prefix>.<id>", the prefix being 8 hex digits drawn when the schema
// was created, so a database rebuilt from scratch does not repeat UIDLs.
//
// # Session lock
//
// Open takes the maildrop's lease row (an insert at its first login,
// then an update in place of the row given up, or of an expired one) and
// the snapshot in one round trip, shared with the other logins that
// arrive meanwhile (open.go). Each Store caches the
// last snapshot of each maildrop (Options.SnapshotCache) with the
// generation of its postie_mailboxes row, which every delivery, deletion
// and update of its messages changes in the same transaction: a login
// that finds the generation unchanged reads no message row. Close gives
// the lease up after the session's last reply, batched with the others
// (lease.go).
//
// Each Store renews the leases of all its open sessions in one statement
// every third of Options.LeaseDuration, so a node that dies or loses the
// database frees its maildrops one lease later. UPDATE (Commit) deletes
// the messages (a trigger adjusts the counters) and checks that the lease
// is still this session's in one statement: a session whose lease was
// taken over deletes nothing.
// The database's clock decides expiry, never the nodes'.
//
// # Failures
//
// Every round trip to the database has a deadline (Options.Timeout), so a
// database outage gives an error after at most that long, never a hang;
// callers answer it with a temporary failure ([SYS/TEMP], LMTP 451). A
// delivery whose COMMIT was sent but not acknowledged in time may still
// have landed: the sender's retry can then duplicate it, never lose it.
package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/multitracer"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postie-mail/postie/store"
)

// Defaults of Options.
const (
	DefaultLeaseDuration = 30 * time.Second
	DefaultTimeout       = 10 * time.Second
	// chunkSize bounds one row of postie_chunks.
	chunkSize = 256 << 10
)

// Options configure a Store.
type Options struct {
	// DSN is the libpq-style connection string or URL (required), e.g.
	// "host=/run/postgresql dbname=postie" or
	// "postgres://postie:secret@db.example:5432/postie?sslmode=verify-full".
	DSN string
	// MaxConns bounds the connection pool; 0 means pgx's default
	// (4 or the number of CPUs, whichever is more).
	MaxConns int
	// LeaseDuration is how long a maildrop lock outlives its node's last
	// renewal; default DefaultLeaseDuration.
	LeaseDuration time.Duration
	// Timeout bounds every round trip to the database (waiting for a
	// pooled connection included); default DefaultTimeout.
	Timeout time.Duration
	// Node names this node in the lease rows (for operators); default
	// "<hostname>:<pid>".
	Node string
	// SnapshotCache bounds the cache of maildrop snapshots, in messages
	// of all maildrops together: a login that finds its maildrop
	// unchanged since the node's last login to it (by the generation of
	// its postie_mailboxes row) reads no message row. 0 means
	// DefaultSnapshotCache; negative disables the cache.
	SnapshotCache int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ObserveRoundTrip, if not nil, is told the duration of every
	// statement (and batch of statements) sent to the database, from
	// the send to the end of its result: for a latency histogram.
	ObserveRoundTrip func(time.Duration)

	tracer pgx.QueryTracer // the tests' round-trip counter
}

// Store is a PostgreSQL database of maildrops. It is safe for concurrent
// use; Close it when done.
type Store struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	node      string
	lease     time.Duration
	timeout   time.Duration
	uidPrefix string     // "<8 hex>."
	snaps     *snapCache // nil when disabled
	stats     counters
	releases  releaser
	opens     opener
	// openRetries are Open's pauses before it tries a lease again.
	openRetries []time.Duration
	// releaseLinger is releaseLoop's wait for a group of logins.
	releaseLinger time.Duration

	mu       sync.Mutex
	held     map[string]*maildrop // token → open session
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}
	once     sync.Once
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Usager = (*Store)(nil)
)

// New connects to the database, applies the schema migrations it lacks and
// starts renewing leases. Each round trip of the start (connecting and
// the first statement, each of the migration, waiting for another node's
// migration, reading the settings) waits at most Options.Timeout: a
// database that hangs fails the start after that long.
func New(ctx context.Context, opts Options) (*Store, error) {
	if opts.DSN == "" {
		return nil, errors.New("pgstore: Options.DSN is required")
	}
	if opts.MaxConns < 0 || opts.MaxConns > 1<<20 {
		return nil, errors.New("pgstore: Options.MaxConns must be 0 to 1048576")
	}
	cfg, err := PoolConfig(opts.DSN)
	if err != nil {
		return nil, err
	}
	if opts.MaxConns > 0 {
		cfg.MaxConns = int32(opts.MaxConns)
	}
	if opts.ObserveRoundTrip != nil {
		cfg.ConnConfig.Tracer = roundTripTracer{observe: opts.ObserveRoundTrip}
	}
	if opts.tracer != nil {
		if t := cfg.ConnConfig.Tracer; t != nil {
			cfg.ConnConfig.Tracer = multitracer.New(t, opts.tracer)
		} else {
			cfg.ConnConfig.Tracer = opts.tracer
		}
	}
	s := &Store{
		log:           opts.Logger,
		node:          opts.Node,
		lease:         opts.LeaseDuration,
		timeout:       opts.Timeout,
		held:          map[string]*maildrop{},
		openRetries:   openRetries,
		releaseLinger: releaseLinger,
		opens:         opener{flushing: make(chan struct{}, 1)},
		stop:          make(chan struct{}),
		done:          make(chan struct{}),
	}
	if s.lease <= 0 {
		s.lease = DefaultLeaseDuration
	}
	switch {
	case opts.SnapshotCache == 0:
		s.snaps = newSnapCache(DefaultSnapshotCache)
	case opts.SnapshotCache > 0:
		s.snaps = newSnapCache(opts.SnapshotCache)
	}
	if err := s.connect(ctx, cfg); err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.pool.Close()
		return nil, err
	}
	octx, cancel := s.op(ctx)
	defer cancel()
	var fsync string
	if err := s.pool.QueryRow(octx, `SELECT (SELECT value FROM postie_meta WHERE key = 'uid_prefix'), current_setting('fsync')`).Scan(&s.uidPrefix, &fsync); err != nil {
		s.pool.Close()
		return nil, dbError("reading uid_prefix", err)
	}
	s.uidPrefix += "."
	if fsync != "on" {
		s.log.Warn("pgstore: the PostgreSQL server runs with fsync off: acknowledged mail can be lost in a crash")
	}
	go s.renew()
	return s, nil
}

// PoolConfig parses dsn into the pool configuration postie uses:
// synchronous_commit on unless the DSN chooses another level,
// plan_cache_mode force_generic_plan unless it chooses another, and
// application_name "postie" unless it names one. Generic plans: postie's
// statements look rows up by key, and take lists (one element per login
// of a group); with such parameters PostgreSQL's default plans some of
// them again at every execution (the snapshot statement always), which
// was 40% of the database's CPU per login. The error never quotes
// the DSN (it may hold a password).
func PoolConfig(dsn string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, errors.New("pgstore: invalid DSN (see the libpq connection string format)")
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !ok {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !ok {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "postie"
	}
	return cfg, nil
}

// Migrate applies the schema migrations the database at opts.DSN lacks,
// as New does, without starting a store: for a database that holds only
// postie's users. Each round trip waits at most opts.Timeout.
func Migrate(ctx context.Context, opts Options) error {
	cfg, err := PoolConfig(opts.DSN)
	if err != nil {
		return err
	}
	cfg.MaxConns = 1
	s := &Store{log: opts.Logger, node: opts.Node, timeout: opts.Timeout}
	if err := s.connect(ctx, cfg); err != nil {
		return err
	}
	defer s.pool.Close()
	return s.migrate(ctx)
}

// connect gives s the defaults of Options.Logger, Timeout and Node, and
// opens its pool.
func (s *Store) connect(ctx context.Context, cfg *pgxpool.Config) error {
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.node == "" {
		h, _ := os.Hostname()
		s.node = fmt.Sprintf("%s:%d", h, os.Getpid())
	}
	var err error
	if s.pool, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return fmt.Errorf("pgstore: %w", err)
	}
	return nil
}

// Close stops renewing leases, releases those of sessions still open and
// closes the pool. Maildrops still open fail afterwards.
func (s *Store) Close() error {
	s.once.Do(func() {
		s.stopRenewing()
		ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
		s.waitReleases(ctx)
		cancel()
		s.mu.Lock()
		free := make(map[string]string, len(s.held))
		for tok, md := range s.held {
			free[md.user] = tok
			md.lost.Store(true)
		}
		clear(s.held)
		s.mu.Unlock()
		if len(free) > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			b := &pgx.Batch{}
			s.queueLeases(b, newLeaseArgs(free, nil))
			if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
				s.log.Warn("pgstore: releasing leases at close", "err", err, "sessions", len(free))
			}
			cancel()
		}
		s.pool.Close()
	})
	return nil
}

// stopRenewing stops the renewal of leases.
func (s *Store) stopRenewing() {
	s.stopOnce.Do(func() { close(s.stop) })
	<-s.done
}

// op returns ctx bounded by the Store's round-trip timeout.
func (s *Store) op(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// checkUser refuses the names maildir refuses (so that a maildrop can move
// between the backends) and names that are not UTF-8: empty, longer than
// 255 octets, a leading '.', '/', '\', NUL and other control characters.
func checkUser(user string) error {
	if user == "" || len(user) > 255 || user[0] == '.' || !utf8.ValidString(user) {
		return fmt.Errorf("pgstore: user %q: %w", user, store.ErrBadUser)
	}
	for i := 0; i < len(user); i++ {
		if c := user[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return fmt.Errorf("pgstore: user %q: %w", user, store.ErrBadUser)
		}
	}
	return nil
}

// dbError wraps a database error with what was being done; a deadline
// says that the database did not answer in time.
func dbError(what string, err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("pgstore: %s: database did not answer in time: %w", what, err)
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

func newToken() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Usage returns the message count and stored octets of user's maildrop
// from its postie_mailboxes row (store.Usager): one indexed read.
func (s *Store) Usage(ctx context.Context, user string) (int, int64, error) {
	if err := checkUser(user); err != nil {
		return 0, 0, err
	}
	ctx, cancel := s.op(ctx)
	defer cancel()
	var n, octets int64
	err := s.pool.QueryRow(ctx, `SELECT messages, octets FROM postie_mailboxes WHERE name = $1`, user).Scan(&n, &octets)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, dbError("usage", err)
	}
	return int(n), octets, nil
}
