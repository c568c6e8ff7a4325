package config

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Intake configures mail intake ([intake]): what LMTP, SMTP and `postie
// deliver` share (addresses, size limit, quotas, trace headers).
type Intake struct {
	// Hostname is named in LMTP/SMTP greetings and in Received header
	// fields; empty means the system's.
	Hostname string `toml:"hostname"`
	// LocalDomains are the domains whose addresses are delivered here
	// (user@domain → user), matched ASCII case-insensitively. Empty: LMTP
	// and deliver accept any domain; SMTP needs at least one.
	LocalDomains []string `toml:"local_domains"`
	// RecipientDelimiter separates a user from a subaddress
	// (alice+lists@example.org → alice); empty turns subaddressing off.
	RecipientDelimiter string `toml:"recipient_delimiter"`
	// MaxMessageSize is the largest message accepted; 0 = no limit.
	MaxMessageSize Size `toml:"max_message_size"`
	// QuotaBytes and QuotaMessages are every user's quota unless
	// QuotaOverrides says otherwise; 0 = unlimited.
	QuotaBytes    Size `toml:"quota_bytes"`
	QuotaMessages int  `toml:"quota_messages"`
	// QuotaFullTempfail makes an over-quota delivery a temporary failure
	// (LMTP 452 4.2.2, deliver exit 75) instead of a permanent one (552
	// 5.2.2, exit 73).
	QuotaFullTempfail bool `toml:"quota_full_tempfail"`
	// QuotaOverrides holds per-user quotas, by user name.
	QuotaOverrides map[string]QuotaOverride `toml:"quota_overrides"`
}

// QuotaOverride is one user's quota; a field left out keeps the default.
type QuotaOverride struct {
	Bytes    *Size `toml:"bytes"`
	Messages *int  `toml:"messages"`
}

// LMTP configures the LMTP listeners (RFC 2033) an MTA delivers into.
type LMTP struct {
	// Listen holds "host:port" addresses and "unix:/path" sockets.
	Listen []string `toml:"listen"`
	// MaxConnections bounds concurrent LMTP connections.
	MaxConnections int `toml:"max_connections"`
	// SocketMode is the mode of the unix sockets of Listen, in octal
	// (default "0660"): whoever can connect can deliver mail with any
	// sender. SocketGroup (a name or id; default the process's group)
	// owns them and the directory made for them (mode 0750); it should
	// be the MTA's group.
	SocketMode  string `toml:"socket_mode"`
	SocketGroup string `toml:"socket_group"`
	// IdleTimeout bounds the wait for a command outside a transaction
	// (before MAIL).
	IdleTimeout Duration `toml:"idle_timeout"`
}

// Mode returns SocketMode as a file mode (0 if it is not valid, which
// Validate reports).
func (l *LMTP) Mode() os.FileMode {
	m, err := strconv.ParseUint(l.SocketMode, 8, 32)
	if err != nil || m > 0o777 {
		return 0
	}
	return os.FileMode(m)
}

// SMTP configures the optional SMTP intake for local domains. STARTTLS is
// offered when [tls] has a certificate.
type SMTP struct {
	// Listen holds host:port addresses; empty: no SMTP intake.
	Listen []string `toml:"listen"`
	// MaxConnections bounds concurrent SMTP connections.
	MaxConnections int `toml:"max_connections"`
	// MaxConnectionsPerIP bounds those from one address (an IPv6 /64).
	MaxConnectionsPerIP int `toml:"max_connections_per_ip"`
	// IdleTimeout bounds the wait for a command outside a transaction
	// (before MAIL).
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxRecipients bounds the recipients of one message.
	MaxRecipients int `toml:"max_recipients"`
	// RateLimit is the number of messages one client IP address may
	// send per minute, with bursts of RateBurst; 0 = no limit.
	RateLimit int `toml:"rate_limit"`
	RateBurst int `toml:"rate_burst"`
	// UnknownRecipientLimit is the number of unknown recipients one
	// client address may name per minute (in bursts of as many) before
	// every RCPT from it gets 450 4.7.1 for a while; 0 = no limit.
	UnknownRecipientLimit int `toml:"unknown_recipient_limit"`
}

// setIntakeDefaults fills in the defaults of [intake], [lmtp] and [smtp].
func (c *Config) setIntakeDefaults() {
	c.Intake = Intake{
		LocalDomains:       []string{},
		RecipientDelimiter: "+",
		MaxMessageSize:     50 << 20,
		QuotaOverrides:     map[string]QuotaOverride{},
	}
	c.LMTP = LMTP{
		Listen:         []string{"127.0.0.1:24"},
		MaxConnections: 100,
		SocketMode:     "0660",
		IdleTimeout:    Duration(2 * time.Minute),
	}
	c.SMTP = SMTP{
		Listen:                []string{},
		MaxConnections:        100,
		MaxConnectionsPerIP:   10,
		IdleTimeout:           Duration(2 * time.Minute),
		MaxRecipients:         100,
		RateLimit:             30,
		RateBurst:             10,
		UnknownRecipientLimit: 10,
	}
}

