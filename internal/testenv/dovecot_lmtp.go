package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// DovecotLMTP is a private Dovecot LMTP server on loopback (Debian package
// dovecot-lmtpd), started in the foreground as a child of the test and
// stopped at cleanup, for side-by-side tests and benchmarks of LMTP
// intake. Users are user1..userN with a Maildir each
// (mail_location = maildir:~/Maildir); recipients are matched by their
// local part (user1@any.domain).
type DovecotLMTP struct {
	Root string
	Addr string // LMTP over TCP
}

// StartDovecotLMTP starts a Dovecot LMTP with n users, or calls Missing
// when Dovecot's LMTP is not installed.
func StartDovecotLMTP(t testing.TB, n int) *DovecotLMTP {
	t.Helper()
	bin := LookPath(t, "dovecot")
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		Missing(t, "dovecot-lmtpd not installed (/usr/lib/dovecot/lmtp)")
	}
	d := &DovecotLMTP{}
	var uid, gid int
	d.Root, uid, gid = newDovecotRoot(t)
	var pw strings.Builder
	for i := 1; i <= n; i++ {
		home := filepath.Join(d.Root, "mail", "user"+strconv.Itoa(i))
		fmt.Fprintf(&pw, "user%d:{PLAIN}pass%d:%d:%d::%s::\n", i, i, uid, gid, home)
		for _, s := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(home, "Maildir", s), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(t, filepath.Join(d.Root, "etc/passwd"), []byte(pw.String()), 0o644)
	chownR(t, filepath.Join(d.Root, "mail"), uid, gid)

	port := FreePort(t)
	d.Addr = "127.0.0.1:" + strconv.Itoa(port)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/run/state
instance_name = postie-lmtp-%[2]d
protocols = lmtp
listen = 127.0.0.1
log_path = %[1]s/log/dovecot.log
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
postmaster_address = postmaster@example.org
auth_username_format = %%Ln
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/etc/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/etc/passwd
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[2]d
  }
}
`, d.Root, port)
	confPath := filepath.Join(d.Root, "etc/dovecot.conf")
	write(t, confPath, []byte(conf), 0o644)

	t.Cleanup(startDovecot(t, bin, d.Root, confPath, d.Addr))
	return d
}

// Maildir returns the Maildir of user (e.g. "user1").
func (d *DovecotLMTP) Maildir(user string) string {
	return filepath.Join(d.Root, "mail", user, "Maildir")
}

// Log returns Dovecot's log so far.
func (d *DovecotLMTP) Log() string {
	b, _ := os.ReadFile(filepath.Join(d.Root, "log/dovecot.log"))
	return string(b)
}
