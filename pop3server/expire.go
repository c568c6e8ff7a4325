package pop3server

import (
	"errors"
	"log/slog"
	"strconv"
	"time"

	"github.com/postie-mail/postie/store"
)

// RFC 2449 §6.7 EXPIRE, enforced. The policy of a session is a number of
// days (0: no mail may be left on the server) or NEVER. With a number:
//
//   - a message retrieved in full (RETR, or a TOP that sent every line)
//     in a session that ends with QUIT is recorded in the store
//     (store.Expirer) with the time of that QUIT, unless an earlier
//     retrieval is recorded; a session without QUIT records nothing
//     (RFC 1939 §6: no UPDATE, the maildrop is left as it was), so a
//     client whose connection broke before it stored a message finds it
//     again, even with EXPIRE 0;
//   - at login, under the maildrop lock and before the client sees the
//     snapshot, the messages first retrieved at least that many days ago
//     are removed: they are not in the session's listing;
//   - with 0, QUIT also removes the messages retrieved in the session,
//     as if the client had sent DELE (the RFC's implicit DELE).

const expireNever = -1

// expirePolicy returns the policy of user: Options.ExpireFor's, else
// Limits.Expire; NEVER (nothing enforced) when EXPIRE is not advertised.
func (s *Server) expirePolicy(user string) int {
	def := s.opts.Limits.Expire
	if def == nil {
		return expireNever
	}
	if f := s.opts.ExpireFor; f != nil {
		if days, ok := f(user); ok {
			return max(days, expireNever)
		}
	}
	return max(*def, expireNever)
}

// expireCapa is the EXPIRE capability line: before login the server's
// default, tagged USER when users may have their own (RFC 2449 §6.7);
// after login the user's own.
func (ss *session) expireCapa(beforeLogin bool) string {
	def := ss.srv.opts.Limits.Expire
	switch {
	case def == nil:
		return ""
	case !beforeLogin:
		return "EXPIRE " + expireText(ss.drop.expire) + "\r\n"
	case ss.srv.opts.ExpireFor != nil:
		return "EXPIRE " + expireText(*def) + " USER\r\n"
	}
	return "EXPIRE " + expireText(*def) + "\r\n"
}

func expireText(days int) string {
	if days < 0 {
		return "NEVER"
	}
	return strconv.Itoa(days)
}

var errNoExpirer = errors.New("EXPIRE is advertised with a number of days, but the store does not implement store.Expirer")

// expireAtLogin applies the policy of the user just logged in to md, whose
// snapshot is msgs: it returns the messages the session lists and, when
// some were removed, their indexes in the store's snapshot.
func (ss *session) expireAtLogin(md store.Maildrop, msgs []store.MessageInfo, user slog.Attr) (shown []store.MessageInfo, index []int, err error) {
	ss.drop.expire = ss.srv.expirePolicy(ss.auth.user)
	if ss.drop.expire < 0 {
		return msgs, nil, nil
	}
	e, ok := md.(store.Expirer)
	if !ok {
		return nil, nil, errNoExpirer
	}
	ss.drop.expirer = e
	cutoff := ss.srv.now().Add(-time.Duration(ss.drop.expire) * 24 * time.Hour)
	removed, err := e.Expire(ss.srv.ctx, cutoff)
	if err != nil {
		// What was not removed is still listed and can be removed at
		// the next login.
		ss.log(slog.LevelError, "expiring messages", user, slog.Any("err", err))
	}
	if len(removed) == 0 {
		return msgs, nil, nil
	}
	ss.log(slog.LevelInfo, "messages expired", user, slog.Int("expired", len(removed)), slog.Int("days", ss.drop.expire))
	shown = make([]store.MessageInfo, 0, len(msgs)-len(removed))
	index = make([]int, 0, len(msgs)-len(removed))
	r := 0
	for i, m := range msgs {
		if r < len(removed) && removed[r] == i {
			r++
			continue
		}
		shown = append(shown, m)
		index = append(index, i)
	}
	return shown, index, nil
}

// storeIndex is the store's index of the session's message i.
func (ss *session) storeIndex(i int) int {
	if ss.drop.index == nil {
		return i
	}
	return ss.drop.index[i]
}

// retrieved notes that message i was sent whole; markRetrieved records
// it at QUIT.
func (ss *session) retrieved(i int) {
	if ss.drop.expirer == nil {
		return
	}
	if ss.drop.retrieved == nil {
		ss.drop.retrieved = make([]bool, len(ss.drop.msgs))
	}
	ss.drop.retrieved[i] = true
}

// markRetrieved records in the store, in UPDATE, the messages the
// session retrieved (written by the Commit or the Close that follows).
func (ss *session) markRetrieved() {
	if ss.drop.expirer == nil || ss.drop.retrieved == nil {
		return
	}
	now := ss.srv.now()
	for i, r := range ss.drop.retrieved {
		if r {
			ss.drop.expirer.MarkRetrieved(ss.storeIndex(i), now)
		}
	}
}

// implicitDele reports whether QUIT removes message i though the client
// did not delete it: EXPIRE 0 and the message was retrieved.
func (ss *session) implicitDele(i int) bool {
	return ss.drop.expire == 0 && ss.drop.retrieved != nil && ss.drop.retrieved[i]
}

func (s *Server) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}
