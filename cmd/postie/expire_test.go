package main

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// postie serve with pop3.expire = "30" and alice's own "0"
// (pop3.expire_users): CAPA says EXPIRE 30 USER before login, EXPIRE 0
// after alice's, and a message she retrieved (RETR) is gone after QUIT
// though she never sent DELE, from the Maildir on disk too; one only
// listed stays.
func TestServeExpireZero(t *testing.T) {
	t.Parallel()
	python := testenv.LookPath(t, "python3")
	s := startTLSConfig(t, tlsConfig{pop3: "expire = \"30\"\nexpire_users = { alice = \"0\" }", passwd: "alice:{PLAIN}alicepw\n"})
	want := s.deliver(t, "alice", testMessage)
	s.deliver(t, "alice", "Subject: second\n\nkept\n")
	_, port, _ := net.SplitHostPort(s.POP3S)
	script := `import poplib, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
p = poplib.POP3_SSL("127.0.0.1", port, context=ctx)
assert p.capa()["EXPIRE"] == ["30", "USER"], p.capa()
p.user("alice"); p.pass_("alicepw")
assert p.capa()["EXPIRE"] == ["0"], p.capa()
resp, lines, octets = p.retr(1)
sys.stdout.buffer.write(b"".join(l + b"\r\n" for l in lines))
r = p.quit()
assert r == b"+OK bye, 1 messages deleted", r
p = poplib.POP3_SSL("127.0.0.1", port, context=ctx)
p.user("alice"); p.pass_("alicepw")
assert p.stat()[0] == 1, p.stat()
resp, lines, octets = p.retr(1)
assert lines[-3:] == [b"Subject: second", b"", b"kept"], lines
p.quit()
`
	if got := string(run(t, nil, python, "-c", script, port, s.caFile)); got != want {
		t.Errorf("retrieved %q, want %q", got, want)
	}
	// The second session retrieved the other message: gone too.
	files := maildirFiles(t, filepath.Join(s.Dir, "mail", "alice"))
	if len(files) != 0 {
		t.Errorf("left in the Maildir: %q", files)
	}
}
