package main

import (
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

func newTicketKey(t *testing.T) string {
	var k [32]byte
	rand.Read(k[:])
	return hex.EncodeToString(k[:])
}

// TestSessionTicketKeysAcrossNodes: two servers reading one
// tls.session_ticket_key_file resume each other's TLS sessions; after a
// rotation (a new key first, SIGHUP) a ticket under the old key still
// resumes while the key is in the file, and no longer once it is not.
func TestSessionTicketKeysAcrossNodes(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "tickets")
	writeKeys := func(keys ...string) {
		if err := os.WriteFile(keyFile, []byte("# newest first\n"+strings.Join(keys, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k1, k2, k3 := newTicketKey(t), newTicketKey(t), newTicketKey(t)
	writeKeys(k1)
	cfg := tlsConfig{
		passwd:  "",
		certPEM: certPEM, keyPEM: keyPEM,
		tail: "session_ticket_key_file = " + `"` + keyFile + `"`,
	}
	a := startTLSConfig(t, cfg)
	b := startTLSConfig(t, cfg)

	// resume connects to s with the sessions of cache and reports
	// whether the handshake resumed one.
	resume := func(s *tlsServer, cache tls.ClientSessionCache) bool {
		t.Helper()
		c := s.clientTLS()
		c.ClientSessionCache = cache
		p, tc := s.dialTLS(t, c) // reads the greeting, and with it the ticket
		p.cmd("+OK", "QUIT")
		return tc.ConnectionState().DidResume
	}

	cross := tls.NewLRUClientSessionCache(4)
	if resume(a, cross) {
		t.Fatal("the first connection resumed a session")
	}
	if !resume(b, cross) {
		t.Fatal("a session from node A did not resume on node B")
	}
	// Two clients holding tickets that B issued under k1.
	k1Tickets := []tls.ClientSessionCache{tls.NewLRUClientSessionCache(4), tls.NewLRUClientSessionCache(4)}
	for _, cache := range k1Tickets {
		resume(b, cache)
	}

	// Rotation: k2 first, k1 still there.
	writeKeys(k2, k1)
	for _, s := range []*tlsServer{a, b} {
		s.Signal(t, syscall.SIGHUP)
		s.WaitLog(t, `msg="TLS session ticket keys reloaded"`)
	}
	if !resume(a, k1Tickets[0]) {
		t.Error("a ticket under the previous key, still in the file, did not resume")
	}
	// That resumption brought a ticket under k2.

	// k1 leaves the file: its tickets no longer resume, k2's still do.
	writeKeys(k3, k2)
	for _, s := range []*tlsServer{a, b} {
		s.Signal(t, syscall.SIGHUP)
		s.WaitLog(t, `(?s)TLS session ticket keys reloaded.*TLS session ticket keys reloaded`)
	}
	if resume(a, k1Tickets[1]) {
		t.Error("a ticket under a key no longer in the file resumed")
	}
	if !resume(b, k1Tickets[0]) {
		t.Error("a ticket under k2, still in the file, did not resume")
	}
}

// TestLoadTicketKeysBadInput: what tls.session_ticket_key_file refuses,
// with an error naming the line, never the key.
func TestLoadTicketKeysBadInput(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, text string
		mode       os.FileMode
		err        string // "" for none
	}{
		{"one key", good + "\n", 0o600, ""},
		{"comments and blank lines", "# keys\n\n" + good + "\n  \n", 0o600, ""},
		{"group-readable", good, 0o640, ""},
		{"readable by all", good, 0o644, "is readable by every user (mode 0644)"},
		{"empty", "# nothing\n", 0o600, "holds no key"},
		{"short key", strings.Repeat("ab", 16), 0o600, "line 1: a key is 64 hex digits"},
		{"long key", good + "00", 0o600, "line 1: a key is 64 hex digits"},
		{"not hex", "\n" + strings.Repeat("zz", 32), 0o600, "line 2: a key is 64 hex digits"},
		{"twice", good + "\n" + good, 0o600, "line 2: the same key twice"},
		{"too many", strings.Repeat(good[:62]+"00\n", 1) + func() string {
			var b strings.Builder
			for i := range 17 {
				b.WriteString(strings.Repeat("cd", 31) + hex.EncodeToString([]byte{byte(i)}) + "\n")
			}
			return b.String()
		}(), 0o600, "holds 18 keys, more than 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "tickets")
			if err := os.WriteFile(path, []byte(tc.text), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			keys, err := loadTicketKeys(path, slog.New(slog.NewTextHandler(&logs, nil)))
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("error %v", err)
			case tc.err == "" && len(keys) == 0:
				t.Fatal("no key")
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one with %q", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), "abab") || strings.Contains(logs.String(), "abab") {
				t.Errorf("a key is quoted: %v\n%s", err, logs.String())
			}
			if tc.mode == 0o640 && !strings.Contains(logs.String(), "readable_by=\"its group\"") {
				t.Errorf("no warning for a group-readable file:\n%s", logs.String())
			}
		})
	}
}
