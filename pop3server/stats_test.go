package pop3server_test

import (
	"io"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
)

// Stats counts each event once: sessions, logins, failures, [IN-USE],
// bad commands, RETR and TOP with their octets, and deletions only when
// a QUIT committed them.
func TestStats(t *testing.T) {
	s := startPostie(t, nil)
	s.deliverCorpus(t, "user1")
	retr1 := len(corpus[0].wire)
	runScript(t, s.addr, testenv.Exact, expand(greet+"C: USER user1\nS: +OK send PASS\nC: PASS wrong\nS: -ERR [AUTH] invalid user name or password\n"+
		"C: FOO\nS: -ERR unknown command\nC: QUIT\nS: +OK bye\nE:", "user1", nil))
	c := dial(t, s.addr)
	c.login("user1", "pass1")
	// A second login meets the lock.
	runScript(t, s.addr, testenv.Exact, expand(greet+"C: USER user1\nS: +OK send PASS\nC: PASS pass1\nS: -ERR [IN-USE] maildrop already locked by another session\nC: QUIT\nS: +OK bye\nE:", "user1", nil))
	c.send("RETR 1\r\nTOP 2 0\r\nDELE 1\r\nDELE 2\r\nQUIT")
	if _, err := io.ReadAll(c.br); err != nil {
		t.Fatal(err)
	}
	// A session that DELEs without QUIT deletes nothing.
	c = dial(t, s.addr)
	c.login("user1", "pass1")
	c.cmd("DELE 1", "+OK message 1 deleted")
	c.c.Close()
	waitSessions(t, s, 0)

	got := s.srv.Stats()
	want := pop3server.Stats{
		SessionsTotal: 4,
		Logins:        2,
		AuthFailures:  1,
		InUse:         1,
		BadCommands:   2, // FOO, and the failed PASS counts as one
		Retr:          1,
		RetrBytes:     uint64(retr1),
		Top:           1,
		Deleted:       2,
	}
	if got != want {
		t.Errorf("Stats() =\n%+v\nwant\n%+v", got, want)
	}
}
