package bench

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// Credentials name the accounts a scenario logs in as: N users made from
// patterns in which "%d" stands for First, First+1, …, First+N-1
// ("user%d" and "pass%d": user1/pass1, user2/pass2, …). A pattern without
// "%d" is used as is.
type Credentials struct {
	User, Pass string
	N          int // default 1
	First      int // default 1
}

// ParseUsers reads the "USER_PATTERN:PASS_PATTERN" form of --users.
func ParseUsers(s string, n int) (Credentials, error) {
	u, p, ok := strings.Cut(s, ":")
	if !ok || u == "" {
		return Credentials{}, fmt.Errorf("bench: --users wants USER_PATTERN:PASS_PATTERN (e.g. user%%d:pass%%d), not %q", s)
	}
	if n < 1 {
		return Credentials{}, errors.New("bench: the number of users must be at least 1")
	}
	return Credentials{User: u, Pass: p, N: n, First: 1}, nil
}

func (c Credentials) count() int { return max(c.N, 1) }

// At returns the i-th account, i from 0.
func (c Credentials) At(i int) (user, pass string) {
	first := c.First
	if first == 0 {
		first = 1
	}
	n := strconv.Itoa(first + i%c.count())
	return strings.ReplaceAll(c.User, "%d", n), strings.ReplaceAll(c.Pass, "%d", n)
}

// Options configure a scenario run.
type Options struct {
	// Addr is the server, host:port.
	Addr string
	// TLS is none, STLS or implicit TLS; TLSConfig verifies the server
	// (RootCAs, or InsecureSkipVerify) and is cloned for each connection.
	TLS       pop3client.TLSMode
	TLSConfig *tls.Config
	// Curves, when set, are the key exchanges the client offers (Go's
	// default includes the X25519MLKEM768 hybrid, which servers built on
	// older TLS libraries do not choose).
	Curves []tls.CurveID
	// Resume shares one tls.ClientSessionCache between all connections,
	// so that handshakes after the first are resumed when the server
	// allows it (Result.ResumedRatio says how many were).
	Resume bool
	// AllowInsecureAuth sends passwords without TLS to a server that is
	// not on loopback.
	AllowInsecureAuth bool
	Users             Credentials
	// Timeout bounds each network read or write (default 30s).
	Timeout time.Duration

	// Concurrency is the number of workers (for idle: how many sessions
	// are being opened at once). Defaults depend on the scenario.
	Concurrency int
	// Duration of the sessions, retr and bigretr scenarios (default 5s).
	Duration time.Duration
	// Sessions is how many sessions idle holds open (default 100), and
	// Hold how long after they are all open (default 2s).
	Sessions int
	Hold     time.Duration
	// OpenTimeout, when positive, bounds the time idle spends opening
	// sessions: it then measures with those open so far.
	OpenTimeout time.Duration
	// Rounds is how many logins bigbox makes (default 5).
	Rounds int
	// Message is the message bigretr retrieves, from 1; 0 means the
	// largest.
	Message int

	// ServerPID is the server process whose CPU time (and for idle,
	// memory) is read, with its descendants. 0: the process listening on
	// Addr when it is on this machine; -1: none.
	ServerPID int

	// Name and Label are copied into the Result to tell runs apart: the
	// scenario instance ("sessions-tls-resumed") and the server
	// ("postie", "dovecot").
	Name, Label string
	// Log receives progress lines (nil: none).
	Log io.Writer
}

func (o *Options) defaults(scenario string) error {
	if o.Addr == "" {
		return errors.New("bench: no server address")
	}
	if _, _, err := net.SplitHostPort(o.Addr); err != nil {
		return fmt.Errorf("bench: address %q: %w", o.Addr, err)
	}
	if o.Users.User == "" {
		return errors.New("bench: no user (--user/--pass or --users)")
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		switch scenario {
		case "sessions", "lmtp":
			o.Concurrency = 8
		case "retr":
			o.Concurrency = 4
		case "idle":
			o.Concurrency = 32
		default:
			o.Concurrency = 1
		}
	}
	if o.Sessions <= 0 {
		o.Sessions = 100
	}
	if o.Hold <= 0 {
		o.Hold = 2 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 5
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	return nil
}

// clientOptions returns the pop3client options of every connection; cache
// is the shared session cache when resuming.
func (o *Options) clientOptions(cache tls.ClientSessionCache, dialer pop3client.ContextDialer) *pop3client.Options {
	var cfg *tls.Config
	if o.TLS != pop3client.TLSNone {
		if o.TLSConfig != nil {
			cfg = o.TLSConfig.Clone()
		} else {
			cfg = &tls.Config{}
		}
		cfg.ClientSessionCache = cache
		if o.Curves != nil {
			cfg.CurvePreferences = o.Curves
		}
	}
	return &pop3client.Options{
		TLS:               o.TLS,
		TLSConfig:         cfg,
		Timeout:           o.Timeout,
		Dialer:            dialer,
		AllowInsecureAuth: o.AllowInsecureAuth,
	}
}

// ParseCurves reads a comma-separated list of key exchanges: x25519,
// p256, p384, p521, x25519mlkem768, or "default" (nil: Go's choice).
func ParseCurves(s string) ([]tls.CurveID, error) {
	if s == "" || strings.EqualFold(s, "default") {
		return nil, nil
	}
	names := map[string]tls.CurveID{
		"x25519": tls.X25519, "p256": tls.CurveP256, "p384": tls.CurveP384, "p521": tls.CurveP521,
		"x25519mlkem768": tls.X25519MLKEM768,
	}
	var out []tls.CurveID
	for _, n := range strings.Split(s, ",") {
		id, ok := names[strings.ToLower(strings.TrimSpace(n))]
		if !ok {
			return nil, fmt.Errorf("bench: unknown key exchange %q (x25519, p256, p384, p521, x25519mlkem768)", n)
		}
		out = append(out, id)
	}
	return out, nil
}

// ParseTLSMode reads none, starttls (or stls) and implicit (or tls).
func ParseTLSMode(s string) (pop3client.TLSMode, error) {
	switch strings.ToLower(s) {
	case "", "none", "plain":
		return pop3client.TLSNone, nil
	case "starttls", "stls":
		return pop3client.TLSStartTLS, nil
	case "implicit", "tls", "pop3s":
		return pop3client.TLSImplicit, nil
	}
	return 0, fmt.Errorf("bench: --tls must be none, starttls or implicit, not %q", s)
}
