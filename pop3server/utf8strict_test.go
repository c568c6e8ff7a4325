package pop3server_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
)

// RFC 6856 §5: the [UTF8] response code goes with -ERR to LIST, TOP or
// RETR, for a message with UTF-8 content asked for by a client not in
// UTF-8 mode. With UTF8Strict, RETR and TOP of a message with UTF-8 in
// its header are refused that way before UTF8 was sent, and served after
// it; ASCII headers (8-bit bodies too) are served either way, LIST is
// never refused, and no other reply carries [UTF8] (not LANG's, not
// UTF8's own). Without UTF8Strict every message is sent as stored.
func TestUTF8Strict(t *testing.T) {
	t.Parallel()
	msgs := []string{
		"Subject: plain\r\n\r\nbody \xc3\xa9t\xc3\xa9\r\n", // 8-bit body, ASCII header
		"Subject: \xc3\xa9t\xc3\xa9\r\nFrom: j\xc3\xb6rg@example.org\r\n\r\nhi\r\n",
	}
	for _, strict := range []bool{true, false} {
		s := startPostie(t, func(o *pop3server.Options) {
			o.UTF8, o.UTF8Strict = true, strict
			o.Authenticator = pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
				return user, user == "alice" && pass == "pw", nil
			})
		})
		for _, m := range msgs {
			if _, err := s.store.Deliver(context.Background(), "alice", strings.NewReader(m)); err != nil {
				t.Fatal(err)
			}
		}
		size := func(i int) string { return strconv.Itoa(len(msgs[i])) }
		data := func(m string) string {
			return "D: " + strings.ReplaceAll(strings.TrimSuffix(m, "\r\n"), "\r\n", "\nD: ") + "\nD: .\n"
		}
		login := greet + "C: USER alice\nS: +OK send PASS\nC: PASS pw\nS: +OK logged in, 2 messages (" + strconv.Itoa(len(msgs[0])+len(msgs[1])) + " octets)\n"
		retr2 := "C: RETR 2\nS: +OK " + size(1) + " octets\n" + data(msgs[1]) +
			"C: TOP 2 0\nS: +OK top of message follows\nD: Subject: \xc3\xa9t\xc3\xa9\nD: From: j\xc3\xb6rg@example.org\nD:\nD: .\n"
		if strict {
			retr2 = "C: RETR 2\nS: -ERR [UTF8] message has UTF-8 header fields; log in again and send UTF8 before USER or AUTH\n" +
				"C: TOP 2 0\nS: -ERR [UTF8] message has UTF-8 header fields; log in again and send UTF8 before USER or AUTH\n"
		}
		// Not in UTF-8 mode.
		runScript(t, s.addr, testenv.Exact, login+
			"C: LIST 2\nS: +OK 2 "+size(1)+"\n"+
			"C: RETR 1\nS: +OK "+size(0)+" octets\n"+data(msgs[0])+
			retr2+
			"C: LANG en\nS: +OK en language changed\n"+
			"C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
		// In UTF-8 mode, everything is served.
		runScript(t, s.addr, testenv.Exact, greet+"C: UTF8\nS: +OK UTF8 enabled\nC: LANG en\nS: +OK en language changed\n"+
			strings.TrimPrefix(login, greet)+
			"C: RETR 2\nS: +OK "+size(1)+" octets\n"+data(msgs[1])+
			"C: QUIT\nS: +OK bye, 0 messages deleted\nE:")
	}
}
