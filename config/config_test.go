package config

import (
	"encoding"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// load writes body to a file in a temporary directory and loads it.
func load(t *testing.T, body string) (*Config, string, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "postie.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	return c, dir, err
}

func wantErr(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("error %q does not contain %q", err, p)
		}
	}
}

func TestDefaults(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	c, _, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Storage.MaildirRoot = "/var/lib/postie/mail"
	want.Auth.PasswdFile = "/var/lib/postie/passwd"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Load(empty file) =\n%+v\nwant\n%+v", c, want)
	}
	p := c.POP3
	if p.IdleTimeout.Std() != 10*time.Minute || p.AuthTimeout.Std() != time.Minute ||
		p.MaxConnections != 10000 || p.MaxConnectionsPerIP != 50 || p.MaxBadCommands != 20 ||
		p.AuthFailDelay.Std() != 2*time.Second || p.ShutdownGrace.Std() != 30*time.Second ||
		!p.Implementation || !reflect.DeepEqual(p.Listen, []string{"127.0.0.1:110"}) {
		t.Errorf("unexpected pop3 defaults: %+v", p)
	}
	if _, ok := p.Expire.Days(); ok {
		t.Errorf("expire advertised by default")
	}
}

func TestValues(t *testing.T) {
	c, _, err := load(t, `
data_dir = "/srv/postie"
[log]
level = "debug"
format = "json"
[pop3]
listen = ["127.0.0.1:0", "[::1]:1110"]
idle_timeout = "30m"
auth_fail_delay = "0s"
login_delay = "15m"
expire = 30
[auth]
cache_ttl = "0s"
`)
	if err != nil {
		t.Fatal(err)
	}
	if c.POP3.IdleTimeout.Std() != 30*time.Minute || c.POP3.AuthFailDelay != 0 ||
		c.POP3.LoginDelay.Std() != 15*time.Minute || c.Auth.CacheTTL != 0 {
		t.Errorf("durations not decoded: %+v %+v", c.POP3, c.Auth)
	}
	if d, ok := c.POP3.Expire.Days(); !ok || d != 30 {
		t.Errorf("expire = %d, %v; want 30, true", d, ok)
	}
	if c.Log.Level != "debug" || c.Log.Format != "json" || len(c.POP3.Listen) != 2 {
		t.Errorf("unexpected %+v", c)
	}
}

func TestExpire(t *testing.T) {
	for _, tc := range []struct {
		in   string
		days int
		set  bool
	}{
		{`""`, 0, false},
		{`"never"`, ExpireNever, true},
		{`"NEVER"`, ExpireNever, true},
		{`0`, 0, true},
		{`"7"`, 7, true},
	} {
		c, _, err := load(t, "[pop3]\nexpire = "+tc.in+"\n")
		if err != nil {
			t.Errorf("expire = %s: %v", tc.in, err)
			continue
		}
		if d, ok := c.POP3.Expire.Days(); d != tc.days || ok != tc.set {
			t.Errorf("expire = %s: got %d, %v; want %d, %v", tc.in, d, ok, tc.days, tc.set)
		}
	}
	for _, in := range []string{`"sometimes"`, `-1`, `"3d"`} {
		_, _, err := load(t, "[pop3]\nexpire = "+in+"\n")
		wantErr(t, err, "pop3.expire")
	}
}

func TestUnknownKey(t *testing.T) {
	_, _, err := load(t, "[pop3]\nidel_timeout = \"10m\"\n")
	wantErr(t, err, "unknown key", "pop3.idel_timeout")

	_, _, err = load(t, "colour = 1\n[imap]\nlisten = [\"x:1\"]\n")
	wantErr(t, err, "unknown keys", "colour", "imap")
	if strings.Contains(err.Error(), "imap.listen") {
		t.Errorf("children of an unknown table reported too: %v", err)
	}
}

func TestBadDuration(t *testing.T) {
	for _, in := range []string{`"ten minutes"`, `"600"`, `600`, `"-5s"`} {
		_, _, err := load(t, "[pop3]\nauth_timeout = "+in+"\n")
		wantErr(t, err, "pop3.auth_timeout", "duration")
	}
	_, _, err := load(t, "[pop3]\nauth_timeout = \"1x\"\n")
	wantErr(t, err, `"1x"`, "postie.toml:2")
}

