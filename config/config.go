// Package config owns postie's configuration file: the types, their
// defaults, Load and Validate. It imports nothing else of postie; cmd/postie
// turns a *Config into the Options of the concrete parts.
//
// The file is TOML. Every key is optional and documented, with its default,
// in examples/postie.toml. Unknown keys are an error, so a typo never
// silently leaves a default in place. Durations are strings such as "10m"
// or "30s". Relative paths are resolved against data_dir, and a relative
// data_dir against the directory of the config file.
package config

import (
	"encoding"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration file.
type Config struct {
	// DataDir is the base directory of postie's state; relative paths
	// elsewhere in the file are resolved against it.
	DataDir string  `toml:"data_dir"`
	Log     Log     `toml:"log"`
	POP3    POP3    `toml:"pop3"`
	Storage Storage `toml:"storage"`
	Auth    Auth    `toml:"auth"`
	TLS     TLS     `toml:"tls"`
	Intake  Intake  `toml:"intake"` // see intake.go
	LMTP    LMTP    `toml:"lmtp"`
	SMTP    SMTP    `toml:"smtp"`
	Admin   Admin   `toml:"admin"`  // see admin.go
	Web     Web     `toml:"web"`    // see web.go
	Server  Server  `toml:"server"` // see server.go

	// TrustedProxies are the load balancers (addresses or CIDR
	// prefixes) whose connections start with a PROXY protocol header
	// (v1 or v2) naming the client; the POP3, POP3S, LMTP and SMTP
	// listeners require one from them and refuse one from anyone else
	// (not admin's or web's). Empty: none.
	TrustedProxies []string `toml:"trusted_proxies"`
}

// Log configures the process log (log/slog, on stderr).
type Log struct {
	Level  string `toml:"level"`  // debug, info, warn or error
	Format string `toml:"format"` // text or json
	// TraceUsers and TraceAddresses select the POP3 sessions whose
	// conversation is logged line by line at level debug (credentials
	// and message texts left out): those of these users, and those from
	// these addresses (an address, or a CIDR prefix). postie serve
	// re-reads both on SIGHUP.
	TraceUsers     []string `toml:"trace_users"`
	TraceAddresses []string `toml:"trace_addresses"`
}

// TrustedProxyPrefixes returns TrustedProxies as prefixes, a lone
// address as a prefix of its full length. Entries that do not parse
// (Validate reports them) are left out.
func (c *Config) TrustedProxyPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.TrustedProxies {
		if p, ok := tracePrefix(s); ok && p.Bits() > 0 {
			out = append(out, p)
		}
	}
	return out
}

// TracePrefixes returns TraceAddresses as prefixes, a lone address as a
// prefix of its full length. Entries that do not parse (Validate reports
// them) are left out.
func (l Log) TracePrefixes() []netip.Prefix {
	return prefixes(l.TraceAddresses)
}

// prefixes returns the entries of list that parse (tracePrefix) as
// prefixes, leaving out the others.
func prefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, ok := tracePrefix(s); ok {
			out = append(out, p)
		}
	}
	return out
}

func tracePrefix(s string) (netip.Prefix, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, false
	}
	return p.Masked(), true
}

