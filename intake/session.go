package intake

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// session is one LMTP/SMTP connection after its LHLO/EHLO: the verbs of a
// mail transaction (go-smtp handles the rest of the protocol).
type session struct {
	s        *Server
	tc       *trackedConn
	remoteIP string // "" on a unix socket
	ip       netip.Addr
	helo     string
	tls      bool

	// mu guards tx: with BDAT, go-smtp runs Data in a goroutine of its
	// own while the connection reads on (and may see RSET).
	mu sync.Mutex
	tx transaction
}

// transaction is the mail transaction under way.
type transaction struct {
	id       string
	from     string
	sizeHint int64
	rcpts    []rcptEntry
}

// rcptEntry is one accepted RCPT: the address exactly as go-smtp passed it
// (the key of its StatusCollector) and its resolution.
type rcptEntry struct {
	arg  string
	rcpt Recipient
}

var (
	_ smtp.Session     = (*session)(nil)
	_ smtp.LMTPSession = (*session)(nil)
)

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	sess := &session{s: s, tc: tracked(c.Conn()), helo: c.Hostname()}
	if ip := remoteIP(c.Conn()); ip.IsValid() {
		sess.ip, sess.remoteIP = ip, ip.String()
	}
	_, sess.tls = c.TLSConnectionState()
	return sess, nil
}

// smtpErr is a reply of our own.
func smtpErr(code int, ec smtp.EnhancedCode, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
}

// current returns a copy of the transaction under way.
func (ss *session) current() transaction {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	t := ss.tx
	t.rcpts = slices.Clone(t.rcpts)
	return t
}

func (ss *session) envelope(t transaction) Envelope {
	env := Envelope{From: t.from, Helo: ss.helo, RemoteIP: ss.remoteIP, ID: t.id, Proto: "LMTP"}
	if !ss.s.opts.LMTP {
		env.Proto = "ESMTP"
		if ss.tls {
			env.Proto = "ESMTPS" // RFC 3848
		}
	}
	return env
}

// Mail starts a transaction (RFC 5321 §4.1.1.2).
func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	shuttingDown := smtpErr(421, smtp.EnhancedCode{4, 3, 2}, "Server shutting down, try again later")
	if ss.s.isClosing() {
		return shuttingDown
	}
	for i := 0; i < len(from); i++ {
		if c := from[i]; c < 0x20 || c == 0x7f {
			return smtpErr(501, smtp.EnhancedCode{5, 1, 7}, "Bad sender address syntax")
		}
	}
	if ss.s.rate != nil && !ss.s.rate.allow(ss.ip, time.Now()) {
		ss.s.log.Info("rate limited", "proto", ss.s.proto, "remote", ss.remoteIP)
		return smtpErr(450, smtp.EnhancedCode{4, 7, 1}, "Too many messages from your address, try again later")
	}
	// In a transaction from here until Reset: Shutdown lets it finish.
	if !ss.s.setBusy(ss.tc, true) {
		return shuttingDown
	}
	t := transaction{id: NewID(), from: from}
	if opts != nil {
		t.sizeHint = opts.Size
	}
	ss.mu.Lock()
	ss.tx = t
	ss.mu.Unlock()
	return nil
}

// Rcpt resolves a recipient (RFC 5321 §4.1.1.3, RFC 2033 §4.2): unknown
// users and, for SMTP, other domains are refused here, and so is a user
// whose quota is used up already.
func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	t := ss.current()
	d := ss.s.d
	now := time.Now()
	if !ss.s.unknown.left(ss.ip, now) {
		// The same answer whether the user exists or not.
		ss.s.log.Debug("recipient refused", "proto", ss.s.proto, "id", t.id, "result", "too_many_unknown", "remote", ss.remoteIP)
		return smtpErr(450, smtp.EnhancedCode{4, 7, 1}, "Too many unknown recipients from your address, try again later")
	}
	rcpt, err := d.ResolveContext(ss.ctx(), to)
	if err == nil {
		err = d.CheckRecipient(ss.ctx(), rcpt, t.sizeHint)
	}
	if err != nil {
		e := classify(err)
		if e.Kind == KindNoUser {
			ss.s.unknown.allow(ss.ip, now)
		}
		args := []any{"proto", ss.s.proto, "id", t.id, "rcpt", to, "result", e.Kind.String()}
		if rcpt.User != "" {
			args = append(args, "user", rcpt.User)
		}
		if e.Temporary {
			ss.s.log.Warn("recipient refused", append(args, "err", e.Err)...)
		} else {
			ss.s.log.Info("recipient refused", args...)
		}
		return reply(e, ss.s.opts.LMTP)
	}
	ss.mu.Lock()
	ss.tx.rcpts = append(ss.tx.rcpts, rcptEntry{arg: to, rcpt: rcpt})
	ss.mu.Unlock()
	return nil
}

// ctx is the context of the session's deliveries: canceled when the
// server is closed.
func (ss *session) ctx() context.Context { return ss.s.ctx }

