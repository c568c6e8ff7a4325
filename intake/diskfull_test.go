package intake

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// TestDiskFull: on a full file system an LMTP delivery gets 452 4.3.1 for
// each recipient, nothing half-written stays in new/ or tmp/, the server
// keeps serving, and once space is freed the same delivery works.
func TestDiskFull(t *testing.T) {
	root := testenv.MountTmpfs(t, "1m")
	e := newEnvAt(t, root, nil)
	_, addr := e.serve(t, ServerOptions{LMTP: true})
	// The Maildirs exist, then a filler takes most of the space.
	for _, u := range []string{"alice", "bob"} {
		md, err := e.st.Open(t.Context(), u)
		if err != nil {
			t.Fatal(err)
		}
		md.Close()
	}
	filler := filepath.Join(root, "filler")
	if err := os.WriteFile(filler, make([]byte, 900<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	syscall.Statfs(root, &st)
	t.Logf("free: %d octets", st.Bavail*uint64(st.Bsize))

	line := strings.Repeat("d", 998) + "\r\n"
	data := strings.Repeat(line, 200) // 200 kB: more than is free
	send := func(want1, want2 string) {
		t.Helper()
		c := dial(t, "tcp", addr)
		c.script(`S~ 220 
C: LHLO mx
S* 250
C: MAIL FROM:<big@example.net>
C: RCPT TO:<alice@example.org>
C: RCPT TO:<bob@example.org>
C: DATA
S~ 250 
S~ 250 
S~ 250 
S~ 354 `)
		c.send("Subject: big\r\n\r\n" + data + ".\r\n")
		c.script(`S: ` + want1 + `
S: ` + want2 + `
C: QUIT
S~ 221 `)
	}
	send("452 4.3.1 <alice@example.org> Insufficient system storage, try again later",
		"452 4.3.1 <bob@example.org> Insufficient system storage, try again later")
	for _, u := range []string{"alice", "bob"} {
		assertEmpty(t, root, u)
	}
	if !strings.Contains(e.logs.String(), "result=disk_full") {
		t.Errorf("disk full not logged:\n%s", e.logs)
	}

	// Space freed: the MTA's retry succeeds.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	send("250 2.0.0 <alice@example.org> Delivered", "250 2.0.0 <bob@example.org> Delivered")
	for _, u := range []string{"alice", "bob"} {
		got := e.messages(t, u)
		if len(got) != 1 || !strings.HasSuffix(got[0], "\r\nSubject: big\r\n\r\n"+data) {
			t.Errorf("%s: %d messages after freeing space", u, len(got))
		}
		if n := countFiles(t, root, u, "tmp"); n != 0 {
			t.Errorf("%s/tmp holds %d files", u, n)
		}
	}
	if st := e.d.Stats(); st.Deferred != 2 || st.Delivered != 2 || st.Refused != 0 {
		t.Errorf("Stats() = %+v, want 2 deferred, 2 delivered", st)
	}
}