// POP3 configures the POP3 listeners and the limits of each session.
type POP3 struct {
	// Listen holds host:port addresses; port 0 picks a free port.
	Listen []string `toml:"listen"`
	// ListenTLS holds implicit-TLS (POP3S, RFC 8314) addresses; they
	// need tls.cert_file.
	ListenTLS []string `toml:"listen_tls"`
	// Hostname is named in the greeting; empty means the system's.
	Hostname string `toml:"hostname"`
	// Implementation advertises "IMPLEMENTATION postie <version>" in CAPA.
	Implementation bool `toml:"implementation"`
	// UTF8 offers RFC 6856 UTF-8 mode ("UTF8 USER" in CAPA) and LANG.
	UTF8 bool `toml:"utf8"`
	// UTF8Strict refuses RETR and TOP of a message with UTF-8 in its
	// header ("-ERR [UTF8]", RFC 6856 §2.1 and §5) to a session that has
	// not enabled UTF-8 mode; off, such messages are sent as stored.
	UTF8Strict bool `toml:"utf8_strict"`

	IdleTimeout         Duration `toml:"idle_timeout"`
	AuthTimeout         Duration `toml:"auth_timeout"`
	LoginTimeout        Duration `toml:"login_timeout"`
	WriteTimeout        Duration `toml:"write_timeout"`
	MaxConnections      int      `toml:"max_connections"`
	MaxConnectionsPerIP int      `toml:"max_connections_per_ip"`
	MaxBadCommands      int      `toml:"max_bad_commands"`
	// AuthFailDelay is the wait before a failed login's reply; 0 = none.
	// It doubles with each recent failure, up to AuthFailMaxDelay.
	AuthFailDelay    Duration `toml:"auth_fail_delay"`
	AuthFailMaxDelay Duration `toml:"auth_fail_max_delay"`
	// BanAfter failed logins in a row refuse an address for BanDuration;
	// 0 = never.
	BanAfter    int      `toml:"ban_after"`
	BanDuration Duration `toml:"ban_duration"`
	// AuthChecksPerIP bounds the logins checked at once for one address
	// (an IPv6 /64), each failure holding its place until its delayed
	// reply; AuthQueuePerIP more may wait, and the rest are refused with
	// [SYS/TEMP] at once. Trusted networks are not bounded.
	AuthChecksPerIP int `toml:"auth_checks_per_ip"`
	AuthQueuePerIP  int `toml:"auth_queue_per_ip"`
	// TrustedNetworks (CIDR prefixes) may log in with cleartext
	// passwords and are never banned; empty = loopback only.
	TrustedNetworks []string `toml:"trusted_networks"`
	// AllowCleartext accepts cleartext logins from every address.
	AllowCleartext bool `toml:"allow_cleartext"`
	// LoginDelay is advertised as LOGIN-DELAY in CAPA when non-zero.
	LoginDelay Duration `toml:"login_delay"`
	// Expire is advertised as EXPIRE in CAPA when set, and enforced: a
	// login removes the messages first retrieved that many days ago.
	Expire Expire `toml:"expire"`
	// ExpireUsers are users' own EXPIRE policies, by maildrop name
	// (pop3.expire is then the default, advertised as "EXPIRE n USER"
	// before login).
	ExpireUsers map[string]Expire `toml:"expire_users"`
	// ShutdownGrace is how long SIGTERM waits for sessions to finish.
	ShutdownGrace Duration `toml:"shutdown_grace"`
}

// Storage selects and configures the maildrop store (see storage.go).
type Storage struct {
	Backend     string `toml:"backend"`      // "maildir" or "postgres"
	MaildirRoot string `toml:"maildir_root"` // user U's Maildir is MaildirRoot/U by default
	// MaildirPath is where a user's Maildir is, with Dovecot's variables
	// %u (user), %n (its part before '@'), %d (after '@') and %h (the
	// home field of the passwd-file), relative to MaildirRoot unless
	// absolute. Default "%u".
	MaildirPath string `toml:"maildir_path"`
	// DovecotUIDLFormat is the pop3_uidl_format of the Dovecot whose
	// Maildirs these were: messages listed in a maildrop's
	// dovecot-uidlist keep the UIDL Dovecot gave them. Default
	// "%08Xu%08Xv" (Dovecot 2.x's); "" ignores Dovecot's files.
	DovecotUIDLFormat string `toml:"dovecot_uidl_format"`
	// DovecotControlPath is where that Dovecot kept each user's
	// dovecot-uidlist when not in the Maildir (CONTROL= in its
	// mail_location), with the variables of MaildirPath, relative to
	// MaildirRoot unless absolute. Default "": in the Maildir.
	DovecotControlPath string `toml:"dovecot_control_path"`
	// CourierUIDL answers, for the messages listed in a maildrop's
	// courierpop3dsizelist, the UIDL Courier's POP3 server gave them.
	// Default false: Maildirs that Courier served before postie, whose
	// users have fetched mail from postie under postie's own UIDLs,
	// would switch once.
	CourierUIDL bool `toml:"courier_uidl"`
	// PostgresDSN is the connection string of backend "postgres";
	// PostgresDSNFile names a file holding it instead (kept out of the
	// config file, with its password).
	PostgresDSN     string `toml:"postgres_dsn"`
	PostgresDSNFile string `toml:"postgres_dsn_file"`
	// PostgresMaxConns bounds the connection pool of each node; 0 =
	// pgx's default.
	PostgresMaxConns int `toml:"postgres_max_conns"`
	// PostgresLease is how long a dead node's maildrop locks last.
	PostgresLease Duration `toml:"postgres_lease"`
	// PostgresTimeout bounds each round trip to the database.
	PostgresTimeout Duration `toml:"postgres_timeout"`
}