// receive spools the message. Its error is the reply for every recipient.
func (ss *session) receive(t transaction, r io.Reader) (*spool, error) {
	sp, err := readSpool(r, ss.s.opts.SpoolDir)
	switch {
	case err == nil:
		return sp, nil
	case errors.Is(err, smtp.ErrTooLongLine):
		ss.s.log.Info("message refused", "proto", ss.s.proto, "id", t.id, "result", "line_too_long")
		return nil, smtpErr(554, smtp.EnhancedCode{5, 6, 0}, "Line too long")
	case errors.Is(err, smtp.ErrDataTooLarge):
		ss.s.log.Info("message refused", "proto", ss.s.proto, "id", t.id, "result", KindTooBig.String())
		return nil, reply(newError(KindTooBig, err), ss.s.opts.LMTP)
	}
	e := classify(err)
	ss.s.log.Warn("receiving a message failed", "proto", ss.s.proto, "id", t.id, "result", e.Kind.String(), "err", err)
	return nil, reply(e, ss.s.opts.LMTP)
}

// message is the spooled message as the Deliverer takes it.
func message(sp *spool) Message {
	return Message{Body: sp.reader(), Size: sp.size, EOL: lineEnding(sp.head(), "\r\n")}
}

// copies groups the recipients of a transaction by user, in the order of
// their first RCPT: one copy per user however many of its addresses were
// named (alice, alice+lists, Alice@…), so that one transaction cannot
// store a message many times in one maildrop, nor take more of its quota
// than one message. The copy's Delivered-To is the first address; the
// log line of the delivery names them all. rcpts[i] is delivered as
// copies[of[i]].
func copies(rcpts []rcptEntry) (out []Recipient, of []int) {
	idx := map[string]int{}
	of = make([]int, len(rcpts))
	for i, e := range rcpts {
		j, ok := idx[e.rcpt.User]
		if !ok {
			j = len(out)
			idx[e.rcpt.User] = j
			r := e.rcpt
			r.also = nil
			out = append(out, r)
		} else if c := &out[j]; e.rcpt.Address != c.Address && !slices.Contains(c.also, e.rcpt.Address) {
			c.also = append(c.also, e.rcpt.Address)
		}
		of[i] = j
	}
	return out, of
}

// LMTPData delivers to each user in turn and sets the status of each
// recipient (RFC 2033 §4.2: one reply per accepted RCPT, in order): 250
// once the copy is on disk. Recipients that name the same user share its
// one copy and its status.
func (ss *session) LMTPData(r io.Reader, status smtp.StatusCollector) error {
	t := ss.current()
	sp, err := ss.receive(t, r)
	if err != nil {
		return err
	}
	defer sp.Close()
	env := ss.envelope(t)
	users, of := copies(t.rcpts)
	res := make([]*smtp.SMTPError, len(users))
	for i, e := range t.rcpts {
		j := of[i]
		if res[j] == nil {
			res[j] = smtpErr(250, smtp.EnhancedCode{2, 0, 0}, "Delivered")
			if _, err := ss.s.d.Deliver(ss.ctx(), env, users[j], message(sp)); err != nil {
				res[j] = reply(err, true)
			}
		}
		status.SetStatus(e.arg, res[j])
	}
	return nil
}

// Data (SMTP) has one reply for all recipients (RFC 5321 §4.1.1.4). Each
// user gets one copy, whose quota is checked before anything is written:
// when all fail, their first failure is the reply; when only some are over
// quota, they get the message anyway (a quota is never enforced by
// dropping mail). A failed write after others succeeded gives a 4xx: the
// sender retries, and the users done already get a duplicate rather than
// anyone losing the message.
func (ss *session) Data(r io.Reader) error {
	t := ss.current()
	sp, err := ss.receive(t, r)
	if err != nil {
		return err
	}
	defer sp.Close()
	d := ss.s.d
	users, _ := copies(t.rcpts)
	var firstErr error
	var over []string
	for _, u := range users {
		if _, err := d.checkQuota(ss.ctx(), u.User, sp.size); err != nil {
			if ce := classify(err); ce.Temporary && ce.Kind != KindOverQuota {
				return reply(err, false)
			}
			if firstErr == nil {
				firstErr = err
			}
			over = append(over, u.User)
		}
	}
	if len(over) == len(users) && firstErr != nil {
		ss.s.log.Info("message refused", "proto", ss.s.proto, "id", t.id, "result", classify(firstErr).Kind.String(), "size", sp.size)
		return reply(firstErr, false)
	}
	if len(over) > 0 {
		ss.s.log.Warn("delivering over quota: SMTP cannot refuse some recipients after DATA", "proto", ss.s.proto, "id", t.id, "users", over)
	}
	env := ss.envelope(t)
	for i, u := range users {
		// The quota was decided above, once for each copy.
		if _, err := d.deliverLogged(ss.ctx(), env, u, message(sp), decidedQuota); err != nil {
			if i > 0 && !classify(err).Temporary {
				// Too late to refuse the message for good.
				return smtpErr(451, smtp.EnhancedCode{4, 3, 0}, "Temporary local problem, try again later")
			}
			return reply(err, false)
		}
	}
	return smtpErr(250, smtp.EnhancedCode{2, 0, 0}, "Delivered")
}

// Reset ends the transaction (after DATA's replies, RSET, or a new
// LHLO/EHLO).
func (ss *session) Reset() {
	ss.mu.Lock()
	ss.tx = transaction{}
	ss.mu.Unlock()
	ss.s.setBusy(ss.tc, false)
}

// Logout ends the session.
func (ss *session) Logout() error {
	ss.s.setBusy(ss.tc, false)
	return nil
}
