package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestStoragePostgres(t *testing.T) {
	c, dir, err := load(t, `data_dir = "."
[storage]
backend = "postgres"
postgres_dsn_file = "secrets/dsn"
postgres_max_conns = 20
postgres_lease = "5s"
postgres_timeout = "2s"
`)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Storage
	if s.Backend != BackendPostgres || s.PostgresDSNFile != filepath.Join(dir, "secrets", "dsn") || s.PostgresDSN != "" ||
		s.PostgresMaxConns != 20 || s.PostgresLease.Std() != 5*time.Second || s.PostgresTimeout.Std() != 2*time.Second {
		t.Errorf("storage = %+v", s)
	}
	c, _, err = load(t, "[storage]\nbackend = \"postgres\"\npostgres_dsn = \"host=/run/postgresql dbname=postie\"\n")
	if err != nil || c.Storage.PostgresDSN != "host=/run/postgresql dbname=postie" || c.Storage.PostgresDSNFile != "" {
		t.Errorf("postgres_dsn: %+v, %v", c.Storage, err)
	}
}

func TestStorageValidation(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"backend = \"mysql\"\n", `storage.backend: unknown backend "mysql" (supported: maildir, postgres)`},
		{"backend = \"postgres\"\n", "storage.postgres_dsn: required"},
		{"backend = \"postgres\"\npostgres_dsn = \"host=x password=hunter2\"\npostgres_dsn_file = \"f\"\n", "storage.postgres_dsn_file: set either"},
		{"backend = \"postgres\"\npostgres_dsn = \"host=x password=hunter2\\n\"\n", "storage.postgres_dsn: must be one line"},
		{"postgres_max_conns = -1\n", "storage.postgres_max_conns"},
		{"postgres_max_conns = 10001\n", "storage.postgres_max_conns"},
		{"postgres_lease = \"500ms\"\n", "storage.postgres_lease: must be 1s to 1h, not 500ms"},
		{"postgres_lease = \"2h\"\n", "storage.postgres_lease"},
		{"postgres_timeout = \"0s\"\n", "storage.postgres_timeout"},
		{"postgres_timeout = \"11m\"\n", "storage.postgres_timeout"},
		{"postgres_lease = 30\n", "storage.postgres_lease"},
		{"postgres_pool = 3\n", "unknown key: storage.postgres_pool"},
		{"courier_uidl = \"yes\"\n", "storage.courier_uidl"},
		{"dovecot_control_path = \"control\"\n", "storage.dovecot_control_path"},
		{"dovecot_control_path = \"%u/../x\"\n", "storage.dovecot_control_path"},
		{"backend = \"postgres\"\npostgres_dsn = \"host=x\"\ncourier_uidl = true\n", "storage.courier_uidl: applies to storage.backend = \"maildir\" only"},
	} {
		_, _, err := load(t, "[storage]\n"+tc.body)
		wantErr(t, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the DSN's password: %v", err)
		}
	}
}

func TestMaildirPathAndUIDLFormat(t *testing.T) {
	c := Default()
	if c.Storage.MaildirPath != "%u" || c.Storage.DovecotUIDLFormat != "%08Xu%08Xv" || c.Storage.CourierUIDL {
		t.Errorf("defaults %q %q %v", c.Storage.MaildirPath, c.Storage.DovecotUIDLFormat, c.Storage.CourierUIDL)
	}
	for _, good := range []string{"%u", "%h/Maildir", "/var/vmail/%d/%n", "%d/%n/Maildir", "x%%%u"} {
		if msg := checkMaildirPath(good); msg != "" {
			t.Errorf("%q: %s", good, msg)
		}
	}
	for _, bad := range []string{"", "mail", "%x", "%", "a/%h", "%u/../x", "%u\n"} {
		if checkMaildirPath(bad) == "" {
			t.Errorf("%q accepted", bad)
		}
	}
	c.Storage.MaildirPath = "%q"
	c.Storage.DovecotUIDLFormat = "a b"
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "storage.maildir_path") || !strings.Contains(err.Error(), "storage.dovecot_uidl_format") {
		t.Errorf("Validate: %v", err)
	}
	c = Default()
	c.Storage.DovecotUIDLFormat = ""
	if err := c.Validate(); err != nil {
		t.Errorf("empty format: %v", err)
	}
}

func TestAuthBackendAndNode(t *testing.T) {
	c, _, err := load(t, "[storage]\nbackend = \"postgres\"\npostgres_dsn = \"host=x\"\n[auth]\nbackend = \"postgres\"\n[server]\nnode = \"pop-1.example\"\n")
	if err != nil || c.Auth.Backend != AuthPostgres || c.Server.Node != "pop-1.example" {
		t.Fatalf("auth in the store's database: %+v %+v, %v", c.Auth, c.Server, err)
	}
	c, dir, err := load(t, "data_dir = \".\"\n[auth]\nbackend = \"postgres\"\npostgres_dsn_file = \"users.dsn\"\n")
	if err != nil || c.Auth.PostgresDSNFile != filepath.Join(dir, "users.dsn") {
		t.Fatalf("auth in a database of its own: %+v, %v", c.Auth, err)
	}
	if Default().Auth.Backend != AuthPasswdFile {
		t.Errorf("default auth.backend = %q", Default().Auth.Backend)
	}
	for _, tc := range []struct{ body, want string }{
		{"[auth]\nbackend = \"ldap\"\n", `auth.backend: unknown backend "ldap" (supported: passwd-file, postgres)`},
		{"[auth]\nbackend = \"postgres\"\n", "auth.postgres_dsn: required with auth.backend = \"postgres\" unless storage.backend = \"postgres\""},
		{"[auth]\nbackend = \"postgres\"\npostgres_dsn = \"host=x password=hunter2\"\npostgres_dsn_file = \"f\"\n", "auth.postgres_dsn_file: set either"},
		{"[auth]\nbackend = \"postgres\"\npostgres_dsn = \"host=x password=hunter2\\n\"\n", "auth.postgres_dsn: must be one line"},
		{"[server]\nnode = \"a b\"\n", `server.node: "a b": want up to 255 characters`},
		{"[server]\nnode = \"" + strings.Repeat("n", 256) + "\"\n", "server.node"},
	} {
		_, _, err := load(t, tc.body)
		wantErr(t, err, tc.want)
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error shows the DSN's password: %v", err)
		}
	}
}
