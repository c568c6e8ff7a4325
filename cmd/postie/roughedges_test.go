package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestListenLMTPFlag: --listen-lmtp moves the LMTP listener of serve
// --dev (which stayed on 127.0.0.1:2424 with --listen on a fixed port):
// here to a unix socket, which takes mail.
func TestListenLMTPFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "alice pw")
	sock := filepath.Join(dir, "lmtp.sock")
	s := startServeArgs(t, dev(dir, "serve", "--listen", "127.0.0.1:0", "--listen-lmtp", "unix:"+sock)...)
	s.waitFor(t, &s.stderr, `msg="postie started"`)
	if got := s.waitFor(t, &s.stderr, `msg=listening proto=lmtp addr=(\S+)`)[1]; got != "unix:"+sock {
		t.Errorf("LMTP listens on %s, want unix:%s", got, sock)
	}
	if n := strings.Count(s.stderr.String(), "proto=lmtp"); n != 1 {
		t.Errorf("%d LMTP listeners, want 1", n)
	}
	lmtpDeliver(t, "unix:"+sock, "alice@localhost", "Subject: hi\r\n\r\nhello\r\n")
	s.stop(t, syscall.SIGTERM, time.Minute)

	for _, bad := range []string{"nonsense", "127.0.0.1:99999", "unix:"} {
		r := mustPostie(t, 64, "", dev(dir, "serve", "--listen", "127.0.0.1:0", "--listen-lmtp", bad)...)
		if !strings.HasPrefix(r.stderr, "postie: --listen-lmtp: config: lmtp.listen: ") {
			t.Errorf("--listen-lmtp %q: stderr %q", bad, r.stderr)
		}
	}
}

// TestFetchDebugLevel: the protocol trace of fetch --debug is logged at
// level TRACE, not slog's DEBUG-4; the password never appears.
func TestFetchDebugLevel(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr)
	r := mustPostie(t, 0, "", "fetch", "--once", "--debug", "--config", cfg)
	if !strings.Contains(r.stderr, `level=TRACE msg="pop3 `) {
		t.Errorf("no TRACE protocol lines in:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "DEBUG-4") || strings.Contains(r.stderr, "pass1") {
		t.Errorf("DEBUG-4 or the password in:\n%s", r.stderr)
	}
}

// TestHelpAndReadme holds the README and the help text to the tool: the
// README's command list names every command, its PostgreSQL keys exist,
// and fetch's --config help names the variable fetch reads.
func TestHelpAndReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../examples/postie.toml")
	if err != nil {
		t.Fatal(err)
	}
	help := mustPostie(t, 0, "", "--help").stdout
	_, cmds, ok := strings.Cut(help, "Available Commands:\n")
	if !ok {
		t.Fatalf("no command list in:\n%s", help)
	}
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	for _, l := range strings.Split(cmds, "\n") {
		name := strings.Fields(l)[0]
		if name != "help" && !regexp.MustCompile(`(?m)^postie `+name+`\b`).Match(readme) {
			t.Errorf("README's command list lacks postie %s", name)
		}
	}
	for _, key := range regexp.MustCompile("`((?:postgres|postie)_(?:dsn|dsn_file|max_conns|lease|timeout))`").FindAllStringSubmatch(string(readme), -1) {
		if !regexp.MustCompile(`(?m)^` + key[1] + ` = `).Match(example) {
			t.Errorf("README names %s, which is no key of examples/postie.toml", key[1])
		}
	}
	if strings.Contains(string(readme), "work with every command") {
		t.Error("README says --dev works with every command; fetch refuses it")
	}
	r := mustPostie(t, 64, "", "fetch", "--dev", "--once")
	if !strings.Contains(r.stderr, "--dev and --data-dir do not apply to fetch") {
		t.Errorf("fetch --dev: %q", r.stderr)
	}
	fh := mustPostie(t, 0, "", "fetch", "--help").stdout
	for _, l := range strings.Split(fh, "\n") {
		if strings.Contains(l, "--config string") && !strings.Contains(l, "$POSTIE_FETCH_CONFIG") {
			t.Errorf("fetch --help: %q does not name $POSTIE_FETCH_CONFIG", l)
		}
	}
}