func TestIdleTimeoutRFC1939(t *testing.T) {
	_, _, err := load(t, "[pop3]\nidle_timeout = \"9m59s\"\n")
	wantErr(t, err, "pop3.idle_timeout: must be at least 10m (RFC 1939)")

	c := Default()
	c.POP3.IdleTimeout = Duration(time.Minute)
	wantErr(t, c.Validate(), "config: pop3.idle_timeout: must be at least 10m (RFC 1939)")
}

func TestBadValues(t *testing.T) {
	for _, tc := range []struct{ body, key string }{
		{"data_dir = \"\"", "data_dir"},
		{"[log]\nlevel = \"loud\"", "log.level"},
		{"[log]\nformat = \"xml\"", "log.format"},
		{"[log]\ntrace_addresses = [\"192.0.2.0/33\"]", "log.trace_addresses"},
		{"[log]\ntrace_addresses = [\"host.example\"]", "log.trace_addresses"},
		{"[log]\ntrace_users = [\"\"]", "log.trace_users"},
		{"[pop3]\nlisten = []", "pop3.listen"},
		{"[pop3]\nlisten = [\"localhost\"]", "pop3.listen"},
		{"[pop3]\nlisten = [\"127.0.0.1:pop3\"]", "pop3.listen"},
		{"[pop3]\nlisten = [\"127.0.0.1:70000\"]", "pop3.listen"},
		{"[pop3]\nlisten = [\":110\", \":110\"]", "pop3.listen"},
		{"[pop3]\nhostname = \"a b\"", "pop3.hostname"},
		{"[pop3]\nauth_timeout = \"0s\"", "pop3.auth_timeout"},
		{"[pop3]\nwrite_timeout = \"0s\"", "pop3.write_timeout"},
		{"[pop3]\nmax_connections = 0", "pop3.max_connections"},
		{"[pop3]\nmax_connections_per_ip = 0", "pop3.max_connections_per_ip"},
		{"[pop3]\nmax_connections = 10\nmax_connections_per_ip = 11", "pop3.max_connections_per_ip"},
		{"[pop3]\nmax_bad_commands = 0", "pop3.max_bad_commands"},
		{"[pop3]\nmax_connections = \"many\"", "pop3.max_connections"},
		{"[pop3]\nlogin_delay = \"1500ms\"", "pop3.login_delay"},
		{"[pop3]\nauth_fail_delay = \"2m\"", "pop3.auth_fail_delay"},
		{"[pop3]\nauth_fail_delay = \"20s\"", "pop3.auth_fail_max_delay"},
		{"[pop3]\nban_after = -1", "pop3.ban_after"},
		{"[pop3]\nban_after = 5\nban_duration = \"0s\"", "pop3.ban_duration"},
		{"[pop3]\ntrusted_networks = [\"10.0.0.1\"]", "pop3.trusted_networks"},
		{"trusted_proxies = [\"balancer.example\"]", "trusted_proxies"},
		{"trusted_proxies = [\"10.0.0.0/33\"]", "trusted_proxies"},
		{"trusted_proxies = [\"::ffff:10.0.0.0/104\"]", "trusted_proxies"},
		{"trusted_proxies = [\"0.0.0.0/0\"]", "trusted_proxies"},
		{"trusted_proxies = [\"::/0\"]", "trusted_proxies"},
		{"[storage]\nbackend = \"postgres\"", "storage.backend"},
		{"[auth]\ndefault_scheme = \"\"", "auth.default_scheme"},
		{"[pop3\n", "postie.toml:"},
	} {
		_, _, err := load(t, tc.body+"\n")
		if err == nil {
			t.Errorf("%q: no error, want one naming %s", tc.body, tc.key)
			continue
		}
		if !strings.Contains(err.Error(), tc.key) || !strings.HasPrefix(err.Error(), "config: ") {
			t.Errorf("%q: error %q does not name %s", tc.body, err, tc.key)
		}
	}
}

