package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/postie-mail/postie/auth"
	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/store/maildir"
	"github.com/postie-mail/postie/store/pgstore"
)

const (
	// systemConfig is read when neither --config nor $POSTIE_CONFIG is set.
	systemConfig = "/etc/postie/postie.toml"
	// devDataDir is the data directory of --dev without --data-dir.
	devDataDir = "postie-dev"
	// devListen is the POP3 address of --dev without --listen.
	devListen = "127.0.0.1:1110"
	// devListenTLS is the implicit-TLS address of --dev without
	// --listen-tls (or 127.0.0.1:0 when --listen asks for port 0).
	devListenTLS = "127.0.0.1:1995"
)

// loadConfig finds and loads the configuration: --dev, else --config,
// else $POSTIE_CONFIG, else systemConfig if it exists.
func (a *app) loadConfig() (*config.Config, error) {
	if a.dev {
		if a.configPath != "" {
			return nil, exitf(exitcode.Usage, "--dev and --config cannot be used together")
		}
		return a.devConfig()
	}
	if a.dataDir != "" {
		return nil, exitf(exitcode.Usage, "--data-dir goes with --dev; with a config file, set data_dir in it")
	}
	path, err := a.configFile()
	if err != nil {
		return nil, err
	}
	c, err := config.Load(path)
	if err != nil {
		return nil, &exitError{code: exitcode.Config, err: err}
	}
	return c, nil
}

// configFile names the configuration file: --config, else
// $POSTIE_CONFIG, else systemConfig if it exists.
func (a *app) configFile() (string, error) {
	path := a.configPath
	if path == "" {
		path = os.Getenv("POSTIE_CONFIG")
	}
	if path == "" {
		if _, err := os.Stat(systemConfig); err != nil {
			return "", exitf(exitcode.Config, "no configuration file: pass --config FILE, set POSTIE_CONFIG, or try --dev (%s does not exist)", systemConfig)
		}
		path = systemConfig
	}
	return path, nil
}

// devConfig is the configuration of --dev: the defaults, with the state in
// --data-dir (default ./postie-dev), POP3 on 127.0.0.1:1110 and a short
// failed-login delay.
func (a *app) devConfig() (*config.Config, error) {
	c := config.Default()
	c.DataDir = a.dataDir
	if c.DataDir == "" {
		c.DataDir = devDataDir
	}
	c.POP3.Listen = []string{devListen}
	c.POP3.ListenTLS = []string{devListenTLS}
	c.TLS.CertFile, c.TLS.KeyFile = devCertFile, devKeyFile // made by serve
	c.POP3.AuthFailDelay = config.Duration(200 * time.Millisecond)
	c.POP3.ShutdownGrace = config.Duration(3 * time.Second)
	if err := c.ResolvePaths(""); err != nil {
		return nil, &exitError{code: exitcode.Config, err: err}
	}
	if err := c.Validate(); err != nil {
		return nil, &exitError{code: exitcode.Config, err: err}
	}
	return c, nil
}

// newLogger builds the process logger on w from the [log] section, logging
// nothing below floor. Every line names the node (server.node).
func newLogger(cfg *config.Config, w io.Writer, floor slog.Level) *slog.Logger {
	c := cfg.Log
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level)) // validated by config
	level = max(level, floor)
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: levelNames}
	var h slog.Handler
	if c.Format == "json" {
		h = slog.NewJSONHandler(w, opts)
	} else {
		h = slog.NewTextHandler(w, opts)
	}
	return slog.New(nodeHandler{h, slog.String("node", nodeName(cfg))})
}

// nodeHandler ends every record with the node's name (after the record's
// own attributes, so that a line still starts with what it says).
type nodeHandler struct {
	slog.Handler
	node slog.Attr
}

func (h nodeHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.node)
	return h.Handler.Handle(ctx, r)
}

func (h nodeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return nodeHandler{h.Handler.WithAttrs(as), h.node}
}

func (h nodeHandler) WithGroup(name string) slog.Handler {
	return nodeHandler{h.Handler.WithGroup(name), h.node}
}