// resolveIntakePaths makes relative unix socket paths of lmtp.listen
// absolute, relative to dir.
func (c *Config) resolveIntakePaths(dir string) {
	for i, addr := range c.LMTP.Listen {
		if p, ok := strings.CutPrefix(addr, "unix:"); ok && p != "" {
			if !filepath.IsAbs(p) {
				p = filepath.Join(dir, p)
			}
			c.LMTP.Listen[i] = "unix:" + filepath.Clean(p)
		}
	}
}

// intakeProblems checks [intake], [lmtp] and [smtp].
func (c *Config) intakeProblems(bad func(key, format string, args ...any)) {
	in := &c.Intake
	if strings.ContainsFunc(in.Hostname, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '(' || r == ')' || r == ';' }) {
		bad("intake.hostname", "must be a host name, without spaces or control characters")
	}
	for i, d := range in.LocalDomains {
		if !validDomain(d) {
			bad("intake.local_domains", "%q is not a domain name such as example.org", d)
		} else if slices.ContainsFunc(in.LocalDomains[:i], func(e string) bool { return strings.EqualFold(e, d) }) {
			bad("intake.local_domains", "%q is listed twice", d)
		}
	}
	if d := in.RecipientDelimiter; d != "" && (len(d) != 1 || d[0] <= ' ' || d[0] >= 0x7f || strings.ContainsAny(d, `@"\.`)) {
		bad("intake.recipient_delimiter", "must be one printable ASCII character such as \"+\" or \"-\", or empty, not %q", d)
	}
	if in.QuotaMessages < 0 {
		bad("intake.quota_messages", "must be 0 (unlimited) or more")
	}
	users := make([]string, 0, len(in.QuotaOverrides))
	for user := range in.QuotaOverrides {
		users = append(users, user)
	}
	slices.Sort(users)
	for _, user := range users {
		q := in.QuotaOverrides[user]
		if user == "" || strings.ContainsFunc(user, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '/' }) {
			bad("intake.quota_overrides", "%q is not a user name", user)
		}
		if q.Messages != nil && *q.Messages < 0 {
			bad("intake.quota_overrides."+user+".messages", "must be 0 (unlimited) or more")
		}
	}

	for i, addr := range c.LMTP.Listen {
		if p, ok := strings.CutPrefix(addr, "unix:"); ok {
			if p == "" {
				bad("lmtp.listen", "%q: want unix:/path/to/socket", addr)
			}
		} else if err := checkListen(addr); err != nil {
			bad("lmtp.listen", "%q: %v (or unix:/path/to/socket)", addr, err)
		}
		if slices.Contains(c.LMTP.Listen[:i], addr) && !strings.HasSuffix(addr, ":0") {
			bad("lmtp.listen", "%q is listed twice", addr)
		}
	}
	if c.LMTP.MaxConnections < 1 {
		bad("lmtp.max_connections", "must be at least 1")
	}
	if m := c.LMTP.Mode(); m == 0 {
		bad("lmtp.socket_mode", "%q: want permission bits in octal such as \"0660\"", c.LMTP.SocketMode)
	} else if m&0o600 != 0o600 {
		bad("lmtp.socket_mode", "%q: the owner needs read and write (0600)", c.LMTP.SocketMode)
	}
	if g := c.LMTP.SocketGroup; g != "" && strings.ContainsFunc(g, func(r rune) bool { return r <= ' ' || r == 0x7f || r == ':' }) {
		bad("lmtp.socket_group", "%q is not a group name or id", g)
	}

	s := &c.SMTP
	for i, addr := range s.Listen {
		if err := checkListen(addr); err != nil {
			bad("smtp.listen", "%q: %v", addr, err)
		} else if slices.Contains(s.Listen[:i], addr) && !strings.HasSuffix(addr, ":0") {
			bad("smtp.listen", "%q is listed twice", addr)
		}
	}
	if len(s.Listen) > 0 && len(in.LocalDomains) == 0 {
		bad("intake.local_domains", "needs at least one domain when smtp.listen is set (the SMTP intake accepts mail for local domains only)")
	}
	if s.MaxConnections < 1 {
		bad("smtp.max_connections", "must be at least 1")
	}
	if s.MaxConnectionsPerIP < 1 {
		bad("smtp.max_connections_per_ip", "must be at least 1")
	}
	for _, t := range []struct {
		key string
		d   Duration
	}{{"lmtp.idle_timeout", c.LMTP.IdleTimeout}, {"smtp.idle_timeout", s.IdleTimeout}} {
		if t.d < Duration(time.Second) || t.d > Duration(10*time.Minute) {
			bad(t.key, "must be between 1s and 10m")
		}
	}
	if s.MaxRecipients < 1 {
		bad("smtp.max_recipients", "must be at least 1")
	}
	if s.RateLimit < 0 {
		bad("smtp.rate_limit", "must be 0 (no limit) or more")
	}
	if s.UnknownRecipientLimit < 0 {
		bad("smtp.unknown_recipient_limit", "must be 0 (no limit) or more")
	}
	if s.RateLimit > 0 && s.RateBurst < 1 {
		bad("smtp.rate_burst", "must be at least 1 when smtp.rate_limit is set")
	}
}

// validDomain reports whether d looks like a DNS domain name: labels of
// letters, digits and hyphens, not starting or ending with a hyphen.
func validDomain(d string) bool {
	d = strings.TrimSuffix(d, ".")
	if d == "" || len(d) > 253 {
		return false
	}
	for label := range strings.SplitSeq(d, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
