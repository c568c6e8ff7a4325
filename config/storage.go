package config

import (
	"fmt"
	"strings"
	"time"
)

// Storage backends.
const (
	BackendMaildir  = "maildir"
	BackendPostgres = "postgres"
)

// User database backends ([auth] backend).
const (
	AuthPasswdFile = "passwd-file"
	AuthPostgres   = "postgres"
)

func (c *Config) authBackendProblems(bad func(key, format string, args ...any)) {
	a := &c.Auth
	switch a.Backend {
	case AuthPasswdFile:
	case AuthPostgres:
		switch {
		case a.PostgresDSN != "" && a.PostgresDSNFile != "":
			bad("auth.postgres_dsn_file", "set either auth.postgres_dsn or auth.postgres_dsn_file, not both")
		case a.PostgresDSN == "" && a.PostgresDSNFile == "" && c.Storage.Backend != BackendPostgres:
			bad("auth.postgres_dsn", "required with auth.backend = \"postgres\" unless storage.backend = \"postgres\" (whose database then holds the users)")
		}
	default:
		bad("auth.backend", "unknown backend %q (supported: passwd-file, postgres)", a.Backend)
	}
	if strings.ContainsAny(a.PostgresDSN, "\r\n\x00") {
		bad("auth.postgres_dsn", "must be one line")
	}
}

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
	if msg := checkMaildirPath(s.MaildirPath); msg != "" {
		bad("storage.maildir_path", "%s", msg)
	}
	if f := s.DovecotUIDLFormat; len(f) > 256 || strings.ContainsFunc(f, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		bad("storage.dovecot_uidl_format", "must be up to 256 printable ASCII characters without spaces (Dovecot's pop3_uidl_format, e.g. \"%%08Xu%%08Xv\"), or \"\"")
	}
	if s.DovecotControlPath != "" {
		if msg := checkMaildirPath(s.DovecotControlPath); msg != "" {
			bad("storage.dovecot_control_path", "%s", msg)
		}
	}
	if s.CourierUIDL && s.Backend != BackendMaildir {
		bad("storage.courier_uidl", "applies to storage.backend = \"maildir\" only (migrate over POP3 to keep Courier's UIDLs in PostgreSQL)")
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

// checkMaildirPath returns what is wrong with a maildir_path template, ""
// if nothing.
func checkMaildirPath(t string) string {
	if t == "" {
		return `must not be empty (the default is "%u")`
	}
	if strings.ContainsAny(t, "\x00\r\n") {
		return "must be one line"
	}
	vars := 0
	for i := 0; i < len(t); i++ {
		if t[i] != '%' {
			continue
		}
		i++
		switch {
		case i == len(t):
			return "ends with '%'"
		case t[i] == '%':
		case t[i] == 'u' || t[i] == 'n' || t[i] == 'd':
			vars++
		case t[i] == 'h':
			if i != 1 {
				return "%h (the home field of the passwd-file) must begin the template"
			}
			vars++
		default:
			return fmt.Sprintf("%%%c is not a variable postie knows (%%u user, %%n local part, %%d domain, %%h home)", t[i])
		}
	}
	if vars == 0 {
		return "has no variable: every user would share one Maildir"
	}
	for _, comp := range strings.Split(t, "/") {
		if comp == "." || comp == ".." {
			return "must not contain '.' or '..' components"
		}
	}
	return ""
}
