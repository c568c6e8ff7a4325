package pop3server

import (
	"crypto/tls"
	"errors"
	"strconv"
	"time"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/store"
)

// RFC 1939 §7 USER. The reply is the same whether or not the user exists.
func (ss *session) cmdUser(c *wire.Command) bool {
	if c.Rest == "" {
		return ss.fail("-ERR missing user name\r\n")
	}
	ss.userArg = c.Rest
	return ss.ok("+OK send PASS\r\n")
}

// RFC 1939 §7 PASS. The whole rest of the line is the password: it may
// hold spaces.
func (ss *session) cmdPass(c *wire.Command) bool {
	if ss.userArg == "" {
		return ss.fail("-ERR send USER first\r\n")
	}
	user := ss.userArg
	ss.userArg = ""
	return ss.login(user, c.Rest)
}

// login checks credentials, then locks and snapshots the maildrop.
func (ss *session) login(user, password string) bool {
	ctx := ss.srv.ctx
	lim := ss.srv.opts.Limits
	canonical, ok, err := ss.srv.opts.Authenticator.Authenticate(ctx, user, password)
	if err != nil {
		ss.srv.log.Error("authentication backend failed", "session", ss.id, "remote", ss.remote.String(), "err", err)
		return ss.refuse("-ERR [SYS/TEMP] authentication temporarily unavailable\r\n")
	}
	if !ok {
		ss.authFail++
		// The user name as typed is logged for fail2ban-style matching;
		// the password never is.
		ss.srv.log.Warn("authentication failed", "session", ss.id, "remote", ss.remote.String(), "user", user)
		if !ss.sleep(ctx, lim.AuthFailDelay) {
			ss.endReason = "server closing"
			return false
		}
		ss.reply("-ERR [AUTH] invalid user name or password\r\n")
		if ss.authFail >= maxAuthFailures {
			ss.endReason = "too many authentication failures"
			return false
		}
		return ss.badCommand()
	}
	md, err := ss.srv.opts.Store.Open(ctx, canonical)
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			ss.srv.log.Info("maildrop in use", "session", ss.id, "remote", ss.remote.String(), "user", canonical)
			return ss.refuse("-ERR [IN-USE] maildrop already locked by another session\r\n")
		}
		ss.srv.log.Error("opening maildrop", "session", ss.id, "remote", ss.remote.String(), "user", canonical, "err", err)
		return ss.refuse("-ERR [SYS/TEMP] unable to open maildrop\r\n")
	}
	ss.user = canonical
	ss.md = md
	ss.msgs = md.Messages()
	ss.deleted = make([]bool, len(ss.msgs))
	for _, m := range ss.msgs {
		ss.total += m.Size
	}
	ss.state = pop3.StateTransaction
	ss.srv.log.Info("login", "session", ss.id, "remote", ss.remote.String(), "user", canonical, "messages", len(ss.msgs))
	return ss.ok("+OK logged in, " + strconv.Itoa(len(ss.msgs)) + " messages (" + strconv.FormatInt(ss.total, 10) + " octets)\r\n")
}

// RFC 2595 §4 STLS: only in AUTHORIZATION, only once. Whatever the client
// sent after STLS in the same packet is discarded, never read as commands
// inside TLS (the CVE-2011-0411 class of injection).
func (ss *session) cmdSTLS(c *wire.Command) bool {
	cfg := ss.srv.opts.TLSConfig
	switch {
	case len(c.Args) > 0:
		return ss.fail("-ERR STLS takes no arguments\r\n")
	case cfg == nil:
		return ss.fail("-ERR STLS not available\r\n")
	case ss.tls:
		return ss.fail("-ERR already using TLS\r\n")
	}
	ss.reply("+OK begin TLS negotiation\r\n")
	if !ss.flush() {
		return false
	}
	if n := ss.br.Buffered(); n > 0 {
		ss.srv.log.Warn("discarding plaintext pipelined after STLS", "session", ss.id, "remote", ss.remote.String(), "bytes", n)
	}
	tc := tls.Server(ss.raw, cfg)
	tc.SetDeadline(time.Now().Add(ss.srv.opts.Limits.AuthTimeout))
	if err := tc.HandshakeContext(ss.srv.ctx); err != nil {
		ss.srv.log.Info("tls handshake failed", "session", ss.id, "remote", ss.remote.String(), "err", err)
		ss.endReason = "tls handshake failed"
		return false
	}
	tc.SetDeadline(time.Time{})
	ss.conn = tc
	ss.tls = true
	ss.userArg = ""
	ss.dw.c = tc
	ss.br.Reset(tc)
	ss.bw.Reset(&ss.dw)
	ss.bad = 0
	return true
}

// RFC 1939 §6 QUIT in AUTHORIZATION: nothing to update.
func (ss *session) cmdQuitAuth(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR QUIT takes no arguments\r\n")
	}
	ss.reply("+OK bye\r\n")
	ss.endReason = "quit"
	return false
}

// RFC 2449 §5 CAPA, valid in both states.
func (ss *session) cmdCapa(c *wire.Command) bool {
	if len(c.Args) > 0 {
		return ss.fail("-ERR CAPA takes no arguments\r\n")
	}
	lim := ss.srv.opts.Limits
	ss.reply("+OK capability list follows\r\nTOP\r\nUSER\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if ss.state == pop3.StateAuthorization && !ss.tls && ss.srv.opts.TLSConfig != nil {
		ss.reply("STLS\r\n")
	}
	if lim.LoginDelay > 0 {
		ss.reply("LOGIN-DELAY " + strconv.Itoa(int(lim.LoginDelay/time.Second)) + "\r\n")
	}
	if lim.Expire != nil {
		if *lim.Expire < 0 {
			ss.reply("EXPIRE NEVER\r\n")
		} else {
			ss.reply("EXPIRE " + strconv.Itoa(*lim.Expire) + "\r\n")
		}
	}
	if impl := ss.srv.opts.Implementation; impl != "" {
		ss.reply("IMPLEMENTATION " + impl + "\r\n")
	}
	return ss.ok(".\r\n")
}