// Auth configures the user database and the login methods.
type Auth struct {
	// Backend is where the users live: AuthPasswdFile or AuthPostgres.
	Backend string `toml:"backend"`
	// PostgresDSN and PostgresDSNFile name the database of the users
	// with Backend = AuthPostgres; both empty: the store's database.
	PostgresDSN     string   `toml:"postgres_dsn"`
	PostgresDSNFile string   `toml:"postgres_dsn_file"`
	PasswdFile      string   `toml:"passwd_file"`
	CacheTTL        Duration `toml:"cache_ttl"`
	DefaultScheme   string   `toml:"default_scheme"`
	// Mechanisms are the SASL mechanisms AUTH may offer; each is offered
	// only where its backend is configured (see tls.go). The default
	// leaves out the -PLUS forms (DefaultSASLMechanisms).
	Mechanisms []string `toml:"mechanisms"`
	// APOP enables the APOP command (weak; PLAIN-stored users only).
	APOP bool `toml:"apop"`
	// ClientCAFile enables SASL EXTERNAL with TLS client certificates
	// issued by these CAs.
	ClientCAFile string `toml:"client_ca_file"`
	OAuth        OAuth  `toml:"oauth"`
}

// Default returns the configuration used for every key a file leaves out.
// Its relative paths are relative to DataDir; Load and ResolvePaths make
// them absolute.
func Default() *Config {
	c := &Config{
		DataDir: "/var/lib/postie",
		Log:     Log{Level: "info", Format: "text", TraceUsers: []string{}, TraceAddresses: []string{}},
		POP3: POP3{
			Listen:              []string{"127.0.0.1:110"},
			ListenTLS:           []string{},
			Implementation:      true,
			UTF8:                true,
			IdleTimeout:         Duration(10 * time.Minute),
			AuthTimeout:         Duration(60 * time.Second),
			LoginTimeout:        Duration(3 * time.Minute),
			WriteTimeout:        Duration(60 * time.Second),
			MaxConnections:      10000,
			MaxConnectionsPerIP: 50,
			MaxBadCommands:      20,
			AuthFailDelay:       Duration(2 * time.Second),
			AuthFailMaxDelay:    Duration(15 * time.Second),
			BanDuration:         Duration(15 * time.Minute),
			AuthChecksPerIP:     2,
			AuthQueuePerIP:      8,
			TrustedNetworks:     []string{"127.0.0.0/8", "::1/128"},
			ShutdownGrace:       Duration(30 * time.Second),
			ExpireUsers:         map[string]Expire{},
		},
		Storage: Storage{Backend: "maildir", MaildirRoot: "mail", MaildirPath: "%u", DovecotUIDLFormat: "%08Xu%08Xv",
			PostgresLease: Duration(30 * time.Second), PostgresTimeout: Duration(10 * time.Second)},
		Auth: Auth{
			Backend:       AuthPasswdFile,
			PasswdFile:    "passwd",
			CacheTTL:      Duration(10 * time.Minute),
			DefaultScheme: "ARGON2ID",
			Mechanisms:    slices.Clone(DefaultSASLMechanisms),
			OAuth:         OAuth{Audience: []string{}},
		},
		TLS: TLS{Certificates: []Certificate{}},
		Web: Web{Listen: []string{}, TrustedProxies: []string{}},
	}
	c.TrustedProxies = []string{}
	c.setIntakeDefaults()
	return c
}