func TestSeveralProblemsReported(t *testing.T) {
	_, _, err := load(t, "[pop3]\nidle_timeout = \"1m\"\nmax_connections = 0\n")
	wantErr(t, err, "pop3.idle_timeout", "pop3.max_connections")
}

func TestRelativePaths(t *testing.T) {
	c, dir, err := load(t, `
data_dir = "state"
[storage]
maildir_root = "maildirs"
[auth]
passwd_file = "/etc/postie/passwd"
`)
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(dir, "state"); c.DataDir != want {
		t.Errorf("data_dir = %q, want %q (relative to the config file)", c.DataDir, want)
	}
	if want := filepath.Join(dir, "state", "maildirs"); c.Storage.MaildirRoot != want {
		t.Errorf("maildir_root = %q, want %q", c.Storage.MaildirRoot, want)
	}
	if c.Auth.PasswdFile != "/etc/postie/passwd" {
		t.Errorf("absolute passwd_file changed to %q", c.Auth.PasswdFile)
	}

	c, _, err = load(t, "data_dir = \"/srv/p\"\n[storage]\nmaildir_root = \"\"\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.Storage.MaildirRoot != "/srv/p/mail" || c.Auth.PasswdFile != "/srv/p/passwd" {
		t.Errorf("paths not derived from data_dir: %q %q", c.Storage.MaildirRoot, c.Auth.PasswdFile)
	}

	c = Default()
	c.DataDir = "rel"
	if err := c.ResolvePaths(""); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if want := filepath.Join(wd, "rel", "mail"); c.Storage.MaildirRoot != want {
		t.Errorf("ResolvePaths(\"\"): maildir_root = %q, want %q", c.Storage.MaildirRoot, want)
	}
}

const examplePath = "../examples/postie.toml"

// TestExampleLoads holds examples/postie.toml to what it promises: it
// loads, and every value in it is the default.
func TestExampleLoads(t *testing.T) {
	got, err := Load(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if err := want.ResolvePaths("/"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("examples/postie.toml differs from the defaults:\n got %+v\nwant %+v", got, want)
	}
}

// TestExampleDocumentsEveryKey walks the toml tags of Config and checks
// that each key is set in examples/postie.toml, in its table, with a
// comment just above it or on its line.
func TestExampleDocumentsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{} // "table.key" -> has a comment
	table := ""
	prevComment := false
	tableRE := regexp.MustCompile(`^\[([a-z0-9_.]+)\]$`)
	keyRE := regexp.MustCompile(`^([a-z0-9_]+)\s*=`)
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "#"):
			prevComment = true
			continue
		case tableRE.MatchString(line):
			table = tableRE.FindStringSubmatch(line)[1]
		case keyRE.MatchString(line):
			key := keyRE.FindStringSubmatch(line)[1]
			if table != "" {
				key = table + "." + key
			}
			documented[key] = prevComment || strings.Contains(line, "#")
		}
		prevComment = false
	}

	keys := tomlKeys(reflect.TypeFor[Config](), "")
	if len(keys) < 20 {
		t.Fatalf("only %d keys found by reflection: %v", len(keys), keys)
	}
	for _, k := range keys {
		commented, ok := documented[k]
		switch {
		case !ok:
			t.Errorf("key %s is not in examples/postie.toml", k)
		case !commented:
			t.Errorf("key %s in examples/postie.toml has no comment", k)
		}
	}
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

func tomlKeys(typ reflect.Type, prefix string) []string {
	var keys []string
	for f := range typ.Fields() {
		name := f.Tag.Get("toml")
		if name == "" || name == "-" {
			continue
		}
		if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshaler) {
			keys = append(keys, tomlKeys(f.Type, prefix+name+".")...)
			continue
		}
		keys = append(keys, prefix+name)
	}
	return keys
}

func TestDurationRoundTrip(t *testing.T) {
	d := Duration(90 * time.Second)
	b, _ := d.MarshalText()
	var back Duration
	if err := back.UnmarshalText(b); err != nil || back != d {
		t.Errorf("round trip of %v: %v, %v", d, back, err)
	}
	for _, e := range []Expire{{}, ExpireDays(ExpireNever), ExpireDays(3)} {
		b, _ := e.MarshalText()
		var back Expire
		if err := back.UnmarshalText(b); err != nil || back != e {
			t.Errorf("round trip of %+v: %+v, %v", e, back, err)
		}
	}
}

