package pop3server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/store/maildir"
)

// A translation is a language with texts: once chosen, the -ERR texts and
// the LANG reply it translates are sent in it (UTF-8), the others stay
// English, and a refused LANG keeps the language in use.
func TestLANGTranslation(t *testing.T) {
	t.Parallel()
	st, err := maildir.New(maildir.Options{Root: t.TempDir(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Store:  st,
		Authenticator: AuthenticatorFunc(func(context.Context, string, string) (string, bool, error) {
			return "", false, nil
		}),
		UTF8:   true,
		Limits: Limits{AuthFailDelay: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.langs = append(srv.langs[:len(srv.langs):len(srv.langs)], &language{tag: "fr", name: "Français", texts: map[string]string{
		textLangChanged:         "langue choisie",
		textLangListing:         "voici les langues",
		errLangUnsupported.Text: "langue non prise en charge",
		errNotBeforeLogin.Text:  "commande refusée avant l'identification",
	}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	testenv.RunTranscript(t, ln.Addr().String(), testenv.Exact, `S: +OK postie POP3 server ready
C: STAT
S: -ERR command not valid before login
C: LANG fr-CA
S: +OK fr langue choisie
C: STAT
S: -ERR commande refusée avant l'identification
C: LANG
S: +OK voici les langues
D: en English
D: i-default Default language
D: fr Français
D: .
C: LANG de
S: -ERR langue non prise en charge
C: NOOP
S: -ERR commande refusée avant l'identification
C: FOO
S: -ERR unknown command
C: LANG en
S: +OK en language changed
C: STAT
S: -ERR command not valid before login
C: QUIT
S: +OK bye
E:`)
}
