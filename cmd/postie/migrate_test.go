package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// migrateEnv is a real Dovecot with mail for user1 and user2, and a postie
// configuration whose users alice and bob take their mail over.
type migrateEnv struct {
	d        *testenv.DovecotMail
	dir, cfg string
	cfgText  string
	accounts string
	before   map[string]map[string]listing // Dovecot's listing, by remote user
}

func newMigrateEnv(t *testing.T, perUser int) *migrateEnv {
	t.Helper()
	d := testenv.StartDovecotMail(t, 2, "%08Xu%08Xv")
	for i := 1; i <= perUser; i++ {
		lmtpDeliver(t, d.LMTPAddr, "user1@example.org", fmt.Sprintf("Subject: m%d\r\n\r\nmessage %d for user1\r\n.leading dot\r\n", i, i))
	}
	lmtpDeliver(t, d.LMTPAddr, "user2@example.org", "Subject: hi\r\n\r\nfor user2\r\n")
	d.DeliverFile(t, "user1", "1700000001.M1P1.mda.example", []byte("Subject: raw\n\nLF line ends, no CR\n"))
	e := &migrateEnv{d: d, dir: t.TempDir(), before: map[string]map[string]listing{}}
	for _, u := range []string{"user1", "user2"} {
		e.before[u] = popListing(t, d.Addr, u, strings.Replace(u, "user", "pass", 1))
	}
	write := func(name, data string) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("passwd", "alice:{PLAIN}alice pw\nbob:{PLAIN}bob pw\n")
	e.accounts = write("accounts", "# local remote password\nalice user1 pass1\n\nbob\tuser2   pass2\n")
	e.cfgText = fmt.Sprintf(`data_dir = %q
[pop3]
listen = ["127.0.0.1:0"]
implementation = false
hostname = "test"
auth_fail_delay = "0s"
[lmtp]
listen = []
[auth]
cache_ttl = "0s"
`, e.dir)
	e.cfg = write("postie.toml", e.cfgText)
	return e
}

func (e *migrateEnv) migrate(t *testing.T, want int, extra ...string) result {
	t.Helper()
	args := append([]string{"migrate", "pop3", "--config", e.cfg, "--server", e.d.Addr, "--tls", "none", "--accounts", e.accounts}, extra...)
	r := postie(t, nil, "", args...)
	if r.code != want {
		t.Fatalf("migrate: exit %d, want %d\nstdout: %s\nstderr: %s", r.code, want, r.stdout, r.stderr)
	}
	return r
}

// check serves the local maildrops and compares them with Dovecot's: the
// same messages byte for byte (by content), UIDLs and sizes; and Dovecot's
// unchanged.
func (e *migrateEnv) check(t *testing.T, when string) {
	t.Helper()
	p := testenv.StartPostie(t, testenv.PostieOptions{Config: e.cfgText, Dir: e.dir})
	addr := p.POP3
	for local, remote := range map[string]string{"alice": "user1", "bob": "user2"} {
		got := popListing(t, addr, local, local+" pw")
		want := e.before[remote]
		if len(got) != len(want) {
			t.Errorf("%s: %s has %d messages, %s on Dovecot %d", when, local, len(got), remote, len(want))
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s: message %.12s: postie %+v, Dovecot %+v", when, local, k, got[k], w)
			}
		}
		if after := popListing(t, e.d.Addr, remote, strings.Replace(remote, "user", "pass", 1)); len(after) != len(want) {
			t.Errorf("%s: Dovecot's %s changed: %d messages, were %d", when, remote, len(after), len(want))
		}
	}
	p.Stop(t, syscall.SIGTERM, time.Minute)
}

// TestMigratePOP3 copies two maildrops from a real Dovecot: every message
// byte-identical under its remote UIDL, the remote maildrops untouched, a
// second run copies nothing, and a message deleted locally is not copied
// again.
func TestMigratePOP3(t *testing.T) {
	e := newMigrateEnv(t, 4)
	r := e.migrate(t, 0)
	for _, want := range []string{"alice: 5 messages on the server, 5 copied", "bob: 1 messages on the server, 1 copied"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("summary %q lacks %q", r.stdout, want)
		}
	}
	e.check(t, "first run")
	r = e.migrate(t, 0)
	if !strings.Contains(r.stdout, "alice: 5 messages on the server, 0 copied (0 octets), 5 already here") {
		t.Errorf("second run: %q", r.stdout)
	}
	e.check(t, "second run")

	// Deleted locally, not copied again.
	md := filepath.Join(e.dir, "mail", "alice")
	files := maildirFiles(t, md)
	if err := os.Remove(files[0]); err != nil {
		t.Fatal(err)
	}
	r = e.migrate(t, 0)
	if !strings.Contains(r.stdout, "alice: 5 messages on the server, 0 copied") {
		t.Errorf("after a local deletion: %q", r.stdout)
	}

	// A local user that does not exist, a refused login.
	os.WriteFile(e.accounts, []byte("carol user1 pass1\n"), 0o600)
	e.migrate(t, 67)
	os.WriteFile(e.accounts, []byte("alice user1 wrong\n"), 0o600)
	e.migrate(t, 77)
	os.WriteFile(e.accounts, []byte("alice user1\n"), 0o600)
	e.migrate(t, 78)
}