// Load reads the file at path over the defaults, resolves its paths and
// validates the result. Every error names the file, and the key when one
// is at fault.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := Default()
	if err := Decode("config", path, data, c); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if p := c.problems(); len(p) > 0 {
		return nil, joinProblems("config: "+path+": ", p)
	}
	if err := c.ResolvePaths(filepath.Dir(abs)); err != nil {
		return nil, err
	}
	return c, nil
}

// Decode reads the TOML text data of the file at path into v, as postie
// reads its config files (this package's and fetch's): a key v has no
// field for is an error (an unknown table is named, not its keys), and
// every error starts with prefix and names the file, the line and the key
// when they are known ("config: postie.toml:3: pop3.idle_timeout: ...").
func Decode(prefix, path string, data []byte, v any) error {
	md, err := toml.Decode(string(data), v)
	if err != nil {
		return decodeError(prefix, path, v, err)
	}
	if unknown := unknownKeys(md.Undecoded()); len(unknown) > 0 {
		noun := "key"
		if len(unknown) > 1 {
			noun = "keys"
		}
		return fmt.Errorf("%s: %s: unknown %s: %s", prefix, path, noun, strings.Join(unknown, ", "))
	}
	return nil
}

// decodeError rewrites a TOML error so that it names the file, the line
// and the key, and says in plain words what the key takes (v is what was
// decoded into: the key's type there says it).
func decodeError(prefix, path string, v any, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		key, msg := plainMessage(v, pe.LastKey, pe.Message)
		if key != "" {
			msg = key + ": " + msg
		}
		return fmt.Errorf("%s: %s:%d: %s", prefix, path, pe.Position.Line, msg)
	}
	if m := tomlErrRE.FindStringSubmatch(err.Error()); m != nil {
		key, msg := plainMessage(v, m[2], m[3])
		if m[1] == "" {
			// Some mismatches (a table where a value belongs, under a
			// dotted key) come without a line: the key says where.
			return fmt.Errorf("%s: %s: %s: %s", prefix, path, key, msg)
		}
		return fmt.Errorf("%s: %s:%s: %s: %s", prefix, path, m[1], key, msg)
	}
	return fmt.Errorf("%s: %s: %w", prefix, path, err)
}

// tomlErrRE matches the plain errors of the TOML decoder, such as a type
// mismatch: `toml: line 3 (last key "pop3.max_connections"): ...`, or
// the same without the line.
var tomlErrRE = regexp.MustCompile(`^toml: (?:line (\d+) )?\(last key "([^"]*)"\): (.*)$`)

// The TOML decoder's messages that speak of Go types or its internals.
var (
	incompatibleRE = regexp.MustCompile(`^incompatible types: TOML value has type (.+); destination has type .+$`)
	notTableRE     = regexp.MustCompile(`^type mismatch for .+: expected table but found (.+)$`)
	definedRE      = regexp.MustCompile(`^Key '(.*)' has already been defined\.$`)
	rangeRE        = regexp.MustCompile(`^(\S+) is out of range for \S+$`)
)

// plainMessage words the TOML decoder's message msg about key in plain
// words: what the key takes (from its type in v) and what was found,
// without Go's type names. Messages already plain are kept.
func plainMessage(v any, key, msg string) (string, string) {
	if m := definedRE.FindStringSubmatch(msg); m != nil {
		return m[1], "set twice: a key or table may appear only once"
	}
	if msg == `expected value but found '\n' instead` {
		return key, "expected a value after =, found the end of the line"
	}
	want := expected(v, key)
	if m := incompatibleRE.FindStringSubmatch(msg); m != nil {
		return key, "expected " + want + ", found " + tomlKind(m[1])
	}
	if m := notTableRE.FindStringSubmatch(msg); m != nil {
		return key, "expected " + want + ", found " + tomlKind(m[1])
	}
	if m := rangeRE.FindStringSubmatch(msg); m != nil {
		return key, m[1] + " is out of range: expected " + want
	}
	if msg == "strings cannot contain newlines" {
		return key, "expected the closing quote of the string on the same line"
	}
	// The parser's syntax errors are plain but for Go's quoting.
	return key, syntaxWords.Replace(msg)
}