// nodeName is server.node, else the host name.
func nodeName(c *config.Config) string {
	if c.Server.Node != "" {
		return c.Server.Node
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// openAuth opens the user database. A missing passwd file is an empty
// database; its directory is created so that the first `user add` works.
// The PostgreSQL user database is read once (no listener: a command's
// users need not stay current); close it with Close.
func openAuth(c *config.Config, log *slog.Logger) (*auth.DB, error) {
	return openAuthSecret(c, log, nil, false)
}

// openAuthSecret is openAuth with the secret of the SCRAM credentials
// derived from PLAIN entries (the server's; see loadSCRAMSecret), and
// for the PostgreSQL user database, listen to keep it current.
func openAuthSecret(c *config.Config, log *slog.Logger, scramSecret []byte, listen bool) (*auth.DB, error) {
	ttl := c.Auth.CacheTTL.Std()
	if ttl == 0 {
		ttl = -1 // auth: negative disables the cache, zero is the default
	}
	opts := auth.Options{Logger: log, CacheTTL: ttl, SCRAMSecret: scramSecret}
	if c.Auth.Backend == config.AuthPostgres {
		return openPostgresUsers(c, log, opts, listen)
	}
	if err := os.MkdirAll(filepath.Dir(c.Auth.PasswdFile), 0o700); err != nil {
		return nil, err
	}
	return auth.Open(c.Auth.PasswdFile, opts)
}

// usersDSN returns the DSN of the users' database: auth.postgres_dsn(_file),
// else the store's.
func usersDSN(c *config.Config, log *slog.Logger) (string, error) {
	if c.Auth.PostgresDSN != "" || c.Auth.PostgresDSNFile != "" {
		return readDSN(c.Auth.PostgresDSN, "auth.postgres_dsn_file", c.Auth.PostgresDSNFile, log)
	}
	return readDSN(c.Storage.PostgresDSN, "storage.postgres_dsn_file", c.Storage.PostgresDSNFile, log)
}

// readDSN returns dsn, or the contents of file (config key fileKey).
func readDSN(dsn, fileKey, file string, log *slog.Logger) (string, error) {
	if file == "" {
		return dsn, nil
	}
	b, err := readSecretFile(fileKey, file, log)
	if err != nil {
		return "", err
	}
	if dsn = strings.TrimSpace(string(b)); dsn == "" {
		return "", fmt.Errorf("%s: %s is empty", fileKey, file)
	}
	return dsn, nil
}

// openPostgresUsers opens the users in PostgreSQL, migrating the schema
// first; everything waits at most storage.postgres_timeout.
func openPostgresUsers(c *config.Config, log *slog.Logger, opts auth.Options, listen bool) (*auth.DB, error) {
	dsn, err := usersDSN(c, log)
	if err != nil {
		return nil, err
	}
	// Each round trip waits at most postgres_timeout: a database that
	// hangs fails the first.
	timeout := c.Storage.PostgresTimeout.Std()
	ctx := context.Background()
	if err := pgstore.Migrate(ctx, pgstore.Options{DSN: dsn, Timeout: timeout, Node: nodeName(c), Logger: log}); err != nil {
		return nil, err
	}
	cfg, err := pgstore.PoolConfig(dsn)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = 4 // one listens; logins read rows only while it is not current
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	db, err := auth.OpenPostgres(ctx, auth.PostgresOptions{Options: opts, Pool: pool, Timeout: timeout, Listen: listen, ClosePool: true})
	if err != nil {
		pool.Close()
		return nil, err
	}
	return db, nil
}

// usersDesc names the user database for messages: the passwd-file, or
// "the PostgreSQL user database" (never the DSN).
func usersDesc(c *config.Config) string {
	if c.Auth.Backend == config.AuthPostgres {
		return "the PostgreSQL user database"
	}
	return c.Auth.PasswdFile
}

// openStore opens the configured maildrop store: the Maildir root
// (created if needed) or the PostgreSQL database (schema migrated), whose
// round trips go to observe if not nil. The returned func releases it.
func openStore(c *config.Config, db *auth.DB, log *slog.Logger, observe func(time.Duration)) (store.Store, func(), error) {
	sc := c.Storage
	if sc.Backend == config.BackendPostgres {
		dsn, err := readDSN(sc.PostgresDSN, "storage.postgres_dsn_file", sc.PostgresDSNFile, log)
		if err != nil {
			return nil, nil, err
		}
		// pgstore.New waits at most postgres_timeout.
		st, err := pgstore.New(context.Background(), pgstore.Options{
			DSN:              dsn,
			MaxConns:         sc.PostgresMaxConns,
			LeaseDuration:    sc.PostgresLease.Std(),
			Timeout:          sc.PostgresTimeout.Std(),
			Node:             nodeName(c),
			Logger:           log,
			ObserveRoundTrip: observe,
		})
		if err != nil {
			return nil, nil, err
		}
		return st, func() { st.Close() }, nil
	}
	if err := os.MkdirAll(sc.MaildirRoot, 0o700); err != nil {
		return nil, nil, err
	}
	st, err := maildir.New(maildir.Options{
		Root:               sc.MaildirRoot,
		Logger:             log,
		PathTemplate:       sc.MaildirPath,
		Home:               func(user string) (string, bool, error) { return db.HomeContext(context.Background(), user) },
		DovecotUIDLFormat:  sc.DovecotUIDLFormat,
		CourierUIDLs:       sc.CourierUIDL,
		DovecotControlPath: sc.DovecotControlPath,
	})
	if err != nil {
		return nil, nil, err
	}
	return st, func() {}, nil
}

// fileExists reports whether path exists; errors other than "not found"
// count as existing, so that nothing is overwritten on doubt.
func fileExists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// storageDesc names the store for the start-up log line: the Maildir root,
// or "postgres" (never the DSN: it may hold a password).
func storageDesc(c *config.Config) string {
	if c.Storage.Backend == config.BackendPostgres {
		return config.BackendPostgres
	}
	return c.Storage.MaildirRoot
}
