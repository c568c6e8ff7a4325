package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	// Named conf: the package's tests have a helper named config.
	conf "github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/pop3client"
)

// Config is a fetch configuration file (examples/fetch.toml documents
// every key).
type Config struct {
	// StateDir holds one state file per account (default
	// $XDG_STATE_HOME/postie/fetch, else ~/.local/state/postie/fetch).
	StateDir string `toml:"state_dir"`
	// Interval is the time between two polls of an account in daemon
	// mode (default 5m).
	Interval conf.Duration `toml:"interval"`
	// Timeout bounds every network read and write (default 2m).
	Timeout conf.Duration `toml:"timeout"`
	// Accounts are the [[account]] tables, in file order.
	Accounts []*Account `toml:"account"`

	path string // the file it was loaded from
}

// Account is one [[account]] table: a POP3 mailbox and where its mail goes.
type Account struct {
	Name string `toml:"name"`

	Server    string `toml:"server"`
	Port      int    `toml:"port"`
	TLS       string `toml:"tls"` // implicit | starttls | none
	Insecure  bool   `toml:"insecure"`
	CAFile    string `toml:"ca_file"`
	PinSHA256 string `toml:"pin_sha256"`

	User            string `toml:"user"`
	PasswordFile    string `toml:"password_file"`
	PasswordEnv     string `toml:"password_env"`
	PasswordCommand string `toml:"password_command"`
	TokenCommand    string `toml:"token_command"`
	Auth            string `toml:"auth"`

	// Provider names a preset (providers.go) that fills in the server,
	// port, TLS mode and, for OAuth, the endpoints and scopes; keys set
	// here win over it.
	Provider string `toml:"provider"`
	// The OAuth 2.0 client of the built-in sign-in (`postie fetch login`;
	// oauth.go): the user's own client id, its secret where the provider
	// needs one, the endpoints and the scopes.
	OAuthClientID         string   `toml:"oauth_client_id"`
	OAuthClientSecret     string   `toml:"oauth_client_secret"`
	OAuthClientSecretFile string   `toml:"oauth_client_secret_file"`
	OAuthAuthURL          string   `toml:"oauth_auth_url"`
	OAuthTokenURL         string   `toml:"oauth_token_url"`
	OAuthDeviceURL        string   `toml:"oauth_device_url"`
	OAuthScopes           []string `toml:"oauth_scopes"`

	Maildir       string `toml:"maildir"`
	Mbox          string `toml:"mbox"`
	MDA           string `toml:"mda"`
	LMTP          string `toml:"lmtp"`
	LMTPRecipient string `toml:"lmtp_recipient"`

	Keep              *bool     `toml:"keep"`
	DeleteAfterDays   int       `toml:"delete_after_days"`
	MaxSize           conf.Size `toml:"max_size"`
	Oversize          string    `toml:"oversize"` // skip | delete
	MaxMessagesPerRun int       `toml:"max_messages_per_run"`

	timeout    time.Duration // Config.Timeout
	pin        []byte        // PinSHA256, parsed
	authParams url.Values    // extra authorization request parameters (the preset's)
}

// Defaults.
const (
	DefaultInterval = 5 * time.Minute
	DefaultTimeout  = 2 * time.Minute
)

// Auth mechanisms an account may ask for; "auto" picks the best offered.
var authChoices = []string{"auto", "scram-sha-256", "scram-sha-1", "plain", "login", "user", "apop", "xoauth2", "oauthbearer"}

var accountName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// Load reads and validates a fetch configuration file. Unknown keys and
// bad values are errors naming the key (and the account).
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on the file's contents; path names it in errors and is the
// base of relative paths.
func Parse(path string, data []byte) (*Config, error) {
	c := &Config{}
	if err := conf.Decode("fetch config", path, data, c); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("fetch config: %w", err)
	}
	c.path = abs
	if err := c.finish(filepath.Dir(abs)); err != nil {
		return nil, fmt.Errorf("fetch config: %s: %w", path, err)
	}
	return c, nil
}