var syntaxWords = strings.NewReplacer(`'\n'`, "the end of the line", `'\''`, `"'"`, "unexpected EOF", "the file ends too early",
	"EOF", "the end of the file", "expected value", "expected a value")

// tomlKind names the TOML decoder's Go type for a value in TOML's words.
func tomlKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case goType == "bool":
		return "a boolean (true or false)"
	case goType == "int64":
		return "an integer"
	case goType == "float64":
		return "a number with a fraction"
	case strings.HasPrefix(goType, "[]map["):
		return "an array of tables ([[...]])"
	case strings.HasPrefix(goType, "[]"):
		return "a list"
	case strings.HasPrefix(goType, "map["):
		return "a table"
	case strings.Contains(goType, "time.") || strings.Contains(goType, "toml.Local"):
		return "a date or time"
	}
	return "a value of another kind"
}

// describer is a config type that says what its keys take.
type describer interface{ describe() string }

func (Duration) describe() string { return `a duration such as "30s", "10m" or "1h"` }
func (Size) describe() string     { return `a size such as 1048576, "512K" or "50M"` }
func (Expire) describe() string   { return `"", "never" or a number of days` }

var describerType = reflect.TypeFor[describer]()

// expected says in plain words what key (dotted, from the top of v)
// takes, from the type of its field in v: "a list of strings" and the
// like. Keys it cannot follow take "a value of another kind".
func expected(v any, key string) string {
	t := reflect.TypeOf(v)
	parts := strings.Split(key, ".")
	for i, part := range parts {
		t = deref(t)
		if i > 0 && t.Kind() == reflect.Slice {
			t = deref(t.Elem()) // into an array of tables
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := fieldFor(t, part)
			if !ok {
				return "a value of another kind"
			}
			t = f
		case reflect.Map:
			t = t.Elem()
		default:
			return "a value of another kind"
		}
	}
	return describeType(t, key)
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// fieldFor finds the field of struct t that TOML key name decodes into.
func fieldFor(t reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if tag == name || tag == "" && strings.EqualFold(f.Name, name) {
			return f.Type, true
		}
	}
	return nil, false
}

