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
// nothing below floor.
func newLogger(c config.Log, w io.Writer, floor slog.Level) *slog.Logger {
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
	return slog.New(h)
}

// openAuth opens the user database. A missing passwd file is an empty
// database; its directory is created so that the first `user add` works.
func openAuth(c *config.Config, log *slog.Logger) (*auth.DB, error) {
	return openAuthSecret(c, log, nil)
}

// openAuthSecret is openAuth with the secret of the SCRAM credentials
// derived from PLAIN entries (the server's; see loadSCRAMSecret).
func openAuthSecret(c *config.Config, log *slog.Logger, scramSecret []byte) (*auth.DB, error) {
	if err := os.MkdirAll(filepath.Dir(c.Auth.PasswdFile), 0o700); err != nil {
		return nil, err
	}
	ttl := c.Auth.CacheTTL.Std()
	if ttl == 0 {
		ttl = -1 // auth: negative disables the cache, zero is the default
	}
	return auth.Open(c.Auth.PasswdFile, auth.Options{Logger: log, CacheTTL: ttl, SCRAMSecret: scramSecret})
}

// openStore opens the configured maildrop store: the Maildir root
// (created if needed) or the PostgreSQL database (schema migrated). The
// returned func releases it.
func openStore(c *config.Config, db *auth.DB, log *slog.Logger) (store.Store, func(), error) {
	sc := c.Storage
	if sc.Backend == config.BackendPostgres {
		dsn := sc.PostgresDSN
		if sc.PostgresDSNFile != "" {
			b, err := readSecretFile("storage.postgres_dsn_file", sc.PostgresDSNFile, log)
			if err != nil {
				return nil, nil, err
			}
			if dsn = strings.TrimSpace(string(b)); dsn == "" {
				return nil, nil, fmt.Errorf("storage.postgres_dsn_file: %s is empty", sc.PostgresDSNFile)
			}
		}
		// pgstore.New waits at most postgres_timeout.
		st, err := pgstore.New(context.Background(), pgstore.Options{
			DSN:           dsn,
			MaxConns:      sc.PostgresMaxConns,
			LeaseDuration: sc.PostgresLease.Std(),
			Timeout:       sc.PostgresTimeout.Std(),
			Logger:        log,
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
		Root:              sc.MaildirRoot,
		Logger:            log,
		PathTemplate:      sc.MaildirPath,
		Home:              db.Home,
		DovecotUIDLFormat: sc.DovecotUIDLFormat,
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
