package pop3server

import (
	"crypto/tls"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/store"
)

// cleartextOK reports whether a password may travel on this connection:
// over TLS, from a trusted network, or anywhere when the operator allowed
// it (RFC 2595 §2.2, RFC 8314 §4).
func (ss *session) cleartextOK() bool {
	if ss.tls || ss.srv.opts.AllowCleartext {
		return true
	}
	return ss.trusted()
}

func (ss *session) trusted() bool {
	for _, p := range ss.srv.opts.TrustedNets {
		if p.Contains(ss.remote) {
			return true
		}
	}
	return false
}

const errCleartext = "-ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port\r\n"

// RFC 1939 §7 USER. The reply is the same whether or not the user exists.
func (ss *session) cmdUser(c *wire.Command) bool {
	if !ss.cleartextOK() {
		return ss.fail(errCleartext)
	}
	if c.Rest == "" {
		return ss.fail("-ERR missing user name\r\n")
	}
	ss.userArg = c.Rest
	return ss.ok("+OK send PASS\r\n")
}

// RFC 1939 §7 PASS. The whole rest of the line is the password: it may
// hold spaces.
func (ss *session) cmdPass(c *wire.Command) bool {
	if !ss.cleartextOK() {
		return ss.fail(errCleartext)
	}
	if ss.userArg == "" {
		return ss.fail("-ERR send USER first\r\n")
	}
	user := ss.userArg
	ss.userArg = ""
	canonical, ok, err := ss.srv.opts.Authenticator.Authenticate(ss.srv.ctx, user, c.Rest)
	return ss.afterAuth(user, canonical, ok, err, "-ERR [AUTH] invalid user name or password\r\n")
}

// RFC 1939 §7 APOP name digest.
func (ss *session) cmdAPOP(c *wire.Command) bool {
	if !ss.srv.opts.APOP {
		return ss.fail("-ERR APOP not enabled\r\n")
	}
	if len(c.Args) != 2 {
		return ss.fail("-ERR usage: APOP name digest\r\n")
	}
	a := ss.srv.opts.Authenticator.(APOPAuthenticator)
	canonical, ok, err := a.AuthenticateAPOP(ss.srv.ctx, c.Args[0], ss.timestamp, c.Args[1])
	return ss.afterAuth(c.Args[0], canonical, ok, err, "-ERR [AUTH] invalid user name or password\r\n")
}

// afterAuth finishes any login attempt: the failure path (logged for
// fail2ban, delayed, counted) or the maildrop.
func (ss *session) afterAuth(typed, canonical string, ok bool, err error, failure string) bool {
	if err != nil {
		ss.srv.stats.authErrors.Add(1)
		ss.srv.log.Error("authentication backend failed", "session", ss.id, "remote", ss.remote.String(), "err", err)
		return ss.refuse("-ERR [SYS/TEMP] authentication temporarily unavailable\r\n")
	}
	if !ok {
		return ss.authFailed(typed, failure)
	}
	ss.srv.penalties.success(ss.remote, typed)
	return ss.openMaildrop(canonical)
}

// authFailed answers a failed login after the penalty delay. The typed
// user name is logged for fail2ban-style matching
// (`authentication failed .* remote=<HOST>`); the password never is.
func (ss *session) authFailed(typed, reply string) bool {
	ss.authFail++
	ss.srv.stats.authFailures.Add(1)
	lim := &ss.srv.opts.Limits
	delay, banned := ss.srv.penalties.failure(ss.remote, typed, ss.trusted(), lim, time.Now())
	ss.srv.log.Warn("authentication failed", "session", ss.id, "remote", ss.remote.String(), "user", typed, "delay", max(delay, 0).String())
	if banned {
		ss.srv.log.Warn("address banned after repeated authentication failures", "remote", ss.remote.String(), "for", lim.BanDuration.String())
	}
	if !ss.sleep(ss.srv.ctx, delay) {
		ss.endReason = "server closing"
		return false
	}
	ss.reply(reply)
	if ss.authFail >= maxAuthFailures || banned {
		ss.endReason = "too many authentication failures"
		return false
	}
	return ss.badCommand()
}

// openMaildrop locks and snapshots the maildrop of an authenticated user.
func (ss *session) openMaildrop(canonical string) bool {
	ctx := ss.srv.ctx
	if d := ss.srv.opts.Limits.LoginDelay; d > 0 && !ss.srv.loginTimes.allow(canonical, d, time.Now()) {
		ss.srv.log.Info("login too soon", "session", ss.id, "remote", ss.remote.String(), "user", canonical)
		return ss.refuse("-ERR [LOGIN-DELAY] minimum time between logins not yet passed\r\n")
	}
	md, err := ss.srv.opts.Store.Open(ctx, canonical)
	if err != nil {
		if errors.Is(err, store.ErrInUse) {
			ss.srv.stats.inUse.Add(1)
			ss.srv.log.Info("maildrop in use", "session", ss.id, "remote", ss.remote.String(), "user", canonical)
			return ss.refuse("-ERR [IN-USE] maildrop already locked by another session\r\n")
		}
		ss.srv.stats.storeErrors.Add(1)
		ss.srv.log.Error("opening maildrop", "session", ss.id, "remote", ss.remote.String(), "user", canonical, "err", err)
		return ss.refuse("-ERR [SYS/TEMP] unable to open maildrop\r\n")
	}
	ss.srv.stats.logins.Add(1)
	ss.user = canonical
	ss.md = md
	ss.msgs = md.Messages()
	ss.deleted = make([]bool, len(ss.msgs))
	for _, m := range ss.msgs {
		ss.total += m.Size
	}
	ss.state = pop3.StateTransaction
	ss.srv.log.Info("login", "session", ss.id, "remote", ss.remote.String(), "user", canonical, "tls", ss.tls, "messages", len(ss.msgs))
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
		ss.srv.stats.tlsFailures.Add(1)
		ss.srv.log.Info("tls handshake failed", "session", ss.id, "remote", ss.remote.String(), "err", err)
		ss.endReason = "tls handshake failed"
		return false
	}
	tc.SetDeadline(time.Time{})
	ss.conn = tc
	ss.tls = true
	ss.saslConn = nil
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
	ss.reply("+OK capability list follows\r\nTOP\r\n")
	// USER is offered only where it will be honoured (RFC 2595 §2.2).
	if ss.state != pop3.StateAuthorization || ss.cleartextOK() {
		ss.reply("USER\r\n")
	}
	ss.reply("UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if ss.state == pop3.StateAuthorization {
		if !ss.tls && ss.srv.opts.TLSConfig != nil {
			ss.reply("STLS\r\n")
		}
		if names := ss.saslNames(); len(names) > 0 {
			ss.reply("SASL " + strings.Join(names, " ") + "\r\n")
		}
		if ss.srv.opts.UTF8 {
			ss.reply("UTF8 USER\r\n")
		}
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

// RFC 6856 §2 UTF8. postie never downgrades messages or rewrites names,
// so UTF-8 mode changes nothing on the wire; the command only has to be
// answered. RFC 6856 allows it before login only, but classic Outlook
// sends it after login and gives up on -ERR, so TRANSACTION gets +OK too.
func (ss *session) cmdUTF8(c *wire.Command) bool {
	if !ss.srv.opts.UTF8 {
		return ss.fail("-ERR unknown command\r\n")
	}
	if len(c.Args) > 0 {
		return ss.fail("-ERR UTF8 takes no arguments\r\n")
	}
	return ss.ok("+OK UTF8 enabled\r\n")
}
