package config

import (
	"strings"
	"time"
)

// Storage backends.
const (
	BackendMaildir  = "maildir"
	BackendPostgres = "postgres"
)

func (c *Config) storageProblems(bad func(key, format string, args ...any)) {
	s := &c.Storage
	switch s.Backend {
	case BackendMaildir:
	case BackendPostgres:
		switch {
		case s.PostgresDSN == "" && s.PostgresDSNFile == "":
			bad("storage.postgres_dsn", "required with storage.backend = \"postgres\" (or set storage.postgres_dsn_file)")
		case s.PostgresDSN != "" && s.PostgresDSNFile != "":
			bad("storage.postgres_dsn_file", "set either storage.postgres_dsn or storage.postgres_dsn_file, not both")
		}
	default:
		bad("storage.backend", "unknown backend %q (supported: maildir, postgres)", s.Backend)
	}
	if strings.ContainsAny(s.PostgresDSN, "\r\n\x00") {
		bad("storage.postgres_dsn", "must be one line")
	}
	if s.PostgresMaxConns < 0 || s.PostgresMaxConns > 10000 {
		bad("storage.postgres_max_conns", "must be 0 (the default) to 10000, not %d", s.PostgresMaxConns)
	}
	if d := s.PostgresLease.Std(); d < time.Second || d > time.Hour {
		bad("storage.postgres_lease", "must be 1s to 1h, not %v", d)
	}
	if d := s.PostgresTimeout.Std(); d < 100*time.Millisecond || d > 10*time.Minute {
		bad("storage.postgres_timeout", "must be 100ms to 10m, not %v", d)
	}
}