// A table where a value belongs, under a dotted key: the TOML decoder
// reports it without a line, and the error names the key instead.
func TestTableWhereValueBelongs(t *testing.T) {
	_, dir, err := load(t, "[pop3]\nmax_connections.x = 1\n")
	if err == nil {
		t.Fatal("no error")
	}
	want := "config: " + dir + "/postie.toml: pop3.max_connections: expected a whole number, found a table"
	if err.Error() != want {
		t.Errorf("error %q,\nwant  %q", err, want)
	}
}

func TestTraceSelection(t *testing.T) {
	c, _, err := load(t, "[log]\nlevel = \"debug\"\ntrace_users = [\"alice\"]\ntrace_addresses = [\"192.0.2.10\", \"::ffff:192.0.2.11\", \"2001:db8::1/64\", \"10.0.0.0/8\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.Log.TracePrefixes() {
		got = append(got, p.String())
	}
	if g, w := strings.Join(got, " "), "192.0.2.10/32 192.0.2.11/32 2001:db8::/64 10.0.0.0/8"; g != w || len(c.Log.TraceUsers) != 1 {
		t.Fatalf("prefixes %s, want %s; users %q", g, w, c.Log.TraceUsers)
	}
}

func TestTrustedProxies(t *testing.T) {
	c, _, err := load(t, "trusted_proxies = [\"192.0.2.10\", \"::ffff:192.0.2.11\", \"2001:db8::1/64\", \"10.0.1.7/28\"]\n[pop3]\n")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range c.TrustedProxyPrefixes() {
		got = append(got, p.String())
	}
	if g, w := strings.Join(got, " "), "192.0.2.10/32 192.0.2.11/32 2001:db8::/64 10.0.1.0/28"; g != w {
		t.Fatalf("prefixes %s, want %s", g, w)
	}
	if c := Default(); c.TrustedProxies == nil || len(c.TrustedProxyPrefixes()) != 0 {
		t.Errorf("default: %q", c.TrustedProxies)
	}
}

// pop3.expire_users: users' own EXPIRE policies over pop3.expire.
func TestExpireUsers(t *testing.T) {
	c, _, err := load(t, "[pop3]\nexpire = 30\nexpire_users = { alice = \"0\", bob = \"never\", carol = 7 }\n")
	if err != nil {
		t.Fatal(err)
	}
	for user, want := range map[string]int{"alice": 0, "bob": ExpireNever, "carol": 7} {
		if d, ok := c.POP3.ExpireUsers[user].Days(); d != want || !ok {
			t.Errorf("%s: %d, %v; want %d", user, d, ok, want)
		}
	}
	for _, body := range []string{
		"[pop3]\nexpire_users = { alice = \"0\" }\n",                // no default
		"[pop3]\nexpire = 1\nexpire_users = { alice = \"\" }\n",     // no value
		"[pop3]\nexpire = 1\nexpire_users = { \"\" = 3 }\n",         // no user
		"[pop3]\nexpire = 1\nexpire_users = { alice = \"soon\" }\n", // not a policy
	} {
		_, _, err := load(t, body)
		wantErr(t, err, "pop3.expire_users")
	}
}