// finish applies defaults, resolves paths against base and validates.
func (c *Config) finish(base string) error {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }

	if c.Interval == 0 {
		c.Interval = conf.Duration(DefaultInterval)
	}
	if c.Interval < conf.Duration(time.Second) {
		bad("interval: must be at least 1s, not %v", c.Interval.Std())
	}
	if c.Timeout == 0 {
		c.Timeout = conf.Duration(DefaultTimeout)
	}
	if c.Timeout < 0 {
		bad("timeout: must not be negative")
	}
	if c.StateDir == "" {
		c.StateDir = defaultStateDir()
	}
	c.StateDir = resolve(base, c.StateDir)
	if len(c.Accounts) == 0 {
		bad("no [[account]]")
	}
	seen := map[string]bool{}
	for i, a := range c.Accounts {
		label := fmt.Sprintf("account %d", i+1)
		if a.Name != "" {
			label = fmt.Sprintf("account %q", a.Name)
		}
		for _, p := range a.validate(base, c.Timeout.Std()) {
			bad("%s: %s", label, p)
		}
		if a.Name != "" && seen[strings.ToLower(a.Name)] {
			bad("%s: name: used by another account", label)
		}
		seen[strings.ToLower(a.Name)] = true
	}
	if len(probs) > 0 {
		return errors.New(strings.Join(probs, "; "))
	}
	return nil
}

func (a *Account) validate(base string, timeout time.Duration) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	a.timeout = timeout

	if !accountName.MatchString(a.Name) {
		bad("name: required, 1-64 letters, digits and . _ @ + - (it names the state file)")
	}
	if err := a.applyProvider(); err != nil {
		bad("%v", err)
	}
	if a.Server == "" {
		bad("server: required")
	}
	if a.TLS == "" {
		a.TLS = "implicit"
	}
	switch a.TLS {
	case "implicit", "starttls":
	case "none":
		if !a.Insecure {
			bad(`tls: "none" sends the password in the clear; it needs insecure = true`)
		}
		if a.CAFile != "" || a.PinSHA256 != "" {
			bad(`ca_file, pin_sha256: need TLS, not tls = "none"`)
		}
	default:
		bad(`tls: must be "implicit", "starttls" or "none", not %q`, a.TLS)
	}
	if a.Port == 0 {
		a.Port = 110
		if a.TLS == "implicit" {
			a.Port = 995
		}
	}
	if a.Port < 1 || a.Port > 65535 {
		bad("port: %d is not a TCP port", a.Port)
	}
	if a.CAFile != "" {
		a.CAFile = resolve(base, a.CAFile)
	}
	if a.PinSHA256 != "" {
		if a.CAFile != "" {
			bad("ca_file, pin_sha256: set one, not both (a pin replaces CA verification)")
		}
		pin, err := pop3client.ParseFingerprint(a.PinSHA256)
		if err != nil {
			bad("pin_sha256: %v", err)
		}
		a.pin = pin
	}
	if a.User == "" {
		bad("user: required")
	}
	creds := 0
	for _, s := range []string{a.PasswordFile, a.PasswordEnv, a.PasswordCommand, a.TokenCommand, a.OAuthClientID} {
		if s != "" {
			creds++
		}
	}
	if creds != 1 {
		bad("set exactly one of password_file, password_env, password_command, token_command, oauth_client_id")
	}
	if a.PasswordFile != "" {
		a.PasswordFile = resolve(base, a.PasswordFile)
	}
	if a.Auth == "" {
		a.Auth = "auto"
	}
	a.Auth = strings.ToLower(a.Auth)
	if !slices.Contains(authChoices, a.Auth) {
		bad("auth: must be one of %s, not %q", strings.Join(authChoices, ", "), a.Auth)
	}
	oauth := a.Auth == "xoauth2" || a.Auth == "oauthbearer"
	if a.TokenCommand != "" && a.Auth != "auto" && !oauth {
		bad("auth: %q needs a password, but token_command gives an OAuth2 token (use xoauth2, oauthbearer or auto)", a.Auth)
	}
	if a.TokenCommand == "" && a.OAuthClientID == "" && oauth {
		bad("auth: %q needs token_command or oauth_client_id", a.Auth)
	}
	probs = append(probs, a.validateOAuth(base)...)

	dests := 0
	for _, s := range []string{a.Maildir, a.Mbox, a.MDA, a.LMTP} {
		if s != "" {
			dests++
		}
	}
	if dests != 1 {
		bad("set exactly one destination: maildir, mbox, mda or lmtp")
	}
	if a.Maildir != "" {
		a.Maildir = resolve(base, a.Maildir)
	}
	if a.Mbox != "" {
		a.Mbox = resolve(base, a.Mbox)
	}
	if a.LMTP != "" {
		if p, ok := strings.CutPrefix(a.LMTP, "unix:"); ok {
			a.LMTP = "unix:" + resolve(base, p)
		} else if _, _, err := net.SplitHostPort(a.LMTP); err != nil {
			bad(`lmtp: %q is neither "host:port" nor "unix:/path"`, a.LMTP)
		}
		if a.LMTPRecipient == "" {
			bad("lmtp_recipient: required with lmtp")
		}
	} else if a.LMTPRecipient != "" {
		bad("lmtp_recipient: only with lmtp")
	}

	if a.DeleteAfterDays < 0 {
		bad("delete_after_days: must not be negative")
	}
	if a.DeleteAfterDays > 0 {
		if a.Keep != nil && !*a.Keep {
			bad("delete_after_days: needs keep = true (or keep left out): keep = false deletes right after download")
		}
		t := true
		a.Keep = &t
	}
	if a.MaxSize < 0 {
		bad("max_size: must not be negative")
	}
	if a.Oversize == "" {
		a.Oversize = "skip"
	}
	if a.Oversize != "skip" && a.Oversize != "delete" {
		bad(`oversize: must be "skip" or "delete", not %q`, a.Oversize)
	}
	if a.MaxMessagesPerRun < 0 {
		bad("max_messages_per_run: must not be negative")
	}
	return probs
}

