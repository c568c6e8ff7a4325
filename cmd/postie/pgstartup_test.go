package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// pgConfig writes a config file in dir for the PostgreSQL store at dsn
// (users in a passwd-file, or extra [auth] keys) and returns its path.
func pgConfig(t *testing.T, dir, dsn, extra string) string {
	t.Helper()
	cfg := filepath.Join(dir, "postie.toml")
	text := fmt.Sprintf(`data_dir = %q
[log]
level = "debug"
[storage]
backend = "postgres"
postgres_dsn = %q
postgres_lease = "1s"
postgres_timeout = "1s"
%s`, dir, dsn, extra)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// runBounded runs postie with stdin and returns its exit code and stderr.
// The bound only keeps a broken postie from hanging the test: a postie
// that waits for the database longer than postgres_timeout (1s here) by
// far, as the schema step once did for a minute, fails it.
func runBounded(t *testing.T, bound time.Duration, stdin string, args ...string) (int, string) {
	t.Helper()
	cmd := testenv.PostieCommand(t, args...)
	var stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatalf("postie %s: %v", strings.Join(args, " "), err)
		}
		return cmd.ProcessState.ExitCode(), stderr.String()
	case <-time.After(bound):
		cmd.Process.Kill()
		<-done
		t.Fatalf("postie %s still waiting after %v with the database frozen (postgres_timeout is 1s)\nstderr: %s", strings.Join(args, " "), bound, stderr.String())
		return 0, ""
	}
}

// TestDeliverDatabaseFrozen: `postie deliver` started while the database
// hangs (SIGSTOP: connections are accepted, nothing answers) gives up
// after postgres_timeout with exit 75 (EX_TEMPFAIL: the MTA retries),
// both before the schema exists (the migration step) and after. When the
// database is back, the retry delivers.
func TestDeliverDatabaseFrozen(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)
	dir := t.TempDir()
	cfg := pgConfig(t, dir, dsn, "")
	mustPostie(t, 0, "pw\n", "user", "add", "--config", cfg, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")

	for _, phase := range []string{"no schema yet", "schema made"} {
		pg.Freeze(t)
		code, stderr := runBounded(t, 30*time.Second, testMessage, "deliver", "--config", cfg, "alice")
		if code != 75 {
			t.Errorf("%s: deliver with the database frozen: exit %d, want 75\n%s", phase, code, stderr)
		}
		if !strings.Contains(stderr, "did not answer in time") {
			t.Errorf("%s: deliver's message does not say the database did not answer: %q", phase, stderr)
		}
		if strings.Contains(stderr, dsn) {
			t.Errorf("deliver's message shows the DSN")
		}
		pg.Thaw(t)
		mustPostie(t, 0, testMessage, "deliver", "--config", cfg, "alice")
	}

	// With the users in the database too, and user commands.
	cfg = pgConfig(t, dir, dsn, "[auth]\nbackend = \"postgres\"\n")
	mustPostie(t, 0, "pw\n", "user", "add", "--config", cfg, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	pg.Freeze(t)
	if code, stderr := runBounded(t, 30*time.Second, testMessage, "deliver", "--config", cfg, "alice"); code != 75 {
		t.Errorf("deliver (users in PostgreSQL) with the database frozen: exit %d, want 75\n%s", code, stderr)
	}
	if code, stderr := runBounded(t, 30*time.Second, "", "user", "list", "--config", cfg); code != 75 || !strings.Contains(stderr, "did not answer in time") {
		t.Errorf("user list with the database frozen: exit %d, want 75\n%s", code, stderr)
	}
	pg.Thaw(t)
	mustPostie(t, 0, testMessage, "deliver", "--config", cfg, "alice")
}
