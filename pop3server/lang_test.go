package pop3server_test

import (
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/pop3server"
)

// RFC 6856 §3 LANG: the listing, a choice by basic language range (with
// RFC 4647 lookup: en-GB finds en), "*" for the server's preferred, an
// unsupported language refused with the language in use kept, and LANG
// after login too. LANG is offered with UTF8.
func TestLANG(t *testing.T) {
	t.Parallel()
	s := startPostie(t, func(o *pop3server.Options) { o.UTF8 = true })
	script := greet + `C: LANG
S: +OK language listing follows
D: en English
D: i-default Default language
D: .
C: LANG fr
S: -ERR unsupported language
C: LANG en_US
S: -ERR invalid language range
C: LANG toolongsubtag
S: -ERR invalid language range
C: LANG 1en
S: -ERR invalid language range
C: LANG en fr
S: -ERR usage: LANG [language-range]
C: LANG EN-gb
S: +OK en language changed
C: LANG i-default
S: +OK i-default language changed
C: LANG en-x-private
S: +OK en language changed
C: LANG *
S: +OK en language changed
C: USER {user}
S: +OK send PASS
C: PASS {pass}
S: +OK logged in, 0 messages (0 octets)
C: LANG
S: +OK language listing follows
D: en English
D: i-default Default language
D: .
C: LANG i-default
S: +OK i-default language changed
C: LANG de-DE
S: -ERR unsupported language
C: QUIT
S: +OK bye, 0 messages deleted
E:`
	runScript(t, s.addr, testenv.Exact, expand(script, "user1", nil))

	// Without UTF8, no LANG.
	s = startPostie(t, nil)
	runScript(t, s.addr, testenv.Exact, expand(greet+"C: LANG\nS: -ERR unknown command\nC: LANG en\nS: -ERR unknown command\nC: QUIT\nS: +OK bye\nE:", "user1", nil))
}