// describeType words what a value of type t is, for key.
func describeType(t reflect.Type, key string) string {
	// The value type, never a pointer: the zero of *Size is nil, and
	// describe is a value method.
	t = deref(t)
	if t.Implements(describerType) {
		return reflect.Zero(t).Interface().(describer).describe()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string in quotes"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		e := deref(t.Elem())
		switch {
		case e.Kind() == reflect.Struct && !reflect.PointerTo(e).Implements(textUnmarshalerType):
			return "an array of tables ([[" + key + "]])"
		case e.Kind() == reflect.String:
			return `a list of strings such as ["a", "b"]`
		}
		return "a list of " + strings.TrimPrefix(describeType(e, key), "a ")
	case reflect.Map:
		return "a table ([" + key + "]) of " + strings.TrimPrefix(describeType(t.Elem(), key+".NAME"), "a ") + " values"
	case reflect.Struct:
		return "a table ([" + key + "])"
	}
	return "a value of another kind"
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// unknownKeys lists undecoded keys, leaving out the children of an unknown
// table (the table itself is reported).
func unknownKeys(keys []toml.Key) []string {
	var out []string
	seen := map[string]bool{}
	for _, k := range keys {
		parent := false
		for i := 1; i < len(k); i++ {
			if seen[k[:i].String()] {
				parent = true
				break
			}
		}
		seen[k.String()] = true
		if !parent {
			out = append(out, k.String())
		}
	}
	return out
}

// ResolvePaths makes DataDir absolute (a relative one is taken relative to
// base, or to the working directory when base is empty) and then resolves
// the other paths against DataDir. Empty paths take their default name.
func (c *Config) ResolvePaths(base string) error {
	if c.DataDir == "" {
		return errors.New("config: data_dir: must not be empty")
	}
	dir := c.DataDir
	if !filepath.IsAbs(dir) && base != "" {
		dir = filepath.Join(base, dir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("config: data_dir: %w", err)
	}
	c.DataDir = dir
	def := Default()
	resolve := func(p *string, name string) {
		if *p == "" {
			*p = name
		}
		if !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
		*p = filepath.Clean(*p)
	}
	resolve(&c.Storage.MaildirRoot, def.Storage.MaildirRoot)
	if c.Storage.PostgresDSNFile != "" {
		resolve(&c.Storage.PostgresDSNFile, "")
	}
	resolve(&c.Auth.PasswdFile, def.Auth.PasswdFile)
	if c.Auth.PostgresDSNFile != "" {
		resolve(&c.Auth.PostgresDSNFile, "")
	}
	c.resolveSecurityPaths(dir)
	c.resolveIntakePaths(dir)
	return nil
}

// Validate checks every value and returns an error naming each key at
// fault, e.g. "config: pop3.idle_timeout: must be at least 10m (RFC 1939)".
func (c *Config) Validate() error {
	return joinProblems("config: ", c.problems())
}

func joinProblems(prefix string, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	errs := make([]error, len(problems))
	for i, p := range problems {
		errs[i] = errors.New(prefix + p)
	}
	return errors.Join(errs...)
}

// MinIdleTimeout is the shortest autologout timer RFC 1939 §3 allows after
// login.
const MinIdleTimeout = 10 * time.Minute

// problems returns "key: what is wrong" for every bad value.
func (c *Config) problems() []string {
	var out []string
	bad := func(key, format string, args ...any) {
		out = append(out, key+": "+fmt.Sprintf(format, args...))
	}

	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	if c.POP3.UTF8Strict && !c.POP3.UTF8 {
		bad("pop3.utf8_strict", "needs pop3.utf8 = true: a client can enable UTF-8 mode only where UTF8 is offered")
	}

	for _, s := range c.TrustedProxies {
		switch p, ok := tracePrefix(s); {
		case !ok:
			bad("trusted_proxies", "%q is not an address or a CIDR prefix such as 192.0.2.0/24", s)
		case p.Bits() == 0:
			bad("trusted_proxies", "%q trusts every address: any client could then claim any address", s)
		}
	}

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.Log.Level)); err != nil {
		bad("log.level", "unknown level %q (use debug, info, warn or error)", c.Log.Level)
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", "unknown format %q (use text or json)", c.Log.Format)
	}
	for _, s := range c.Log.TraceAddresses {
		if _, ok := tracePrefix(s); !ok {
			bad("log.trace_addresses", "%q is not an address or a CIDR prefix such as 192.0.2.0/24", s)
		}
	}
	for _, u := range c.Log.TraceUsers {
		if u == "" || len(u) > 255 {
			bad("log.trace_users", "%q is not a user name", u)
		}
	}

	p := &c.POP3
	if len(p.Listen) == 0 {
		bad("pop3.listen", "needs at least one address")
	}
	for i, addr := range p.Listen {
		if err := checkListen(addr); err != nil {
			bad("pop3.listen", "%q: %v", addr, err)
		} else if slices.Contains(p.Listen[:i], addr) {
			bad("pop3.listen", "%q is listed twice", addr)
		}
	}
	if strings.ContainsFunc(p.Hostname, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("pop3.hostname", "must not contain spaces or control characters")
	}
	if d := p.IdleTimeout.Std(); d < MinIdleTimeout {
		bad("pop3.idle_timeout", "must be at least 10m (RFC 1939), not %v", d)
	}
	if p.AuthTimeout <= 0 {
		bad("pop3.auth_timeout", "must be more than 0s")
	}
	if p.LoginTimeout <= 0 {
		bad("pop3.login_timeout", "must be more than 0s")
	}
	if p.WriteTimeout <= 0 {
		bad("pop3.write_timeout", "must be more than 0s")
	}
	if p.MaxConnections < 1 {
		bad("pop3.max_connections", "must be at least 1")
	}
	if p.MaxConnectionsPerIP < 1 {
		bad("pop3.max_connections_per_ip", "must be at least 1")
	} else if p.MaxConnections >= 1 && p.MaxConnectionsPerIP > p.MaxConnections {
		bad("pop3.max_connections_per_ip", "must not exceed pop3.max_connections (%d)", p.MaxConnections)
	}
	if p.MaxBadCommands < 1 {
		bad("pop3.max_bad_commands", "must be at least 1")
	}
	if p.AuthFailDelay > Duration(time.Minute) {
		bad("pop3.auth_fail_delay", "must be at most 1m")
	}
	if p.AuthFailMaxDelay < p.AuthFailDelay {
		bad("pop3.auth_fail_max_delay", "must be at least pop3.auth_fail_delay (%v)", p.AuthFailDelay.Std())
	} else if p.AuthFailMaxDelay > Duration(5*time.Minute) {
		bad("pop3.auth_fail_max_delay", "must be at most 5m")
	}
	if p.AuthChecksPerIP < 1 {
		bad("pop3.auth_checks_per_ip", "must be at least 1")
	}
	if p.AuthQueuePerIP < 0 {
		bad("pop3.auth_queue_per_ip", "must be 0 (none waits) or more")
	}
	if p.BanAfter < 0 {
		bad("pop3.ban_after", "must be 0 (never) or more")
	}
	if p.BanAfter > 0 && p.BanDuration <= 0 {
		bad("pop3.ban_duration", "must be more than 0s when pop3.ban_after is set")
	}
	for _, n := range p.TrustedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad("pop3.trusted_networks", "%q is not a CIDR prefix such as 192.0.2.0/24 or 2001:db8::/32", n)
		}
	}
	if p.LoginDelay.Std()%time.Second != 0 {
		bad("pop3.login_delay", "must be whole seconds (RFC 2449 LOGIN-DELAY)")
	}
	if _, ok := p.Expire.Days(); !ok && len(p.ExpireUsers) > 0 {
		bad("pop3.expire_users", "needs pop3.expire, the policy of everyone else")
	}
	for _, u := range slices.Sorted(maps.Keys(p.ExpireUsers)) {
		if _, ok := p.ExpireUsers[u].Days(); u == "" || !ok {
			bad("pop3.expire_users", "%q: want a user name and \"never\" or a number of days", u)
		}
	}

	c.storageProblems(bad)
	if c.Auth.DefaultScheme == "" {
		bad("auth.default_scheme", "must not be empty")
	}
	c.authBackendProblems(bad)
	c.securityProblems(bad)
	c.intakeProblems(bad)
	c.adminProblems(bad)
	c.webProblems(bad)
	c.serverProblems(bad)
	return out
}

func checkListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("want host:port, e.g. 127.0.0.1:110 or [::1]:110")
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return errors.New("port must be a number from 0 to 65535")
	}
	return nil
}

// Expire is the EXPIRE policy advertised in CAPA (RFC 2449 §6.7): not
// advertised (""), "never", or a number of days, written as a string or
// an integer.
type Expire struct {
	set  bool
	days int
}

// ExpireNever is the Days value of "never".
const ExpireNever = -1

// ExpireDays returns an Expire of n days, or of "never" when n is
// ExpireNever.
func ExpireDays(n int) Expire { return Expire{set: true, days: n} }

// Days returns the number of days (ExpireNever for "never") and whether
// EXPIRE is advertised at all.
func (e Expire) Days() (days int, ok bool) { return e.days, e.set }

// UnmarshalText parses "", "never" or a number of days.
func (e *Expire) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	switch {
	case s == "":
		*e = Expire{}
	case strings.EqualFold(s, "never"):
		*e = ExpireDays(ExpireNever)
	default:
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fmt.Errorf("invalid expire %q: use \"\", \"never\" or a number of days", s)
		}
		*e = ExpireDays(n)
	}
	return nil
}

// MarshalText writes "", "never" or the number of days.
func (e Expire) MarshalText() ([]byte, error) {
	switch {
	case !e.set:
		return []byte{}, nil
	case e.days == ExpireNever:
		return []byte("never"), nil
	}
	return []byte(strconv.Itoa(e.days)), nil
}