// keep reports whether messages stay on the server after download.
func (a *Account) keep() bool { return a.Keep != nil && *a.Keep }

// Addr is the server's "host:port".
func (a *Account) Addr() string { return net.JoinHostPort(a.Server, strconv.Itoa(a.Port)) }

// Destination describes where the account's mail goes, for messages.
func (a *Account) Destination() string {
	switch {
	case a.Maildir != "":
		return "maildir " + a.Maildir
	case a.Mbox != "":
		return "mbox " + a.Mbox
	case a.MDA != "":
		return "mda " + a.MDA
	}
	return "lmtp " + a.LMTP + " for " + a.LMTPRecipient
}

// Select returns the accounts with the given names (all when names is
// empty), or an error naming one that does not exist.
func (c *Config) Select(names []string) ([]*Account, error) {
	if len(names) == 0 {
		return c.Accounts, nil
	}
	var out []*Account
	for _, n := range names {
		i := slices.IndexFunc(c.Accounts, func(a *Account) bool { return strings.EqualFold(a.Name, n) })
		if i < 0 {
			var all []string
			for _, a := range c.Accounts {
				all = append(all, a.Name)
			}
			return nil, fmt.Errorf("no account %q in %s (accounts: %s)", n, c.path, strings.Join(all, ", "))
		}
		out = append(out, c.Accounts[i])
	}
	return out, nil
}

// Path is the file the configuration was loaded from.
func (c *Config) Path() string { return c.path }

func defaultStateDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "postie", "fetch")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "postie", "fetch")
	}
	return "postie-fetch-state"
}

// resolve expands a leading "~/" and makes p absolute against base.
func resolve(base, p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if h, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(h, rest)
		}
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(base, p)
	}
	return filepath.Clean(p)
}
