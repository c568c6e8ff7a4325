package testenv

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// DovecotMail is a private Dovecot serving POP3 and LMTP over the same
// Maildirs on loopback, that a test can stop and start again on the same
// ports, passwd-file and Maildirs: for tests of taking a Dovecot
// installation over and handing it back. Users are user1..userN with
// passwords pass1..passN, the home field of their passwd-file line
// Root/mail/userI and their Maildir home/Maildir, everything owned by the
// vmail user Dovecot runs as.
type DovecotMail struct {
	Root       string
	PasswdFile string
	Addr       string // POP3, plain (cleartext logins allowed)
	LMTPAddr   string // LMTP over TCP; recipients by local part
	UID, GID   int    // of vmail

	conf string
	stop func()
}

// StartDovecotMail starts a Dovecot with n users whose POP3 server answers
// UIDLs of pop3UIDLFormat, or calls Missing when Dovecot, its LMTP server
// or root privileges are not there.
func StartDovecotMail(t testing.TB, n int, pop3UIDLFormat string) *DovecotMail {
	t.Helper()
	return StartDovecotMailControl(t, n, pop3UIDLFormat, "")
}

// StartDovecotMailControl is StartDovecotMail with Dovecot's control files
// (dovecot-uidlist) kept in control, the CONTROL= of its mail_location
// (e.g. "~/control", or "~/control:LAYOUT=fs" with the rest of the
// location), instead of the Maildir; "" keeps them there.
func StartDovecotMailControl(t testing.TB, n int, pop3UIDLFormat, control string) *DovecotMail {
	t.Helper()
	location := "maildir:~/Maildir"
	if control != "" {
		location += ":CONTROL=" + control
	}
	LookPath(t, "dovecot")
	if _, err := os.Stat("/usr/lib/dovecot/lmtp"); err != nil {
		Missing(t, "dovecot-lmtpd not installed (/usr/lib/dovecot/lmtp)")
	}
	d := &DovecotMail{}
	d.Root, d.UID, d.GID = newDovecotRoot(t)
	var pw strings.Builder
	for i := 1; i <= n; i++ {
		home := filepath.Join(d.Root, "mail", "user"+strconv.Itoa(i))
		fmt.Fprintf(&pw, "user%d:{PLAIN}pass%d:%d:%d::%s::\n", i, i, d.UID, d.GID, home)
		for _, s := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(home, "Maildir", s), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	d.PasswdFile = filepath.Join(d.Root, "etc/passwd")
	write(t, d.PasswdFile, []byte(pw.String()), 0o644)
	chownR(t, filepath.Join(d.Root, "mail"), d.UID, d.GID)

	pop3, lmtp := FreePort(t), FreePort(t)
	d.Addr = "127.0.0.1:" + strconv.Itoa(pop3)
	d.LMTPAddr = "127.0.0.1:" + strconv.Itoa(lmtp)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/run/state
instance_name = postie-mail-%[2]d
protocols = pop3 lmtp
listen = 127.0.0.1
log_path = %[1]s/log/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = %[5]s
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
service pop3-login {
  inet_listener pop3 {
    port = %[2]d
  }
  service_count = 0
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = %[3]d
  }
}
protocol pop3 {
  pop3_uidl_format = %[4]s
}
`, d.Root, pop3, lmtp, pop3UIDLFormat, location)
	d.conf = filepath.Join(d.Root, "etc/dovecot.conf")
	write(t, d.conf, []byte(conf), 0o644)
	t.Cleanup(func() { d.Stop(t) })
	d.Start(t)
	return d
}

// Start starts the Dovecot again after Stop, on the same ports and files.
func (d *DovecotMail) Start(t testing.TB) {
	t.Helper()
	if d.stop != nil {
		t.Fatal("dovecot already running")
	}
	d.stop = startDovecot(t, "dovecot", d.Root, d.conf, d.Addr, d.LMTPAddr)
}

// Stop stops the Dovecot and waits until it and its children are gone and
// its ports closed. It does nothing when the Dovecot is not running.
func (d *DovecotMail) Stop(t testing.TB) {
	t.Helper()
	if d.stop == nil {
		return
	}
	d.stop()
	d.stop = nil
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range []string{d.Addr, d.LMTPAddr} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				break
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("dovecot still listening on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// Maildir returns the Maildir of user (e.g. "user1").
func (d *DovecotMail) Maildir(user string) string {
	return filepath.Join(d.Root, "mail", user, "Maildir")
}

// DeliverFile puts msg into user's Maildir as a program other than
// Dovecot would: written to tmp/ as vmail, renamed into new/ under name.
func (d *DovecotMail) DeliverFile(t testing.TB, user, name string, msg []byte) {
	t.Helper()
	mdaDeliver(t, d.Maildir(user), name, msg, d.UID, d.GID)
}

// Log returns Dovecot's log so far.
func (d *DovecotMail) Log() string { return dovecotLog(d.Root) }
