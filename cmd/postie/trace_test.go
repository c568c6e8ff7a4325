package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postie-mail/postie/pop3server"
)

// The [log] trace keys select sessions at start and again on SIGHUP
// (reloadTrace); a file that no longer loads keeps the selection, and a
// selection that cannot show under the log level is warned about.
func TestReloadTrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postie.toml")
	write := func(log string) {
		t.Helper()
		body := "data_dir = " + quoteTOML(dir) + "\n[log]\n" + log
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := &app{configPath: path}
	tr := &pop3server.Trace{}
	alice, other := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("192.0.2.11")

	write("trace_users = [\"Alice\"]\ntrace_addresses = [\"192.0.2.10\"]\n")
	a.reloadTrace(tr, log)
	if !tr.Selects("alice", other) || !tr.Selects("", alice) || tr.Selects("bob", other) {
		t.Fatal("selection not applied")
	}
	if !strings.Contains(logs.String(), "log.level is not debug") {
		t.Errorf("no warning at level info:\n%s", logs.String())
	}

	write("trace_addresses = [\"not an address\"]\n")
	a.reloadTrace(tr, log)
	if !tr.Selects("alice", other) || !strings.Contains(logs.String(), "keeping the previous one") {
		t.Errorf("a bad file changed the selection or was not reported:\n%s", logs.String())
	}

	write("level = \"debug\"\n")
	a.reloadTrace(tr, log)
	if tr.Selects("alice", alice) || !strings.Contains(logs.String(), "protocol trace off") {
		t.Errorf("the selection was not emptied, or not said:\n%s", logs.String())
	}
}

func quoteTOML(s string) string { return "'" + s + "'" }
