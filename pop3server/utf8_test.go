package pop3server_test

import (
	"context"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
)

// RFC 6856: "UTF8 USER" in CAPA before login only, UTF8 answered in
// AUTHORIZATION, a UTF-8 user name and password passed through as sent,
// and UTF8 after login refused (RFC 6856 §2: AUTHORIZATION only).
func TestUTF8(t *testing.T) {
	s := startPostie(t, func(o *pop3server.Options) {
		o.UTF8 = true
		o.Authenticator = pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
			return user, user == "jörg" && pass == "пароль 密码", nil
		})
	})
	script := greet + `C: CAPA
S: +OK capability list follows
D: TOP
D: USER
D: UIDL
D: RESP-CODES
D: AUTH-RESP-CODE
D: PIPELINING
D: UTF8 USER
D: LANG
D: IMPLEMENTATION postie
D: .
C: UTF8 now
S: -ERR UTF8 takes no arguments
C: UTF8
S: +OK UTF8 enabled
C: USER jörg
S: +OK send PASS
C: PASS пароль 密码
S: +OK logged in, 0 messages (0 octets)
C: UTF8
S: -ERR already logged in
C: CAPA
S: +OK capability list follows
D: TOP
D: USER
D: UIDL
D: RESP-CODES
D: AUTH-RESP-CODE
D: PIPELINING
D: LANG
D: IMPLEMENTATION postie
D: .
C: QUIT
S: +OK bye, 0 messages deleted
E:`
	runScript(t, s.addr, testenv.Exact, expand(script, "jörg", nil))

	// Without the option, UTF8 is an unknown command and CAPA is silent.
	s = startPostie(t, nil)
	runScript(t, s.addr, testenv.Exact, expand(greet+"C: UTF8\nS: -ERR unknown command\nC: QUIT\nS: +OK bye\nE:", "user1", nil))
}
