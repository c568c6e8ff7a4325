package pop3server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/sasl"
	"github.com/postie-mail/postie/store"
)

// logTo returns a logger writing text lines without the time to buf.
func logTo(buf *bytes.Buffer, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{
		Level: level,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

// Every class of error a command can return is answered in one place:
// the exact reply, the exact log line, the counter and the bad-command
// count. An error nobody expected is logged with its cause and masked.
func TestAnswer(t *testing.T) {
	user := slog.String("user", "alice")
	tests := []struct {
		name      string
		loggedIn  bool // the session has a user
		err       error
		reply     string
		log       string
		bad       int    // the bad-command count after (it was 1)
		endReason string // "" the session goes on
		counters  Stats
	}{
		{name: "bad command", err: badCommand(errUnknownCommand),
			reply: "-ERR unknown command\r\n", bad: 2, counters: Stats{BadCommands: 1}},
		{name: "usage", err: usage("RETR message-number"),
			reply: "-ERR usage: RETR message-number\r\n", bad: 2, counters: Stats{BadCommands: 1}},
		{name: "no arguments", err: noArgs("STAT"),
			reply: "-ERR STAT takes no arguments\r\n", bad: 2, counters: Stats{BadCommands: 1}},
		{name: "refusal", err: errNoSuchMessage,
			reply: "-ERR no such message\r\n", bad: 0},
		{name: "cleartext refused by sasl", err: fmt.Errorf("%w: PLAIN", sasl.ErrCleartextRefused),
			reply: "-ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port\r\n", bad: 2, counters: Stats{BadCommands: 1}},
		{name: "cleartext refused by USER", err: badCommand(errCleartext),
			reply: "-ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port\r\n", bad: 2, counters: Stats{BadCommands: 1}},
		{name: "unknown mechanism", err: fmt.Errorf("%w: \"CRAM-MD5\"", sasl.ErrUnsupportedMechanism),
			reply: "-ERR unrecognized authentication type\r\n", bad: 2, counters: Stats{BadCommands: 1}},
		{name: "in use", err: failed(opOpenMaildrop, fmt.Errorf("lock: %w", store.ErrInUse), user),
			reply:    "-ERR [IN-USE] maildrop already locked by another session\r\n",
			log:      `level=INFO msg="maildrop in use" session=s1 remote=192.0.2.7 user=alice`,
			counters: Stats{InUse: 1}},
		{name: "login delay", err: failed(opOpenMaildrop, errLoginTooSoon, user),
			reply: "-ERR [LOGIN-DELAY] minimum time between logins not yet passed\r\n",
			log:   `level=INFO msg="login too soon" session=s1 remote=192.0.2.7 user=alice`},
		{name: "message gone", loggedIn: true, err: failed(opOpenMessage, store.ErrMessageGone, slog.Int("msg", 3)),
			reply: "-ERR message no longer available\r\n",
			log:   `level=WARN msg="message vanished" session=s1 remote=192.0.2.7 user=bob msg=3 err="store: message no longer available"`},
		{name: "message changed while read", loggedIn: true, err: failed(opReadMessage, fmt.Errorf("%w: %w", store.ErrMessageGone, errors.New("size differs")), slog.Int("msg", 2)),
			reply: "-ERR message no longer available\r\n",
			log:   `level=WARN msg="message vanished while being read" session=s1 remote=192.0.2.7 user=bob msg=2 err="store: message no longer available: size differs"`},
		{name: "store failure", err: failed(opOpenMaildrop, errors.New("open /var/mail/alice/cur: permission denied"), user),
			reply:    "-ERR [SYS/TEMP] unable to open maildrop\r\n",
			log:      `level=ERROR msg="opening maildrop" session=s1 remote=192.0.2.7 user=alice err="open /var/mail/alice/cur: permission denied"`,
			counters: Stats{StoreErrors: 1}},
		{name: "message unreadable", loggedIn: true, err: failed(opOpenMessage, errors.New("EIO"), slog.Int("msg", 1)),
			reply:    "-ERR [SYS/TEMP] unable to read message\r\n",
			log:      `level=ERROR msg="opening message" session=s1 remote=192.0.2.7 user=bob msg=1 err=EIO`,
			counters: Stats{StoreErrors: 1}},
		{name: "commit failed", loggedIn: true, err: failed(opCommit, errors.New("unlink: EROFS")),
			reply:    "-ERR [SYS/TEMP] some deleted messages not removed\r\n",
			log:      `level=ERROR msg="deleting messages" session=s1 remote=192.0.2.7 user=bob err="unlink: EROFS"`,
			counters: Stats{StoreErrors: 1}},
		{name: "auth backend", err: failed(opAuthenticate, errors.New("connection refused"), slog.String("mech", "PLAIN")),
			reply:    "-ERR [SYS/TEMP] authentication temporarily unavailable\r\n",
			log:      `level=ERROR msg="authentication backend failed" session=s1 remote=192.0.2.7 mech=PLAIN err="connection refused"`,
			counters: Stats{AuthBackendFails: 1}},
		{name: "unexpected", loggedIn: true, err: errors.New("index out of sync at /srv/mail/bob"),
			reply: "-ERR [SYS/TEMP] internal server error\r\n",
			log:   `level=ERROR msg="unexpected error" session=s1 remote=192.0.2.7 user=bob err="index out of sync at /srv/mail/bob"`},
		{name: "unexpected, wrapped", err: fmt.Errorf("cmdFoo: %w", context.Canceled),
			reply: "-ERR [SYS/TEMP] internal server error\r\n",
			log:   `level=ERROR msg="unexpected error" session=s1 remote=192.0.2.7 err="cmdFoo: context canceled"`},
		{name: "end", err: endSession("tls handshake failed"), bad: 1, endReason: "tls handshake failed"},
		{name: "write failed", err: errWriteFailed, bad: 1, endReason: "write failed"},
		{name: "end, wrapped", err: fmt.Errorf("RETR: %w", endSession("message read failed")), bad: 1, endReason: "message read failed"},
		{name: "auth failure", err: &authFailure{user: "Alice", reply: errBadPassword},
			reply:    "-ERR [AUTH] invalid user name or password\r\n",
			log:      `level=WARN msg="authentication failed" session=s1 remote=192.0.2.7 user=Alice delay=0s`,
			bad:      2,
			counters: Stats{AuthFailures: 1, BadCommands: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			srv, err := New(Options{
				Logger:        logTo(&logs, slog.LevelInfo),
				Store:         noStore{},
				Authenticator: AuthenticatorFunc(func(context.Context, string, string) (string, bool, error) { return "", false, nil }),
				Limits:        Limits{AuthFailDelay: -1},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer srv.Close()
			ss := &session{srv: srv, id: "s1", bad: 1}
			ss.conn.remote = netip.MustParseAddr("192.0.2.7")
			ss.conn.w = newConnWriter(nil, 0, writeBufSize)
			if tc.loggedIn {
				ss.auth.user = "bob"
				ss.state = pop3.StateTransaction
			}
			ss.answer(tc.err)
			if got := string(ss.conn.w.buf); got != tc.reply {
				t.Errorf("reply %q, want %q", got, tc.reply)
			}
			if got := strings.TrimSuffix(logs.String(), "\n"); got != tc.log {
				t.Errorf("log\n%s\nwant\n%s", got, tc.log)
			}
			if ss.bad != tc.bad || ss.endReason != tc.endReason {
				t.Errorf("bad %d, end %q; want %d, %q", ss.bad, ss.endReason, tc.bad, tc.endReason)
			}
			if st := srv.Stats(); st != tc.counters {
				t.Errorf("counters %+v, want %+v", st, tc.counters)
			}
		})
	}
}

// A bad command that reaches the limit is answered, then the session is
// told why it closes.
func TestAnswerBadCommandLimit(t *testing.T) {
	srv, err := New(Options{
		Logger:        logTo(&bytes.Buffer{}, slog.LevelInfo),
		Store:         noStore{},
		Authenticator: AuthenticatorFunc(func(context.Context, string, string) (string, bool, error) { return "", false, nil }),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ss := &session{srv: srv, id: "s1", bad: maxBadBeforeLogin - 1}
	ss.conn.w = newConnWriter(nil, 0, writeBufSize)
	ss.answer(badCommand(errNotBeforeLogin))
	if want := "-ERR command not valid before login\r\n-ERR too many bad commands, closing connection\r\n"; string(ss.conn.w.buf) != want || ss.endReason != "too many bad commands" {
		t.Fatalf("%q, end %q; want %q", ss.conn.w.buf, ss.endReason, want)
	}
}
