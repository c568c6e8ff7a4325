package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// pgUsersNode prepares (does not start) a node whose maildrops and users
// are in the PostgreSQL database at dsn.
func pgUsersNode(t *testing.T, dsn, node string) *testenv.Postie {
	t.Helper()
	return pgUsersNodeWith(t, dsn, node, "")
}

// pgUsersNodeWith is pgUsersNode with more config (tables the base does
// not have) at the end.
func pgUsersNodeWith(t *testing.T, dsn, node, extra string) *testenv.Postie {
	t.Helper()
	return testenv.NewPostie(t, testenv.PostieOptions{Dir: t.TempDir(), Config: fmt.Sprintf(`[log]
level = "debug"
[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[lmtp]
listen = ["127.0.0.1:0"]
[storage]
backend = "postgres"
postgres_dsn = %q
postgres_lease = "1s"
postgres_timeout = "5s"
[auth]
backend = "postgres"
[server]
node = %q
`, dsn, node) + extra})
}

// passOK logs in on a fresh connection and reports whether PASS
// succeeded (a refusal must be the generic [AUTH] reply).
func passOK(t *testing.T, addr, user, password string) bool {
	t.Helper()
	p := dialPOP3(t, addr)
	defer p.c.Close()
	p.cmd("+OK", "USER "+user)
	p.c.Write([]byte("PASS " + password + "\r\n"))
	r := p.line()
	switch {
	case strings.HasPrefix(r, "+OK"):
		p.cmd("+OK", "QUIT")
		return true
	case r == "-ERR [AUTH] invalid user name or password":
		return false
	}
	t.Fatalf("PASS: %q", r)
	return false
}

// TestPostgresUsers: two `postie serve` nodes share their users in
// PostgreSQL. `postie user add/passwd/del/list` (run against either
// node's config) act on the table; a password changed through node A's
// config is refused by node B without a SIGHUP, the new one taken;
// `postie user import` copies a passwd-file in one idempotent command.
func TestPostgresUsers(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)
	a, b := pgUsersNode(t, dsn, "node-a"), pgUsersNode(t, dsn, "node-b")

	// The first command makes the schema.
	mustPostie(t, 0, "old pw\n", "user", "add", "--config", a.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	if r := postie(t, nil, "x\n", "user", "add", "--config", b.Config, "--password-stdin", "ALICE"); r.code != 1 || !strings.Contains(r.stderr, "already exists") {
		t.Errorf("add of a taken name (other case): exit %d %q", r.code, r.stderr)
	}
	a.Start(t)
	b.Start(t)
	a.WaitLog(t, `msg="postie started" .* users_from="the PostgreSQL user database" users=1 node=node-a\n`)
	b.WaitLog(t, `msg="postie started" .* node=node-b\n`)
	mustPostie(t, 0, testMessage, "deliver", "--config", b.Config, "alice")
	if r := postie(t, nil, "", "config", "check", "--config", a.Config); !strings.Contains(r.stdout+r.stderr, "auth.backend: the users are in the store's database") {
		t.Errorf("config check does not tell where the users are:\n%s%s", r.stdout, r.stderr)
	}

	if !passOK(t, a.POP3, "alice", "old pw") || !passOK(t, b.POP3, "alice", "old pw") {
		t.Fatal("a node refuses the password set with postie user add")
	}
	mustPostie(t, 0, "new pw\n", "user", "passwd", "--config", a.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	// Node B learns of it by NOTIFY (in milliseconds; at most a second
	// even if the notification were lost). The bound only stops a broken
	// test.
	for start := time.Now(); passOK(t, b.POP3, "alice", "old pw"); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node B still accepts the old password")
		}
	}
	if !passOK(t, b.POP3, "alice", "new pw") || !passOK(t, a.POP3, "alice", "new pw") {
		t.Fatal("the new password is refused")
	}
	if passOK(t, a.POP3, "alice", "old pw") || passOK(t, b.POP3, "alice", "old pw") {
		t.Fatal("the old password was accepted again")
	}
	if passOK(t, b.POP3, "nobody", "new pw") {
		t.Fatal("an unknown user logged in")
	}

	// Import a passwd-file through node B's config.
	hash := mustPostie(t, 0, "", "user", "list", "--config", b.Config)
	if hash.stdout != "alice\n" {
		t.Errorf("user list = %q", hash.stdout)
	}
	file := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(file, []byte("# old server\nbob:{PLAIN}bob pw::::/home/bob::\ncarol:{PLAIN}carol pw\nnot a line\n"), 0o600)
	if r := mustPostie(t, 0, "", "user", "import", "--config", b.Config, "--from", "passwd-file", file); r.stdout != "added 2, updated 0, unchanged 0, skipped 1\n" {
		t.Errorf("import: %q", r.stdout)
	}
	if r := mustPostie(t, 0, "", "user", "import", "--config", a.Config, "--from", "passwd-file", file); r.stdout != "added 0, updated 0, unchanged 2, skipped 1\n" {
		t.Errorf("import again: %q", r.stdout)
	}
	for start := time.Now(); !passOK(t, a.POP3, "bob", "bob pw"); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node A does not see the imported user")
		}
	}
	if r := mustPostie(t, 0, "", "user", "list", "--config", a.Config); r.stdout != "alice\nbob\ncarol\n" {
		t.Errorf("user list after the import = %q", r.stdout)
	}

	mustPostie(t, 0, "", "user", "del", "--config", b.Config, "carol")
	for start := time.Now(); passOK(t, a.POP3, "carol", "carol pw"); time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node A still lets the deleted user in")
		}
	}
	for _, tc := range []struct {
		code int
		args []string
		want string
	}{
		{64, []string{"--from", "csv", file}, "--from must be passwd-file"},
		{66, []string{"--from", "passwd-file", file + ".missing"}, "no such file"},
		{64, []string{file}, `required flag(s) "from" not set`},
	} {
		r := postie(t, nil, "", append([]string{"user", "import", "--config", a.Config}, tc.args...)...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("import %v: exit %d %q, want %d and %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if strings.Contains(a.Log()+b.Log(), "new pw") || strings.Contains(a.Log()+b.Log(), dsn) {
		t.Error("a log shows a password or the DSN")
	}
}

// lmtpRcpt opens an LMTP transaction and returns the reply to RCPT TO
// rcpt, without its line end.
func lmtpRcpt(t *testing.T, addr, rcpt string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	last := func() string {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatalf("LMTP: %v", err)
			}
			if len(l) < 4 || l[3] != '-' {
				return strings.TrimRight(l, "\r\n")
			}
		}
	}
	last()
	for _, cmd := range []string{"LHLO test.example\r\n", "MAIL FROM:<sender@example.net>\r\n"} {
		c.Write([]byte(cmd))
		last()
	}
	c.Write([]byte("RCPT TO:<" + rcpt + ">\r\n"))
	r := last()
	c.Write([]byte("QUIT\r\n"))
	return r
}

