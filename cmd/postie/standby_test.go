package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// lmtpTry delivers body to rcpt over LMTP and returns the first reply
// that is not the expected one as an error.
func lmtpTry(addr, rcpt, body string) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReader(c)
	reply := func(want string) error {
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return err
			}
			if !strings.HasPrefix(l, want) {
				return fmt.Errorf("LMTP reply %q, want %s", strings.TrimSpace(l), want)
			}
			if len(l) < 4 || l[3] != '-' {
				return nil
			}
		}
	}
	if err := reply("220"); err != nil {
		return err
	}
	for _, step := range []struct{ send, want string }{
		{"LHLO test.example\r\n", "250"},
		{"MAIL FROM:<sender@example.net>\r\n", "250"},
		{"RCPT TO:<" + rcpt + ">\r\n", "250"},
		{"DATA\r\n", "354"},
		{body + ".\r\n", "250"},
	} {
		if _, err := c.Write([]byte(step.send)); err != nil {
			return err
		}
		if err := reply(step.want); err != nil {
			return err
		}
	}
	c.Write([]byte("QUIT\r\n"))
	return nil
}

// TestPostgresStandbyPromotion: a node whose DSN names a primary and its
// standby (target_session_attrs=read-write) follows the standby when the
// primary stops and the standby is promoted, without a restart: the mail
// delivered before is there, deliveries and logins work again.
func TestPostgresStandbyPromotion(t *testing.T) {
	t.Parallel()
	var primary testenv.Postgres
	t.Cleanup(primary.Stop)
	dsn := primary.DB(t)
	var db string
	for _, f := range strings.Fields(dsn) {
		if v, ok := strings.CutPrefix(f, "dbname="); ok {
			db = v
		}
	}
	standby := primary.Standby(t)
	multi := fmt.Sprintf("host=%s,%s port=5432,5432 user=postgres dbname=%s sslmode=disable target_session_attrs=read-write",
		primary.SocketDir(t), standby.SocketDir(t), db)
	n := pgNode(t, t.TempDir(), fmt.Sprintf("postgres_dsn = %q", multi))
	n.Start(t)
	pid := n.Pid()

	const before, after = "Subject: before\r\n\r\nbefore the failover\r\n", "Subject: after\r\n\r\nafter the failover\r\n"
	if err := lmtpTry(n.LMTP, "alice@example.org", before); err != nil {
		t.Fatal(err)
	}
	primary.Stop() // a fast shutdown: the standby has every commit
	standby.Promote(t)

	// Deliveries fail until the pool has reconnected to the new
	// primary: bounded polling.
	var err error
	for try := 0; ; try++ {
		if err = lmtpTry(n.LMTP, "alice@example.org", after); err == nil {
			break
		}
		if try == 300 {
			t.Fatalf("no delivery after the promotion: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var p *pop3Conn
	for try := 0; ; try++ {
		p = dialPOP3(t, n.POP3)
		p.cmd("+OK", "USER alice")
		if r := p.cmd("", "PASS pw"); strings.HasPrefix(r, "+OK") {
			break
		} else if try == 300 {
			t.Fatalf("no login after the promotion: %q", r)
		}
		p.c.Close()
		time.Sleep(100 * time.Millisecond)
	}
	if got := p.cmd("+OK", "STAT"); !strings.HasPrefix(got, "+OK 2 ") {
		t.Fatalf("STAT after the failover: %q, want 2 messages", got)
	}
	p.cmd("+OK", "RETR 1")
	if got := p.multi(); !strings.HasSuffix(got, "before the failover\r\n") {
		t.Errorf("message 1: %q", got)
	}
	p.cmd("+OK", "RETR 2")
	if got := p.multi(); !strings.HasSuffix(got, "after the failover\r\n") {
		t.Errorf("message 2: %q", got)
	}
	p.cmd("+OK", "QUIT")
	if n.Pid() != pid {
		t.Error("the node was restarted")
	}
}
