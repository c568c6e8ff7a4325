package fetch

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// genMaildir writes n messages straight into a Maildir's new/, named as
// postie delivers them (with S= and W= sizes, so the server reads no file
// to list them). Message i is "Subject: message i" and a short body.
func genMaildir(t testing.TB, dir string, n int) {
	t.Helper()
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		msg := bigMessage(i)
		wire := int64(len(msg) + strings.Count(msg, "\n"))
		name := fmt.Sprintf("%d.M%06dP1Q%d.gen,S=%d,W=%d", 1700000000+i/1000, i%1000, i, len(msg), wire)
		if err := os.WriteFile(filepath.Join(dir, "new", name), []byte(msg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func bigMessage(i int) string {
	return fmt.Sprintf("From: sender%d@example.org\nSubject: message %d\nMessage-ID: <%d@example.org>\n\n.line with a dot\nbody of message %d\n", i%7, i, i, i)
}

// TestTenThousandMessages fetches a 10,000-message maildrop into a Maildir
// and deletes it from the server.
func TestTenThousandMessages(t *testing.T) {
	n := 10000
	if testing.Short() {
		n = 1000
	}
	p := startPostie(t, nil)
	genMaildir(t, filepath.Join(p.root, "user1"), n)
	dir := filepath.Join(t.TempDir(), "Maildir")
	c := config(t, account("big", p.addr, fmt.Sprintf("maildir = %q", dir)))
	start := time.Now()
	res := runOnce(t, c, Options{})[0]
	elapsed := time.Since(start)
	t.Logf("%d messages (%s) in %v: %.0f messages/s", res.Fetched, humanOctets(res.Octets), elapsed, float64(res.Fetched)/elapsed.Seconds())
	if res.Fetched != n || res.Deleted != n {
		t.Fatalf("%s", res.Summary())
	}
	got := maildirContents(t, dir)
	if len(got) != n {
		t.Fatalf("Maildir holds %d messages", len(got))
	}
	for i, m := range got {
		if m != bigMessage(i) {
			t.Fatalf("message %d: %q, want %q", i+1, m, bigMessage(i))
		}
	}
	if left := p.count(t, "user1"); left != 0 {
		t.Errorf("server still has %d messages", left)
	}
	// The state forgot them all once deleted.
	data, err := os.ReadFile(filepath.Join(c.StateDir, "big.state"))
	if err != nil || strings.Count(string(data), "\n") != 1 {
		t.Errorf("state after deletion: %d lines, %v", strings.Count(string(data), "\n"), err)
	}
}
