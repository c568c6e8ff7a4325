package pop3server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strings"
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

// Every human-readable text of a reply, +OK as well as -ERR, comes from
// the catalog once a language is chosen: a pseudo-translation of every
// text in catalog (each wrapped in « ») shows up in every reply of a
// whole session, byte for byte, with the numbers of the templates in
// place; what is not text (the status, the tag, numbers that start a
// reply, the lines of multi-line replies) is untouched.
func TestLANGCatalogCoversEveryText(t *testing.T) {
	t.Parallel()
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := maildir.New(maildir.Options{Root: t.TempDir(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, m := range []string{"Subject: one\r\n\r\nfirst\r\n", "Subject: two\r\n\r\nsecond\r\n"} {
		info, err := st.Deliver(context.Background(), "alice", strings.NewReader(m))
		if err != nil {
			t.Fatal(err)
		}
		uids = append(uids, info.UID)
	}
	cert, _ := testenv.SelfSignedCert(t)
	srv, err := New(Options{
		Logger:    discard,
		Store:     st,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		Authenticator: AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
			return user, user == "alice" && pass == "pw", nil
		}),
		UTF8:           true,
		AllowCleartext: true,
		Limits:         Limits{AuthFailDelay: -1},
	})
	if err != nil {
		t.Fatal(err)
	}
	pseudo := &language{tag: "x-test", name: "Pseudo", texts: map[string]string{}}
	for _, en := range catalog {
		pseudo.texts[en] = "«" + en + "»"
	}
	srv.langs = append(srv.langs[:len(srv.langs):len(srv.langs)], pseudo)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	testenv.RunTranscript(t, ln.Addr().String(), testenv.Exact, `S: +OK postie POP3 server ready
C: LANG x-test
S: +OK x-test «language changed»
C: LANG
S: +OK «language listing follows»
D: en English
D: i-default Default language
D: x-test Pseudo
D: .
C: LANG de
S: -ERR «unsupported language»
C: LANG en_US
S: -ERR «invalid language range»
C: CAPA
S: +OK «capability list follows»
D: TOP
D: USER
D: UIDL
D: RESP-CODES
D: AUTH-RESP-CODE
D: PIPELINING
D: STLS
D: UTF8 USER
D: LANG
D: .
C: AUTH
S: +OK «mechanisms follow»
D: .
C: AUTH FOO
S: -ERR «unrecognized authentication type»
C: UTF8
S: +OK «UTF8 enabled»
C: STAT
S: -ERR «command not valid before login»
C: PASS pw
S: -ERR «send USER first»
C: USER
S: -ERR «missing user name»
C: USER alice
S: +OK «send PASS»
C: PASS wrong
S: -ERR [AUTH] «invalid user name or password»
C: USER alice
S: +OK «send PASS»
C: PASS pw
S: +OK «logged in, 2 messages (47 octets)»
C: USER alice
S: -ERR «already logged in»
C: STAT
S: +OK 2 47
C: STAT now
S: -ERR «STAT takes no arguments»
C: LIST
S: +OK «2 messages (47 octets)»
D: 1 23
D: 2 24
D: .
C: LIST 2
S: +OK 2 24
C: LIST 3
S: -ERR «no such message»
C: LIST x
S: -ERR «invalid message number»
C: UIDL
S: +OK «unique-id listing follows»
D: 1 `+uids[0]+`
D: 2 `+uids[1]+`
D: .
C: RETR 1
S: +OK 23 «octets»
D: Subject: one
D:
D: first
D: .
C: RETR
S: -ERR «usage: RETR message-number»
C: TOP 2 0
S: +OK «top of message follows»
D: Subject: two
D:
D: .
C: TOP 2 x
S: -ERR «invalid number of lines»
C: DELE 1
S: +OK «message 1 deleted»
C: DELE 1
S: -ERR «message already deleted»
C: LIST
S: +OK «1 messages (24 octets)»
D: 2 24
D: .
C: RSET
S: +OK «maildrop has 2 messages (47 octets)»
C: NOOP
S: +OK
C: FOO
S: -ERR «unknown command»
C: DELE 2
S: +OK «message 2 deleted»
C: QUIT
S: +OK «bye, 1 messages deleted»
E:`)
	testenv.RunTranscript(t, ln.Addr().String(), testenv.Exact, `S: +OK postie POP3 server ready
C: LANG x-test
S: +OK x-test «language changed»
C: QUIT
S: +OK «bye»
E:`)
	testenv.RunTranscript(t, ln.Addr().String(), testenv.Exact, `S: +OK postie POP3 server ready
C: LANG x-test
S: +OK x-test «language changed»
C: STLS
S: +OK «begin TLS negotiation»`)
}
