// Package web is postie's HTTP front end for users: the documents mail
// clients configure themselves from (Thunderbird's autoconfig, Outlook's
// POX autodiscover, an Apple configuration profile) and the account page,
// where users log in with their mailbox password, change it, and see their
// mailbox and their last logins.
//
// It knows no configuration file: cmd/postie derives Options from the
// running config (the mail host, the POP3 ports) and hands it the login
// checker of the POP3 engine, so that a login here is bounded, delayed and
// counted exactly as a POP3 login from the same address, and the user
// database's password setter. Sessions live in memory, server side; the
// pages use no JavaScript at all.
package web

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/postie-mail/postie/pop3server"
)

// LoginChecker checks mailbox passwords; *pop3server.Server implements it
// (see pop3server.Server.CheckPassword).
type LoginChecker interface {
	CheckPassword(ctx context.Context, remote netip.Addr, via, user, password string) (canonical string, err error)
	CheckPasswordWith(ctx context.Context, authn pop3server.Authenticator, remote netip.Addr, via, user, password string) (canonical string, err error)
	RecordLogin(user string, l pop3server.Login)
	RecentLogins(user string) []pop3server.Login
}

// PasswordSetter stores a new password, hashed in scheme, in the user
// backend; *auth.DB implements it. A running server must see it at once.
type PasswordSetter interface {
	SetPassword(user, password, scheme string) error
}

// Mailbox is what the account page shows of a user's maildrop.
type Mailbox struct {
	Messages int
	Bytes    int64
	// QuotaBytes and QuotaMessages are the user's quota; 0 = unlimited.
	QuotaBytes    int64
	QuotaMessages int
}

// MailServer describes the POP3 service clients are configured for.
type MailServer struct {
	// Host is the name clients connect to (it must match the
	// certificate).
	Host string
	// POP3S are the implicit-TLS ports (RFC 8314), preferred; STLS the
	// plain ports that offer STLS (RFC 2595). Either may be empty.
	POP3S, STLS []int
	// Domains are the mail domains served (intake.local_domains); empty
	// means any domain asked for.
	Domains []string
	// Expire is the server's EXPIRE policy: days (ExpireNever for
	// never) when ExpireSet.
	ExpireSet  bool
	ExpireDays int
	// LoginDelay is the server's LOGIN-DELAY, 0 for none.
	LoginDelay time.Duration
}

// ExpireNever is MailServer.ExpireDays for "never".
const ExpireNever = -1

// Options configure a Handler.
type Options struct {
	Logger *slog.Logger // default slog.Default()
	Mail   MailServer
	// Logins checks passwords and tells the last logins; required.
	Logins LoginChecker
	// Passwords stores changed passwords in Scheme; nil turns the
	// password form off.
	Passwords PasswordSetter
	Scheme    string
	// Mailbox tells a user's mailbox figures; nil shows none.
	Mailbox func(ctx context.Context, user string) (Mailbox, error)
	// BehindTLSProxy: requests come through a TLS-terminating proxy.
	// X-Forwarded-For and X-Forwarded-Proto are believed only from
	// TrustedProxies.
	BehindTLSProxy bool
	TrustedProxies []netip.Prefix
	// Admin turns on /admin; nil: off.
	Admin *Admin
}

// Handler serves the pages and documents.
type Handler struct {
	opts     Options
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	cop      *http.CrossOriginProtection
}

// New returns the Handler of opts.
func New(opts Options) (*Handler, error) {
	if opts.Logins == nil {
		return nil, errors.New("web: Options.Logins is required")
	}
	if opts.Mail.Host == "" {
		return nil, errors.New("web: Options.Mail.Host is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	h := &Handler{
		opts:     opts,
		log:      opts.Logger,
		mux:      http.NewServeMux(),
		sessions: newSessions(),
		cop:      http.NewCrossOriginProtection(),
	}
	h.cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.log.Warn("web: cross-origin request refused", "remote", h.clientAddr(r).String(), "path", r.URL.Path,
			"origin", clip(r.Header.Get("Origin")), "sec_fetch_site", clip(r.Header.Get("Sec-Fetch-Site")))
		http.Error(w, "Cross-origin request refused.", http.StatusForbidden)
	}))
	h.routes()
	return h, nil
}

// ServeHTTP sets the security headers of every response and dispatches.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if _, secure := h.transport(r); secure {
		hd.Set("Strict-Transport-Security", "max-age=31536000")
	}
	h.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows nothing but the style sheet, forms posted
// to this origin and no framing: the pages have no script at all.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
	})
	m.HandleFunc("GET /.well-known/autoconfig/mail/config-v1.1.xml", h.thunderbird)
	m.HandleFunc("GET /mail/config-v1.1.xml", h.thunderbird)
	m.HandleFunc("POST /autodiscover/autodiscover.xml", h.autodiscover)
	m.HandleFunc("POST /Autodiscover/Autodiscover.xml", h.autodiscover)
	m.HandleFunc("GET /mobileconfig", h.mobileconfig)
	m.HandleFunc("GET /static/style.css", serveStyle)
	m.HandleFunc("GET /account", h.account)
	m.Handle("POST /account/login", h.cop.Handler(http.HandlerFunc(h.login)))
	m.Handle("POST /account/password", h.cop.Handler(http.HandlerFunc(h.password)))
	m.Handle("POST /account/logout", h.cop.Handler(http.HandlerFunc(h.logout)))
	h.adminRoutes()
}

// transport tells who the client is and whether it reached us over TLS:
// the peer and r.TLS, or, through a trusted proxy, what X-Forwarded-For
// and X-Forwarded-Proto say.
func (h *Handler) transport(r *http.Request) (client netip.Addr, secure bool) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, r.TLS != nil
	}
	peer := ap.Addr().Unmap()
	if !h.opts.BehindTLSProxy || !h.trustedProxy(peer) {
		return peer, r.TLS != nil
	}
	client = peer
	// The rightmost address not of a trusted proxy is the client: the
	// ones left of it are whatever the client wrote.
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		client = a.Unmap()
		if !h.trustedProxy(client) {
			break
		}
	}
	protos := strings.Split(strings.Join(r.Header.Values("X-Forwarded-Proto"), ","), ",")
	secure = strings.EqualFold(strings.TrimSpace(protos[len(protos)-1]), "https")
	return client, secure
}

func (h *Handler) trustedProxy(a netip.Addr) bool {
	for _, p := range h.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the client's address (see transport).
func (h *Handler) clientAddr(r *http.Request) netip.Addr {
	a, _ := h.transport(r)
	return a
}

// private reports whether r may reach the account pages: over TLS, or
// over plain HTTP straight from loopback (no proxy in between).
func (h *Handler) private(r *http.Request) (secure, ok bool) {
	client, secure := h.transport(r)
	if secure {
		return true, true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false, false
	}
	peer := ap.Addr().Unmap()
	viaProxy := h.opts.BehindTLSProxy && h.trustedProxy(peer)
	return false, !viaProxy && peer.IsLoopback() && client.IsLoopback()
}

// clip bounds a client-given value for the log.
func clip(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 100 {
		s = s[:100]
	}
	return s
}

// Serve serves h on ln in a goroutine and returns the server, for
// Shutdown. slowest is the longest a reply may take to be due (the
// longest login failure delay): responses may be written for that long
// and 30 seconds more.
func Serve(ln net.Listener, h http.Handler, slowest time.Duration, log *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      slowest + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("web listener failed", "err", err)
		}
	}()
	return srv
}
