package pop3server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
)

// trusted reports whether addr is in Options.TrustedNets.
func (s *Server) trusted(addr netip.Addr) bool {
	for _, p := range s.opts.TrustedNets {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// RFC 1939 §7 USER. The reply is the same whether or not the user exists.
func (ss *session) cmdUser(c *wire.Command) error {
	if !ss.conn.cleartext {
		return badCommand(errCleartext)
	}
	if c.Rest == "" {
		return badCommand(errNoUserName)
	}
	ss.auth.userArg = c.Rest
	ss.auth.named = c.Rest
	return ss.ok("+OK " + ss.text(textSendPass) + "\r\n")
}

// RFC 1939 §7 PASS. The whole rest of the line is the password: it may
// hold spaces.
func (ss *session) cmdPass(c *wire.Command) error {
	if !ss.conn.cleartext {
		return badCommand(errCleartext)
	}
	if ss.auth.userArg == "" {
		return badCommand(errSendUserFirst)
	}
	user := ss.auth.userArg
	ss.auth.userArg = ""
	var canonical string
	if err := ss.check(func(ctx context.Context) (err error) {
		var ok bool
		canonical, ok, err = ss.srv.opts.Authenticator.Authenticate(ctx, user, c.Rest)
		return checked(user, ok, err)
	}); err != nil {
		return err
	}
	return ss.openMaildrop(user, canonical)
}

// RFC 1939 §7 APOP name digest.
func (ss *session) cmdAPOP(c *wire.Command) error {
	if !ss.srv.opts.APOP {
		return badCommand(errAPOPDisabled)
	}
	if len(c.Args) != 2 {
		return usage("APOP name digest")
	}
	ss.auth.named = c.Args[0]
	a := ss.srv.opts.Authenticator.(APOPAuthenticator)
	name := c.Args[0]
	var canonical string
	if err := ss.check(func(ctx context.Context) (err error) {
		var ok bool
		canonical, ok, err = a.AuthenticateAPOP(ctx, name, ss.auth.timestamp, c.Args[1])
		return checked(name, ok, err)
	}); err != nil {
		return err
	}
	return ss.openMaildrop(name, canonical)
}

// checked makes the error of a USER/PASS or APOP check: nil when the
// credentials are good, the failure (logged for fail2ban, delayed,
// counted) when they are wrong.
func checked(typed string, ok bool, err error) error {
	if err != nil {
		return failed(opAuthenticate, err)
	}
	if !ok {
		return &authFailure{user: typed, reply: errBadPassword}
	}
	return nil
}

// openMaildrop locks and snapshots the maildrop of an authenticated user,
// who gave the name typed. The failures the login makes good are
// forgotten first (see penalties.success), and LOGIN-DELAY is applied.
func (ss *session) openMaildrop(typed, canonical string) error {
	ctx := ss.srv.ctx
	user := slog.String("user", canonical)
	if !ss.srv.abuse.login(ss.srv, ss.conn.remote, typed, canonical, ss.srv.opts.Limits.LoginDelay, time.Now()) {
		return failed(opOpenMaildrop, errLoginTooSoon, user)
	}
	md, err := ss.srv.opts.Store.Open(ctx, canonical)
	if err != nil {
		return failed(opOpenMaildrop, err, user)
	}
	ss.srv.stats.logins.Add(1)
	ss.auth.user = canonical
	ss.loggedIn.Store(&canonical)
	if !ss.tracing {
		// A session selected by its user is traced from its login.
		ss.traceCheck(nil)
	}
	msgs, index, err := ss.expireAtLogin(md, md.Messages(), user)
	if err != nil {
		md.Close()
		ss.auth.user = ""
		return failed(opOpenMaildrop, err, user)
	}
	ss.drop.md = md
	ss.drop.msgs, ss.drop.index = msgs, index
	ss.drop.deleted = make([]bool, len(ss.drop.msgs))
	for _, m := range ss.drop.msgs {
		ss.drop.total += m.Size
	}
	ss.state = pop3.StateTransaction
	client := ss.auth.method
	if ss.conn.tls {
		client += ", TLS"
	}
	ss.srv.logins.add(canonical, Login{Time: time.Now(), Remote: ss.conn.remote, Via: "pop3", Client: client})
	ss.srv.log.Info("login", "session", ss.id, "remote", ss.conn.remote.String(), "user", canonical, "method", ss.auth.method, "tls", ss.conn.tls, "messages", len(ss.drop.msgs))
	return ss.ok("+OK " + ss.textf(textLoggedIn, strconv.Itoa(len(ss.drop.msgs)), strconv.FormatInt(ss.drop.total, 10)) + "\r\n")
}

// RFC 2595 §4 STLS: only in AUTHORIZATION, only once. Whatever the client
// sent after STLS in the same packet is discarded, never read as commands
// inside TLS (the CVE-2011-0411 class of injection).
func (ss *session) cmdSTLS(c *wire.Command) error {
	cfg := ss.srv.opts.TLSConfig
	switch {
	case len(c.Args) > 0:
		return noArgs("STLS")
	case cfg == nil:
		return badCommand(errNoSTLS)
	case ss.conn.tls:
		return badCommand(errAlreadyTLS)
	}
	ss.reply("+OK " + ss.text(textBeginTLS) + "\r\n")
	if !ss.flush() {
		return errWriteFailed
	}
	if n := ss.conn.br.Buffered(); n > 0 {
		ss.srv.log.Warn("discarding plaintext pipelined after STLS", "session", ss.id, "remote", ss.conn.remote.String(), "bytes", n)
	}
	tc := tls.Server(ss.conn.raw, cfg)
	tc.SetDeadline(time.Now().Add(ss.srv.opts.Limits.AuthTimeout))
	if err := handshake(tc); err != nil {
		ss.srv.stats.tlsFailures.Add(1)
		ss.srv.log.Info("tls handshake failed", "session", ss.id, "remote", ss.conn.remote.String(), "err", err)
		return endSession("tls handshake failed")
	}
	tc.SetDeadline(time.Time{})
	ss.conn.nc = tc
	ss.conn.tls = true
	ss.conn.cleartext = true
	ss.auth.saslConn = nil
	ss.auth.userArg = ""
	ss.conn.w.reset(tc)
	ss.conn.br.Reset(tc)
	ss.bad = 0
	return nil
}

// RFC 1939 §6 QUIT in AUTHORIZATION: nothing to update.
func (ss *session) cmdQuitAuth(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("QUIT")
	}
	ss.reply("+OK " + ss.text(textBye) + "\r\n")
	ss.endReason = "quit"
	return nil
}

// RFC 2449 §5 CAPA, valid in both states.
func (ss *session) cmdCapa(c *wire.Command) error {
	if len(c.Args) > 0 {
		return noArgs("CAPA")
	}
	lim := ss.srv.opts.Limits
	ss.reply("+OK " + ss.text(textCapabilities) + "\r\nTOP\r\n")
	// USER is offered only where it will be honoured (RFC 2595 §2.2).
	if ss.state != pop3.StateAuthorization || ss.conn.cleartext {
		ss.reply("USER\r\n")
	}
	ss.reply("UIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if ss.state == pop3.StateAuthorization {
		if !ss.conn.tls && ss.srv.opts.TLSConfig != nil {
			ss.reply("STLS\r\n")
		}
		if names := ss.saslNames(); len(names) > 0 {
			ss.reply("SASL " + strings.Join(names, " ") + "\r\n")
		}
		if ss.srv.opts.UTF8 {
			ss.reply("UTF8 USER\r\n")
		}
	}
	if ss.srv.opts.UTF8 {
		ss.reply("LANG\r\n") // RFC 6856 §3, in both states
	}
	if lim.LoginDelay > 0 {
		ss.reply("LOGIN-DELAY " + strconv.Itoa(int(lim.LoginDelay/time.Second)) + "\r\n")
	}
	if line := ss.expireCapa(ss.state == pop3.StateAuthorization); line != "" {
		ss.reply(line)
	}
	if impl := ss.srv.opts.Implementation; impl != "" {
		ss.reply("IMPLEMENTATION " + impl + "\r\n")
	}
	return ss.ok(".\r\n")
}

// RFC 6856 §2 UTF8. postie never downgrades messages or rewrites names,
// so UTF-8 mode changes nothing on the wire; the command only has to be
// answered. RFC 6856 allows it in AUTHORIZATION only: after login it is
// refused like USER or PASS. (postie used to answer +OK there, on a
// report that classic Outlook sends UTF8 after login; no evidence of it
// could be found, see docs/dovecot-differences.md.)
func (ss *session) cmdUTF8(c *wire.Command) error {
	if !ss.srv.opts.UTF8 {
		return badCommand(errUnknownCommand)
	}
	if ss.state != pop3.StateAuthorization {
		return badCommand(errAlreadyLoggedIn)
	}
	if len(c.Args) > 0 {
		return noArgs("UTF8")
	}
	ss.utf8 = true
	return ss.ok("+OK " + ss.text(textUTF8Enabled) + "\r\n")
}
