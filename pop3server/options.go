package pop3server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/postie-mail/postie/sasl"
	"github.com/postie-mail/postie/store"
)

// Authenticator checks credentials. The server never learns whether a user
// exists: a wrong password and an unknown user are both ok == false.
type Authenticator interface {
	// Authenticate checks user and password. It returns the canonical
	// user name (the maildrop to open) and ok == true on success,
	// ok == false when the credentials are wrong, and a non-nil error
	// only for system trouble (the client is then told [SYS/TEMP]).
	Authenticate(ctx context.Context, user, password string) (canonical string, ok bool, err error)
}

// APOPAuthenticator checks an APOP digest: the hex MD5 of the greeting's
// timestamp followed by the user's plaintext-equivalent secret (RFC 1939
// §7). ok is false for a wrong digest, an unknown user, or a user whose
// stored password cannot serve APOP.
type APOPAuthenticator interface {
	AuthenticateAPOP(ctx context.Context, user, timestamp, digest string) (canonical string, ok bool, err error)
}

// AuthenticatorFunc adapts a function to Authenticator.
type AuthenticatorFunc func(ctx context.Context, user, password string) (string, bool, error)

// Authenticate calls f.
func (f AuthenticatorFunc) Authenticate(ctx context.Context, user, password string) (string, bool, error) {
	return f(ctx, user, password)
}

// Limits bound what one client can cost the server. Zero values take the
// defaults given with each field.
type Limits struct {
	// MaxConns caps concurrent connections (default 10000). Connections
	// over the cap are greeted with -ERR [SYS/TEMP] and closed.
	MaxConns int
	// MaxConnsPerIP caps concurrent connections from one address, an
	// IPv6 /64 counting as one (default 50).
	MaxConnsPerIP int
	// IdleTimeout is the autologout timer after login (default 10m; RFC
	// 1939 §3 asks for at least 10 minutes).
	IdleTimeout time.Duration
	// AuthTimeout is the idle timeout before login (default 60s).
	AuthTimeout time.Duration
	// LoginTimeout bounds the whole AUTHORIZATION state, from the
	// connection to a successful login (default 3m), so that a client
	// sending a command now and then cannot hold a connection without
	// ever logging in.
	LoginTimeout time.Duration
	// WriteTimeout bounds each write to a client that does not read
	// (default 60s).
	WriteTimeout time.Duration
	// MaxBadCommands is how many bad commands in a row close the
	// connection (default 20 after login; before login at most 10).
	MaxBadCommands int
	// AuthFailDelay is how long a failed login waits before its reply
	// (default 2s; negative means none, for tests).
	AuthFailDelay time.Duration
	// MaxAuthFailDelay caps the failure delay, which doubles with each
	// recent failure from the same address or for the same user (default
	// 15s).
	MaxAuthFailDelay time.Duration
	// BanAfter, when positive, refuses connections from an address for
	// BanDuration (default 15m) once it has failed this many logins in a
	// row. Trusted networks are never banned.
	BanAfter    int
	BanDuration time.Duration
	// MaxAuthChecksPerIP caps the logins being checked at once for one
	// address, an IPv6 /64 counting as one (default 2). A failed login
	// holds its place until its delayed reply is due, so one address
	// makes at most this many guesses per failure delay, however many
	// connections it opens. Trusted networks are not capped.
	MaxAuthChecksPerIP int
	// MaxAuthQueuePerIP is how many more logins from the address wait
	// for a place (default 8; negative means none); beyond it a login is
	// refused at once with -ERR [SYS/TEMP], unchecked.
	MaxAuthQueuePerIP int
	// LoginDelay, when set, is advertised as LOGIN-DELAY in CAPA and
	// enforced: a user logging in again sooner is refused with
	// [LOGIN-DELAY] (RFC 2449 §6.8, §8.1.2).
	LoginDelay time.Duration
	// Expire, when non-nil, is the EXPIRE policy (RFC 2449 §6.7),
	// advertised in CAPA and enforced: days, or -1 for NEVER. With a
	// number of days, Store's maildrops must implement store.Expirer: a
	// login first removes the messages retrieved that many days ago or
	// more, and with 0 QUIT also removes the messages retrieved in the
	// session (see expire.go).
	Expire *int
}

