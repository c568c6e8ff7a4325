package main

import (
	"path/filepath"
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