// Every error of decoding the config names the file, the line (when the
// decoder knows it) and the key, and says in plain words what the key
// takes and what it found: no Go type names ("destination has type
// slice"), no decoder internals ("toml: ..."), no Go quoting ('\n').
func TestDecodeErrorsPlain(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ text, want string }{
		{"pop3 = 1\n", `1: pop3: expected a table ([pop3]), found an integer`},
		{"[[pop3]]\n", `1: pop3: expected a table ([pop3]), found an array of tables ([[...]])`},
		{"[pop3]\nlisten = \"127.0.0.1:110\"\n", `2: pop3.listen: expected a list of strings such as ["a", "b"], found a string`},
		{"pop3.listen = 5\n", `1: pop3.listen: expected a list of strings such as ["a", "b"], found an integer`},
		{"[auth]\nmechanisms = \"PLAIN\"\n", `2: auth.mechanisms: expected a list of strings such as ["a", "b"], found a string`},
		{"[pop3]\nmax_connections = \"100\"\n", `2: pop3.max_connections: expected a whole number, found a string`},
		{"[pop3]\nmax_connections = 1.5\n", `2: pop3.max_connections: expected a whole number, found a number with a fraction`},
		{"[pop3]\nmax_connections = 99999999999999999999\n", `2: pop3.max_connections: 99999999999999999999 is out of range: expected a whole number`},
		{"[pop3]\nutf8 = \"yes\"\n", `2: pop3.utf8: expected true or false, found a string`},
		{"[pop3.expire]\n", `1: pop3.expire: expected "", "never" or a number of days, found a table`},
		{"[pop3.expire_users]\nalice = []\n", `2: pop3.expire_users.alice: expected "", "never" or a number of days, found a list`},
		{"[pop3]\nidle_timeout = [1]\n", `2: pop3.idle_timeout: expected a duration such as "30s", "10m" or "1h", found a list`},
		{"[intake]\nmax_message_size = {}\n", `2: intake.max_message_size: expected a size such as 1048576, "512K" or "50M", found a table`},
		{"data_dir = [\"a\"]\n", `1: data_dir: expected a string in quotes, found a list`},
		{"[intake]\nmax_message_size = true\n", `2: intake.max_message_size: expected a size such as 1048576, "512K" or "50M", found a boolean (true or false)`},
		// A pointer field (*Size): its zero is nil, and describing it
		// panicked (found by FuzzLoad).
		{"[intake]\nquota_overrides = {a = {bytes = true}}\n", `2: intake.quota_overrides.a.bytes: expected a size such as 1048576, "512K" or "50M", found a boolean (true or false)`},
		{"[pop3]\nmax_connections = false\n", `2: pop3.max_connections: expected a whole number, found a boolean (true or false)`},
		{"[server]\nuser = 1000\n", `2: server.user: expected a string in quotes, found an integer`},
		{"[log]\nlevel = 1979-05-27\n", `2: log.level: expected a string in quotes, found a date or time`},
		{"[tls]\ncertificates = 5\n", `2: tls.certificates: expected an array of tables ([[tls.certificates]]), found an integer`},
		{"[[tls.certificates]]\ncert_file = 5\n", `2: tls.certificates.cert_file: expected a string in quotes, found an integer`},
		{"[pop3]\nlisten = []\n[pop3]\n", `3: pop3: set twice: a key or table may appear only once`},
		{"[pop3]\nutf8 = true\nutf8 = false\n", `3: pop3.utf8: set twice: a key or table may appear only once`},
		{"data_dir = \n", `1: data_dir: expected a value after =, found the end of the line`},
		{"data_dir = \"abc\n", `1: data_dir: expected the closing quote of the string on the same line`},
		{"[pop3]\nlisten = [\"a\",\n", `2: pop3.listen: the file ends too early; expected a value`},
		{"[pop3\n", `2: expected '.' or ']' to end table name, but got the end of the line instead`},
	} {
		_, dir, err := load(t, tc.text)
		want := "config: " + dir + "/postie.toml:" + tc.want
		if err == nil || err.Error() != want {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, want)
		}
	}
}

// pop3.utf8_strict refuses messages to clients that did not enable UTF-8
// mode, which they can do only where UTF8 is offered.
func TestUTF8StrictNeedsUTF8(t *testing.T) {
	t.Parallel()
	c, _, err := load(t, "[pop3]\nutf8_strict = true\n")
	if err != nil || !c.POP3.UTF8Strict || !c.POP3.UTF8 {
		t.Fatalf("utf8_strict with the default utf8: %+v, %v", c, err)
	}
	_, dir, err := load(t, "[pop3]\nutf8 = false\nutf8_strict = true\n")
	want := "config: " + dir + "/postie.toml: pop3.utf8_strict: needs pop3.utf8 = true: a client can enable UTF-8 mode only where UTF8 is offered"
	if err == nil || err.Error() != want {
		t.Errorf("error %v,\nwant  %s", err, want)
	}
}
