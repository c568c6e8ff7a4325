package pop3server

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/postie-mail/postie/internal/wire"
)

// Trace selects the sessions whose POP3 conversation is logged line by
// line, at slog.LevelDebug ("trace" lines with the session's id and a "c"
// attribute for a line from the client, "s" for one from the server), so
// that an operator can see what a client and the server said to each
// other:
//
//   - sessions from a client address in one of the prefixes, and
//   - sessions of one of the users: the user logged in, or before that
//     the name last given to USER or APOP (ASCII case-insensitively). A
//     session selected by its user is traced from the command that names
//     it; one that logs in through AUTH, from the reply to the exchange.
//
// The selection is read before every command, so a change reaches the
// sessions already running. Credentials are never logged: the arguments
// of PASS and APOP's digest, AUTH's initial response and every SASL line
// after it are replaced by "<redacted>"; neither are message texts: RETR
// and TOP log their status line and the number of octets sent. A line
// that is no command, or an unknown command other than a 3 or 4 letter
// keyword, is not logged either (a password typed at the wrong prompt).
//
// The zero Trace selects nothing. Its methods are safe for concurrent
// use: a server's selection can change while it runs (on SIGHUP, say).
type Trace struct {
	sel atomic.Pointer[traceSet]
}

type traceSet struct {
	users map[string]bool // lower case
	addrs []netip.Prefix
}

// Set replaces the selection: the sessions of users and those from addrs.
// Nil or empty lists select none.
func (t *Trace) Set(users []string, addrs []netip.Prefix) {
	if len(users) == 0 && len(addrs) == 0 {
		t.sel.Store(nil)
		return
	}
	s := &traceSet{users: map[string]bool{}, addrs: append([]netip.Prefix(nil), addrs...)}
	for _, u := range users {
		s.users[asciiLower(u)] = true
	}
	t.sel.Store(s)
}

// Selects reports whether a session of user (or with user "" unknown)
// from addr is traced.
func (t *Trace) Selects(user string, addr netip.Addr) bool {
	if t == nil {
		return false
	}
	s := t.sel.Load()
	if s == nil {
		return false
	}
	for _, p := range s.addrs {
		if p.Contains(addr) {
			return true
		}
	}
	return user != "" && len(s.users) > 0 && s.users[asciiLower(user)]
}

// asciiLower folds ASCII letters only, as user names are compared (the
// Kelvin sign must not fold to 'k').
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

const redacted = "<redacted>"

// traceCheck decides whether the session is traced for the command
// about to run, whose user name (USER, APOP) counts: the selection is
// read afresh each time.
func (ss *session) traceCheck(c *wire.Command) {
	t := ss.srv.opts.Trace
	if t == nil || t.sel.Load() == nil || !ss.srv.log.Enabled(context.Background(), slog.LevelDebug) {
		ss.tracing = false
		return
	}
	user := ss.auth.user
	if user == "" && c != nil {
		switch {
		case c.Verb == "USER":
			user = c.Rest
		case c.Verb == "APOP" && len(c.Args) > 0:
			user = c.Args[0]
		}
	}
	if user == "" {
		user = ss.auth.named
	}
	ss.tracing = t.Selects(user, ss.conn.remote)
}

func (ss *session) trace(key, line string) {
	ss.log(slog.LevelDebug, "trace", slog.String(key, line))
}

// traceCommand logs a command line as received, without credentials;
// of a line that is no command (!ok) or too long, only that.
func (ss *session) traceCommand(c *wire.Command, ok, tooLong bool) {
	var line string
	switch {
	case !ok:
		ss.trace("c", "<unknown command>")
		return
	case tooLong:
		ss.trace("c", "<line too long>")
		return
	}
	switch c.Verb {
	case "PASS":
		line = "PASS " + redacted
	case "APOP":
		if len(c.Args) > 0 {
			line = "APOP " + c.Args[0] + " " + redacted
		} else {
			line = "APOP"
		}
	case "AUTH":
		line = "AUTH"
		if len(c.Args) > 0 {
			line += " " + c.Args[0]
		}
		if len(c.Args) > 1 {
			line += " " + redacted
		}
	case "USER", "STLS", "CAPA", "UTF8", "QUIT", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "LAST":
		line = c.Verb
		if c.Rest != "" {
			line += " " + c.Rest
		}
	default:
		if keyword(c.Verb) {
			line = c.Verb
			if c.Rest != "" {
				line += " <arguments not logged>"
			}
		} else {
			line = "<unknown command>"
		}
	}
	ss.trace("c", line)
}

// keyword reports whether v has the shape of a POP3 keyword: 3 or 4
// letters (RFC 2449 §3).
func keyword(v string) bool {
	if len(v) < 3 || len(v) > 4 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 'A' || v[i] > 'Z' {
			return false
		}
	}
	return true
}

// traceReply logs each line of s, a reply (or several) queued for the
// client.
func (ss *session) traceReply(s string) {
	for s != "" {
		line, rest, _ := strings.Cut(s, "\r\n")
		ss.trace("s", line)
		s = rest
	}
}

// traceMessage logs what a RETR or TOP sent: the status line and the
// size, never the text.
func (ss *session) traceMessage(head string, octets int64) {
	ss.traceReply(head)
	ss.trace("s", "<message text not logged: "+strconv.FormatInt(octets, 10)+" octets and the terminating line>")
}