// TestMigratePOP3Killed kills migrate with SIGKILL after each number of
// messages stored (and once at once), then runs it again to the end:
// every message is there exactly once, under its remote UIDL.
func TestMigratePOP3Killed(t *testing.T) {
	const n = 6
	for k := 0; k <= n; k++ {
		t.Run(fmt.Sprint("after", k), func(t *testing.T) {
			e := newMigrateEnv(t, n-1)
			cmd := testenv.PostieCommand(t, "migrate", "pop3", "--config", e.cfg, "--server", e.d.Addr, "--tls", "none", "--accounts", e.accounts)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			newDir := filepath.Join(e.dir, "mail", "alice", "new")
		wait:
			for {
				select {
				case <-done:
					break wait
				default:
				}
				if ents, _ := os.ReadDir(newDir); len(ents) >= k {
					break
				}
				syscall.Nanosleep(&syscall.Timespec{Nsec: 1e6}, nil)
			}
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			ents, _ := os.ReadDir(newDir)
			t.Logf("killed with %d of %d messages stored (%v)", len(ents), n, cmd.ProcessState)
			e.migrate(t, 0)
			e.check(t, fmt.Sprintf("killed after %d", k))
		})
	}
}

func TestMigrateState(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state")
	os.WriteFile(p, []byte("a\nb\ntor"), 0o600)
	m, torn, err := readMigrateState(p)
	if err != nil || !torn || len(m) != 2 || !m["a"] || !m["b"] {
		t.Errorf("%v %v %v", m, torn, err)
	}
	if m, torn, err := readMigrateState(p + "x"); err != nil || torn || len(m) != 0 {
		t.Errorf("missing: %v %v %v", m, torn, err)
	}
}

func TestReadMigrateAccounts(t *testing.T) {
	p := filepath.Join(t.TempDir(), "accounts")
	os.WriteFile(p, []byte("# c\n\n a  b  pass word \nx\ty\tz\r\n"), 0o600)
	accts, err := readMigrateAccounts(p)
	if err != nil || len(accts) != 2 || accts[0] != (migrateAccount{3, "a", "b", "pass word"}) || accts[1] != (migrateAccount{4, "x", "y", "z"}) {
		t.Errorf("%+v %v", accts, err)
	}
	for _, bad := range []string{"a secretpw\n", "", "# only\n", "secretpw\n"} {
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := readMigrateAccounts(p); err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "secretpw") {
			t.Errorf("error shows the line: %v", err)
		}
	}
}

// TestMigratePOP3Postgres is TestMigratePOP3 into the PostgreSQL store,
// with a run killed half-way.
func TestMigratePOP3Postgres(t *testing.T) {
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)
	e := newMigrateEnv(t, 4)
	e.cfgText += fmt.Sprintf("[storage]\nbackend = \"postgres\"\npostgres_dsn = %q\npostgres_lease = \"1s\"\n", dsn)
	if err := os.WriteFile(e.cfg, []byte(e.cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := testenv.PostieCommand(t, "migrate", "pop3", "--config", e.cfg, "--server", e.d.Addr, "--tls", "none", "--accounts", e.accounts)
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Killed once it reports the first account done, in the middle of
	// the second (holding its maildrop's lease, perhaps).
	buf := make([]byte, 1)
	out.Read(buf)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	r := e.migrate(t, 0)
	if !strings.Contains(r.stdout, "bob: 1 messages on the server") {
		t.Errorf("summary %q", r.stdout)
	}
	e.check(t, "postgres")
	r = e.migrate(t, 0)
	if !strings.Contains(r.stdout, "alice: 5 messages on the server, 0 copied (0 octets), 5 already here") {
		t.Errorf("second run: %q", r.stdout)
	}
}