// Options configure a Server. Store and Authenticator are required.
type Options struct {
	Logger        *slog.Logger // default slog.Default()
	Store         store.Store
	Authenticator Authenticator
	// TLSConfig enables STLS when non-nil (implicit TLS is the caller
	// wrapping the listener with tls.NewListener).
	TLSConfig *tls.Config
	// SASL enables AUTH (RFC 5034) with the mechanisms it offers.
	SASL *sasl.Config
	// APOP enables the APOP command (RFC 1939 §7); Authenticator must
	// then implement APOPAuthenticator. APOP is weak (MD5 over a
	// plaintext-equivalent secret): off unless the operator needs it.
	APOP bool
	// TrustedNets are the networks from which cleartext logins (USER/PASS,
	// AUTH PLAIN/LOGIN without TLS) are accepted, and whose failed logins
	// are never penalised beyond AuthFailDelay. Nil means loopback only.
	TrustedNets []netip.Prefix
	// AllowCleartext accepts cleartext logins from anywhere (insecure:
	// for networks protected by other means).
	AllowCleartext bool
	// ClientCertUser maps a verified TLS client certificate to a user for
	// SASL EXTERNAL; nil disables EXTERNAL.
	ClientCertUser func(cs *tls.ConnectionState) string
	// Hostname appears in the greeting (default "postie").
	Hostname string
	// Implementation is the IMPLEMENTATION capability; empty hides it.
	Implementation string
	// UTF8 offers RFC 6856: "UTF8 USER" in CAPA before login and the
	// UTF8 command, and LANG (in both states). Names and passwords are passed on as the UTF-8 bytes
	// the client sent, whether or not it enabled UTF-8 mode.
	UTF8 bool
	// UTF8Strict (with UTF8) answers RETR and TOP of a message whose
	// header holds octets outside ASCII (RFC 6532 header fields) with
	// "-ERR [UTF8]" in a session that has not enabled UTF-8 mode, as RFC
	// 6856 §2.1 and §5 allow; otherwise messages are sent as stored.
	UTF8Strict bool
	Limits     Limits
	// ExpireFor, when set (and Limits.Expire too), gives a user's own
	// EXPIRE policy (days, or -1 for NEVER), ok false for the default
	// Limits.Expire. CAPA then says "EXPIRE <default> USER" before login
	// and the user's value after (RFC 2449 §6.7).
	ExpireFor func(user string) (days int, ok bool)
	// Now is the clock of EXPIRE (default time.Now), for tests.
	Now func() time.Time
	// Abuse, when set, keeps the login failures, bans and LOGIN-DELAY
	// clock shared with other servers (see AbuseStore); nil keeps them
	// in this server's memory.
	Abuse AbuseStore
	// Trace, when set, selects sessions whose conversation is logged at
	// slog.LevelDebug, without credentials or message texts; it may be
	// changed while the server runs.
	Trace *Trace
}

func (o *Options) setDefaults() error {
	if o.Store == nil {
		return errors.New("pop3server: Options.Store is required")
	}
	if o.Authenticator == nil {
		return errors.New("pop3server: Options.Authenticator is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Hostname == "" {
		o.Hostname = "postie"
	}
	l := &o.Limits
	if l.MaxConns <= 0 {
		l.MaxConns = 10000
	}
	if l.MaxConnsPerIP <= 0 {
		l.MaxConnsPerIP = 50
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 10 * time.Minute
	}
	if l.AuthTimeout <= 0 {
		l.AuthTimeout = 60 * time.Second
	}
	if l.LoginTimeout <= 0 {
		l.LoginTimeout = 3 * time.Minute
	}
	if l.WriteTimeout <= 0 {
		l.WriteTimeout = 60 * time.Second
	}
	if l.MaxBadCommands <= 0 {
		l.MaxBadCommands = 20
	}
	if l.AuthFailDelay == 0 {
		l.AuthFailDelay = 2 * time.Second
	}
	if l.MaxAuthFailDelay <= 0 {
		l.MaxAuthFailDelay = 15 * time.Second
	}
	if l.BanDuration <= 0 {
		l.BanDuration = 15 * time.Minute
	}
	if l.MaxAuthChecksPerIP <= 0 {
		l.MaxAuthChecksPerIP = 2
	}
	switch {
	case l.MaxAuthQueuePerIP == 0:
		l.MaxAuthQueuePerIP = 8
	case l.MaxAuthQueuePerIP < 0:
		l.MaxAuthQueuePerIP = 0
	}
	if o.TrustedNets == nil {
		o.TrustedNets = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if o.APOP {
		if _, ok := o.Authenticator.(APOPAuthenticator); !ok {
			return errors.New("pop3server: Options.APOP needs an Authenticator that implements APOPAuthenticator")
		}
	}
	return nil
}