// TestPostgresUsersDelivery: with the users in PostgreSQL, delivery
// refuses a user deleted on another node (deliver right after the
// command, LMTP once the node has the change), and while the database
// does not answer, a node whose users in memory are past
// MaxStaleness answers RCPT with a temporary failure, for a user it had
// in memory and for an unknown name alike: never 550 5.1.1, which would
// bounce the mail.
func TestPostgresUsersDelivery(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)
	a, b := pgUsersNode(t, dsn, "node-a"), pgUsersNode(t, dsn, "node-b")
	for _, u := range []string{"bob", "carol"} {
		mustPostie(t, 0, "pw of "+u+"\n", "user", "add", "--config", a.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", u)
	}
	b.Start(t)
	for _, u := range []string{"bob", "carol"} {
		if r := lmtpRcpt(t, b.LMTP, u+"@example.org"); r != "250 2.0.0 I'll make sure <"+u+"@example.org> gets this" {
			t.Fatalf("RCPT %s: %q", u, r)
		}
	}
	const noUser = "550 5.1.1 No such user here"
	if r := lmtpRcpt(t, b.LMTP, "nobody@example.org"); r != noUser {
		t.Fatalf("RCPT nobody: %q", r)
	}

	mustPostie(t, 0, "", "user", "del", "--config", a.Config, "carol")
	if r := postie(t, nil, testMessage, "deliver", "--config", b.Config, "carol"); r.code != 67 || !strings.Contains(r.stderr, "no such user") {
		t.Errorf("deliver to the deleted user: exit %d %q, want 67", r.code, r.stderr)
	}
	// Node B learns of it by NOTIFY; the bound only stops a broken test.
	for start := time.Now(); lmtpRcpt(t, b.LMTP, "carol@example.org") != noUser; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 30*time.Second {
			t.Fatal("node B still accepts mail for the deleted user")
		}
	}

	pg.Freeze(t)
	// Within MaxStaleness of its last proof node B still trusts its
	// memory; then it must ask the database, which does not answer.
	const tempFail = "451 4.3.2 Delivery interrupted, try again later"
	var r string
	for start := time.Now(); ; {
		if r = lmtpRcpt(t, b.LMTP, "bob@example.org"); !strings.HasPrefix(r, "250 ") {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("node B accepts mail for bob from memory long after the database stopped answering")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if r != tempFail {
		t.Errorf("RCPT bob with the database frozen: %q, want %q", r, tempFail)
	}
	if r := lmtpRcpt(t, b.LMTP, "nobody@example.org"); r != tempFail {
		t.Errorf("RCPT nobody with the database frozen: %q, want %q (not a bounce)", r, tempFail)
	}
	b.WaitLog(t, `level=WARN msg="recipient refused" proto=lmtp .* rcpt=nobody@example.org result=temporary_failure err=`)
	pg.Thaw(t)
	for start := time.Now(); !strings.HasPrefix(lmtpRcpt(t, b.LMTP, "bob@example.org"), "250 "); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatal("node B does not take mail for bob again once the database answers")
		}
	}
	if strings.Contains(b.Log(), "pw of") {
		t.Error("the log shows a password")
	}
}
