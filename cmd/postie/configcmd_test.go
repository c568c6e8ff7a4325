package main

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/internal/testenv"
)

// TestMaskDSN: the password of either form of connection string is
// replaced, everything else kept; what cannot be taken apart is hidden
// whole.
func TestMaskDSN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"host=db user=postie password=s3cret dbname=mail", "host=db user=postie password=<hidden> dbname=mail"},
		{"host=db password = 's3 cr\\'et' dbname=mail", "host=db password = <hidden> dbname=mail"},
		{"password=s3cret", "password=<hidden>"},
		{"host=db user=postie dbname=mail", "host=db user=postie dbname=mail"},
		{"postgres://postie:s3cret@db:5432/mail?sslmode=require", "postgres://postie:<hidden>@db:5432/mail?sslmode=require"},
		{"postgresql://postie@db/mail?password=s3cret&sslmode=disable", "postgresql://postie@db/mail?password=<hidden>&sslmode=disable"},
		{"postgres://db/mail", "postgres://db/mail"},
		{"host=db password='s3cret", "<hidden>"},                                            // unterminated quote
		{"host=db s3cret", "<hidden>"},                                                      // not key=value
		{"postgres://postie:s3cret@[::1/mail", "<hidden>"},                                  // not a URL
		{"host=s3cret user=s3cret password=s3cret", "<hidden>"},                             // the password elsewhere too
		{"password=s3cret password=other", "<hidden>"},                                      // two passwords
		{"postgres://u:s3cret@db/mail?password=other", "<hidden>"},                          // two passwords
		{"host=db password=s3\\ cret dbname=mail", "host=db password=<hidden> dbname=mail"}, // an escaped space
	} {
		if got := maskDSN(tc.in); got != tc.want {
			t.Errorf("maskDSN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// showConfigText is a config with many keys away from their defaults,
// relative paths, tables of users and arrays of tables.
const showConfigText = `data_dir = "state"
[log]
level = "debug"
trace_users = ["alice"]
[pop3]
listen = ["127.0.0.1:0"]
idle_timeout = "20m"
expire = 30
[pop3.expire_users]
bob = "never"
[storage]
backend = "postgres"
postgres_dsn = "host=db.example.org user=postie password='pg s3cret' dbname=mail"
postgres_lease = "1m"
[auth]
passwd_file = "/etc/postie/passwd"
mechanisms = ["PLAIN"]
[auth.oauth]
introspection_url = "https://idp.example.org/introspect"
client_id = "postie"
client_secret_file = "oauth-secret"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[[tls.certificates]]
cert_file = "/etc/ssl/b.pem"
key_file = "/etc/ssl/b.key"
[intake]
max_message_size = "20M"
[intake.quota_overrides.carol]
messages = 5
[lmtp]
listen = ["unix:lmtp.sock"]
[server]
user = "postie"
`

// TestConfigShow: config show prints TOML that loads to the same
// configuration (but the hidden password), by default only what differs
// from the defaults, with --all every key; a DSN's password never shows.
func TestConfigShow(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	orig := filepath.Join(dir, "postie.toml")
	if err := os.WriteFile(orig, []byte(showConfigText), 0o600); err != nil {
		t.Fatal(err)
	}
	want, err := config.Load(orig)
	if err != nil {
		t.Fatal(err)
	}
	want.Storage.PostgresDSN = "host=db.example.org user=postie password=<hidden> dbname=mail"

	other := t.TempDir() // relative paths must not depend on where the copy is
	for _, all := range []bool{false, true} {
		args := []string{"config", "show", "--config", orig}
		if all {
			args = append(args, "--all")
		}
		out := mustPostie(t, 0, "", args...).stdout
		if strings.Contains(out, "s3cret") {
			t.Errorf("config show %v shows the password:\n%s", args, out)
		}
		copyPath := filepath.Join(other, "shown-"+strconv.FormatBool(all)+".toml")
		if err := os.WriteFile(copyPath, []byte(out), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := config.Load(copyPath)
		if err != nil {
			t.Fatalf("the output of %v does not load: %v\n%s", args, err, out)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%v: the output loads to\n%+v\nwant\n%+v\noutput:\n%s", args, got, want, out)
		}
		again := mustPostie(t, 0, "", "config", "show", "--config", copyPath, "--all="+strconv.FormatBool(all)).stdout
		if again != out {
			t.Errorf("%v: showing the output again differs:\n%s\nfirst:\n%s", args, again, out)
		}
		lines := len(strings.Split(out, "\n"))
		if !all && (lines > 60 || strings.Contains(out, "max_connections") || !strings.Contains(out, `data_dir = "`+filepath.Join(dir, "state")+`"`)) {
			t.Errorf("config show (no --all) shows defaults or lacks data_dir:\n%s", out)
		}
		if all && (!strings.Contains(out, "max_connections = 10000") || !strings.Contains(out, `auth_fail_delay = "2s"`)) {
			t.Errorf("config show --all lacks defaults:\n%s", out)
		}
	}

	// Only defaults: nothing but the comments.
	empty := filepath.Join(dir, "empty.toml")
	os.WriteFile(empty, []byte("data_dir = \"/var/lib/postie\"\n"), 0o600)
	out := mustPostie(t, 0, "", "config", "show", "--config", empty).stdout
	if regexp.MustCompile(`(?m)^[^#\n]`).MatchString(out) {
		t.Errorf("config show of the defaults:\n%s", out)
	}
	// A bad file is a config error, as for serve.
	os.WriteFile(empty, []byte("[pop3]\nidle_timeout = \"1m\"\n"), 0o600)
	r := mustPostie(t, 78, "", "config", "show", "--config", empty)
	if !strings.Contains(r.stderr, "pop3.idle_timeout: must be at least 10m") {
		t.Errorf("stderr: %s", r.stderr)
	}
}

// checkLines runs config check and returns its exit code and lines.
func checkLines(t *testing.T, cfg string) (int, string) {
	t.Helper()
	r := postie(t, nil, "", "config", "check", "--config", cfg)
	return r.code, r.stdout
}

// wantLines fails the test unless every pattern matches a whole line of
// out.
func wantLines(t *testing.T, out string, patterns ...string) {
	t.Helper()
	for _, p := range patterns {
		if !regexp.MustCompile(`(?m)^` + p + `$`).MatchString(out) {
			t.Errorf("no line matches %s in:\n%s", p, out)
		}
	}
}

// TestConfigCheck: with serve running as nobody, the documented layout
// passes; each thing wrong with it is one error or warning line naming
// the key, and errors exit 78. Bad passwd-file lines are named by number
// and their text never shown.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		testenv.Missing(t, "config check's permission test runs as root (it makes files of another user)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		testenv.Missing(t, "no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir := t.TempDir()
	// nobody must reach the files: TempDir's parents are 0700.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	write := func(name, data string, mode os.FileMode, owner, group int) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner, group); err != nil {
			t.Fatal(err)
		}
		return p
	}
	state := filepath.Join(dir, "state")
	os.MkdirAll(filepath.Join(state, "mail"), 0o700)
	os.Chown(state, uid, gid)
	os.Chown(filepath.Join(state, "mail"), uid, gid)

	hash := "{SHA512-CRYPT}$6$saltsalt$hashHASHhash"
	certPEM, keyPEM := certExpiring(t, time.Now().Add(100*24*time.Hour))
	write("cert.pem", string(certPEM), 0o644, 0, 0)
	write("key.pem", string(keyPEM), 0o640, 0, gid)
	write("passwd", "alice:"+hash+"\nbob:"+hash+"\n", 0o640, 0, gid)
	write("admins", "root:"+hash+"\n", 0o640, 0, gid)
	cfg := write("postie.toml", `data_dir = "state"
[auth]
passwd_file = "../passwd"
[tls]
cert_file = "../cert.pem"
key_file = "../key.pem"
[web]
admin_passwd_file = "../admins"
[server]
user = "nobody"
`, 0o640, 0, gid)

	code, out := checkLines(t, cfg)
	if code != 0 {
		t.Errorf("the documented layout: exit %d\n%s", code, out)
	}
	okLines := []string{
		`ok: server.user: postie serve runs as nobody \(uid ` + nobody.Uid + `\), group \S+ \(gid ` + nobody.Gid + `\)`,
		`ok: config: ` + regexp.QuoteMeta(cfg) + ` \(root:\S+ 0640\) loads and is valid`,
		`ok: auth.passwd_file: ` + regexp.QuoteMeta(filepath.Join(dir, "passwd")) + ` \(root:\S+ 0640\): 2 users`,
		`ok: web.admin_passwd_file: ` + regexp.QuoteMeta(filepath.Join(dir, "admins")) + ` \(root:\S+ 0640\): 1 admins`,
		`ok: tls.key_file: \S+/key.pem \(root:\S+ 0640\)`,
		`ok: tls.cert_file: \S+/cert.pem: the certificate for localhost is valid until \S+ \((99|100) days\)`,
		`ok: data_dir: ` + regexp.QuoteMeta(state) + ` \(nobody:\S+ 0700\) is writable by nobody`,
		`ok: storage.maildir_root: ` + regexp.QuoteMeta(filepath.Join(state, "mail")) + ` \(nobody:\S+ 0700\) is writable by nobody`,
	}
	wantLines(t, out, okLines...)
	if n := strings.Count(out, "\n"); n != len(okLines) {
		t.Errorf("%d lines, want %d:\n%s", n, len(okLines), out)
	}
	if r := postie(t, nil, "", "config", "check", "--quiet", "--config", cfg); r.code != 0 || r.stdout != "" {
		t.Errorf("--quiet: exit %d, %q", r.code, r.stdout)
	}

	// POSIX ACLs (setfacl on the real files): an entry that lets another
	// user or group read a secret is a warning, write it an error, as the
	// mode bits are; one that lets the account read is what it needs.
	t.Run("acl", func(t *testing.T) {
		setfacl := testenv.LookPath(t, "setfacl") // Debian package acl
		acl := func(args ...string) {
			t.Helper()
			if out, err := exec.Command(setfacl, args...).CombinedOutput(); err != nil {
				t.Fatalf("setfacl %v: %v\n%s", args, err, out)
			}
		}
		key, passwd, admins := filepath.Join(dir, "key.pem"), filepath.Join(dir, "passwd"), filepath.Join(dir, "admins")
		acl("-m", "u:4242:r", key)
		acl("-m", "g:4343:r", admins)
		code, out := checkLines(t, cfg)
		wantLines(t, out,
			`warning: tls.key_file: `+regexp.QuoteMeta(key)+` \(root:\S+ 0640\) is readable by user 4242 through its ACL, and holds a private key: setfacl -x u:4242 `+regexp.QuoteMeta(key),
			`warning: web.admin_passwd_file: `+regexp.QuoteMeta(admins)+` \(root:\S+ 0640\) is readable by group 4343 through its ACL, and holds password hashes: setfacl -x g:4343 `+regexp.QuoteMeta(admins))
		if code != 0 {
			t.Errorf("warnings only: exit %d\n%s", code, out)
		}
		acl("-b", key, admins)
		acl("-m", "u:4242:rw", passwd)
		code, out = checkLines(t, cfg)
		wantLines(t, out, `error: auth.passwd_file: `+regexp.QuoteMeta(passwd)+` \(root:\S+ 0660\) is writable by user 4242 through its ACL: setfacl -x u:4242 `+regexp.QuoteMeta(passwd))
		if code != 78 {
			t.Errorf("exit %d, want 78\n%s", code, out)
		}
		acl("-b", passwd)
		// The owning group's read through the ACL, not the mask: a
		// group other than nobody's (root's) is named, as by the mode.
		write("key.pem", string(keyPEM), 0o640, uid, 0)
		acl("-m", "u:4242:r", key)
		_, out = checkLines(t, cfg)
		wantLines(t, out, `warning: tls.key_file: `+regexp.QuoteMeta(key)+` \(nobody:root 0640\) is readable by its group through its ACL, and postie does not run as that group: setfacl -m g::- `+regexp.QuoteMeta(key)+`, or give it to postie's group`)
		// root:root 0600 with an entry for nobody, who serve runs as:
		// readable by it and by nobody else (the mode shows the mask).
		acl("-b", key)
		write("key.pem", string(keyPEM), 0o600, 0, 0)
		acl("-m", "u:nobody:r", key)
		code, out = checkLines(t, cfg)
		wantLines(t, out, `ok: tls.key_file: `+regexp.QuoteMeta(key)+` \(root:root 0640\)`)
		if code != 0 || strings.Contains(out, "warning") {
			t.Errorf("a key readable by nobody through its ACL: exit %d\n%s", code, out)
		}
		write("key.pem", string(keyPEM), 0o640, 0, gid)
		acl("-b", key)
	})

	// Now break each of them.
	write("passwd", "alice:"+hash+"\nbroken line "+hash+"\nalice:"+hash+"\n", 0o644, 0, gid)
	write("key.pem", string(keyPEM), 0o600, 0, 0)
	certPEM, keyPEM = certExpiring(t, time.Now().Add(5*24*time.Hour+time.Hour))
	write("cert2.pem", string(certPEM), 0o644, 0, 0)
	write("key2.pem", string(keyPEM), 0o640, uid, 0)
	os.Chown(filepath.Join(state, "mail"), 0, 0)
	os.Chmod(filepath.Join(state, "mail"), 0o755)
	write("postie.toml", `data_dir = "state"
[auth]
passwd_file = "../passwd"
[tls]
cert_file = "../cert.pem"
key_file = "../key.pem"
[[tls.certificates]]
cert_file = "../cert2.pem"
key_file = "../key2.pem"
[server]
user = "nobody"
`, 0o666, 0, 0)
	code, out = checkLines(t, cfg)
	if code != 78 {
		t.Errorf("exit %d, want 78", code)
	}
	wantLines(t, out,
		`error: config: \S+ \(root:root 0666\) is writable by others than its owner: chmod go-w`,
		`error: auth.passwd_file: \S+/passwd \(root:\S+ 0644\) is readable by every user and holds password hashes: chmod o-rwx`,
		`error: tls.key_file: \S+/key.pem \(root:root 0600\) is not readable by nobody, which postie runs as`,
		`warning: tls.certificates\[0\].key_file: \S+/key2.pem \(nobody:root 0640\) is readable by its group, which postie does not run as: chmod g-r, or give it to postie's group`,
		`warning: tls.certificates\[0\].cert_file: \S+/cert2.pem: the certificate for localhost expires in 6 days \(\S+\)`,
		`error: storage.maildir_root: \S+/state/mail \(root:root 0755\) is not writable by nobody, which postie runs as`,
	)
	// The passwd-file's lines, once nobody may read it (and everyone not).
	write("passwd", "alice:"+hash+"\nbroken line "+hash+"\nalice:"+hash+"\n", 0o640, 0, gid)
	code, out = checkLines(t, cfg)
	wantLines(t, out,
		`error: auth.passwd_file: \S+/passwd: line 2: no ':' after the user name \(skipped\)`,
		`warning: auth.passwd_file: \S+/passwd: line 3 \(user "alice"\): a second entry for this user \(skipped: the first wins\)`,
		`ok: auth.passwd_file: \S+/passwd \(root:\S+ 0640\): 1 users`,
	)
	if code != 78 || strings.Contains(out, "hashHASH") {
		t.Errorf("exit %d; a hash must never show:\n%s", code, out)
	}

	// An expired certificate is an error.
	certPEM, keyPEM = certExpiring(t, time.Now().Add(-time.Hour))
	write("cert2.pem", string(certPEM), 0o644, 0, 0)
	write("key2.pem", string(keyPEM), 0o640, 0, gid)
	code, out = checkLines(t, cfg)
	wantLines(t, out, `error: tls.certificates\[0\].cert_file: \S+/cert2.pem: the certificate for localhost expired on \S+`)
	if code != 78 {
		t.Errorf("exit %d", code)
	}

	// A config that does not load: each problem, exit 78.
	write("postie.toml", "[pop3]\nidle_timeout = \"1m\"\nmax_connections = 0\n", 0o640, 0, gid)
	code, out = checkLines(t, cfg)
	wantLines(t, out,
		`error: config: \S+: pop3.idle_timeout: must be at least 10m \(RFC 1939\), not 1m0s`,
		`error: config: \S+: pop3.max_connections: must be at least 1`)
	if code != 78 {
		t.Errorf("exit %d", code)
	}
}

// TestConfigCheckPostgres: config check reaches a real PostgreSQL within
// postgres_timeout, and says so when it cannot; the DSN's password shows
// in neither config check nor config show.
func TestConfigCheckPostgres(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	// Trust authentication ignores the password; it must not leak anyway.
	dsn := pg.DB(t) + " password=pg-s3cret"
	dir := t.TempDir()
	cfg := filepath.Join(dir, "postie.toml")
	write := func(dsn string) {
		os.WriteFile(cfg, []byte("data_dir = \"state\"\n[storage]\nbackend = \"postgres\"\npostgres_timeout = \"20s\"\npostgres_dsn = \""+dsn+"\"\n"), 0o600)
	}
	write(dsn)
	code, out := checkLines(t, cfg)
	wantLines(t, out, `ok: storage.postgres_dsn: PostgreSQL \d+.* answers; postie's tables are not there yet \(serve or deliver makes them\)`,
		`warning: data_dir: `+regexp.QuoteMeta(filepath.Join(dir, "state"))+` does not exist yet: postie makes it \(serve started as root makes data_dir for \S+; under systemd, StateDirectory= does\)`)
	if code != 0 {
		t.Errorf("exit %d:\n%s", code, out)
	}
	show := mustPostie(t, 0, "", "config", "show", "--config", cfg).stdout
	if strings.Contains(out+show, "pg-s3cret") {
		t.Errorf("the password shows:\n%s\n%s", out, show)
	}
	if !strings.Contains(show, "password=<hidden>") {
		t.Errorf("config show:\n%s", show)
	}

	write("host=" + filepath.Join(dir, "no-server") + " user=postgres dbname=x password=pg-s3cret")
	code, out = checkLines(t, cfg)
	wantLines(t, out, `error: storage.postgres_dsn: no answer from the database \(storage.postgres_timeout 20s\): .*`)
	if code != 78 || strings.Contains(out, "pg-s3cret") {
		t.Errorf("exit %d (want 78), the password must not show:\n%s", code, out)
	}
}
