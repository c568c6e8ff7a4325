package main

import (
	"bytes"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/postie-mail/postie/config"
)

// hidden replaces a secret in the output of config show.
const hidden = "<hidden>"

// showConfig returns c as TOML that serve reads back to the same
// configuration, secrets masked: with all, every key; else only the keys
// whose values differ from the defaults (relative paths resolved against
// the same data_dir), like doveconf -n.
func showConfig(c *config.Config, all bool) ([]byte, error) {
	cur, err := configMap(c)
	if err != nil {
		return nil, err
	}
	if !all {
		d := config.Default()
		d.DataDir = c.DataDir
		if err := d.ResolvePaths(""); err != nil {
			return nil, err
		}
		def, err := configMap(d)
		if err != nil {
			return nil, err
		}
		cur = diffMap(cur, def)
		// The other paths are shown when they differ from their
		// default under this data_dir: it must be there for them.
		if c.DataDir != config.Default().DataDir {
			cur["data_dir"] = c.DataDir
		}
	}
	maskSecrets(cur)
	var b bytes.Buffer
	if all {
		b.WriteString("# postie config show --all: every key, defaults included\n")
	} else {
		b.WriteString("# postie config show: the keys that differ from the defaults (--all for every key)\n")
	}
	b.WriteString("# secrets are shown as \"" + hidden + "\"\n")
	enc := toml.NewEncoder(&b)
	enc.Indent = ""
	if err := enc.Encode(cur); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// configMap turns c into the tables and values its TOML file holds.
func configMap(c *config.Config) (map[string]any, error) {
	text, err := toml.Marshal(c)
	if err != nil {
		return nil, err
	}
	m := map[string]any{}
	if _, err := toml.Decode(string(text), &m); err != nil {
		return nil, err
	}
	return m, nil
}

// diffMap keeps the keys of cur whose values differ from def's, and the
// tables holding any.
func diffMap(cur, def map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range cur {
		dv := def[k]
		if sub, ok := v.(map[string]any); ok {
			dsub, _ := dv.(map[string]any)
			if d := diffMap(sub, dsub); len(d) > 0 {
				out[k] = d
			}
			continue
		}
		if _, ok := def[k]; !ok || !reflect.DeepEqual(v, dv) {
			out[k] = v
		}
	}
	return out
}

// isSecretKey reports whether the value of key holds a secret: a
// password, a client secret, a token, a database connection string. Keys
// ending in _file name a file and are shown.
func isSecretKey(key string) bool {
	if strings.HasSuffix(key, "_file") {
		return false
	}
	return slices.ContainsFunc([]string{"password", "secret", "token", "dsn"}, func(w string) bool { return strings.Contains(key, w) })
}

// maskSecrets replaces secrets in m: a connection string's password, and
// the whole of any other secret.
func maskSecrets(m map[string]any) {
	for _, k := range slices.Collect(maps.Keys(m)) {
		switch v := m[k].(type) {
		case map[string]any:
			maskSecrets(v)
		case []map[string]any:
			for _, t := range v {
				maskSecrets(t)
			}
		case string:
			switch {
			case v == "" || !isSecretKey(k):
			case strings.Contains(k, "dsn"):
				m[k] = maskDSN(v)
			default:
				m[k] = hidden
			}
		case []any:
			if isSecretKey(k) && len(v) > 0 {
				m[k] = []any{hidden}
			}
		}
	}
}

// maskDSN replaces the password of a PostgreSQL connection string (a URL
// or key=value pairs) with hidden, keeping the rest. A string it cannot
// take apart is hidden whole.
func maskDSN(dsn string) string {
	var out, password string
	var ok bool
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		out, password, ok = maskDSNURL(dsn)
	} else {
		out, password, ok = maskDSNPairs(dsn)
	}
	if !ok || password != "" && password != hidden && strings.Contains(out, password) {
		return hidden
	}
	return out
}

// dsnPassword returns the password in dsn, "" when none is found.
func dsnPassword(dsn string) string {
	if _, pw, ok := maskDSNURL(dsn); ok && strings.Contains(dsn, "://") {
		return pw
	}
	_, pw, _ := maskDSNPairs(dsn)
	return pw
}

func maskDSNURL(dsn string) (out, password string, ok bool) {
	const mark = "POSTIEHIDDENPASSWORD"
	u, err := url.Parse(dsn)
	if err != nil {
		return "", "", false
	}
	if pw, set := u.User.Password(); set {
		password = pw
		u.User = url.UserPassword(u.User.Username(), mark)
	}
	q := u.Query()
	if pw := q.Get("password"); pw != "" {
		if password != "" && pw != password {
			return "", "", false
		}
		password = pw
		q.Set("password", mark)
		u.RawQuery = q.Encode()
	}
	return strings.ReplaceAll(u.String(), mark, hidden), password, true
}

// maskDSNPairs masks the password of libpq's keyword = value form, where
// a value may be single-quoted with backslash escapes.
func maskDSNPairs(dsn string) (out, password string, ok bool) {
	var b strings.Builder
	s := dsn
	for {
		n := len(s) - len(strings.TrimLeft(s, " \t\n\r\f\v"))
		b.WriteString(s[:n])
		s = s[n:]
		if s == "" {
			return b.String(), password, true
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			return "", "", false
		}
		key := strings.TrimRight(s[:eq], " \t")
		if strings.ContainsAny(key, " \t'\\") {
			return "", "", false
		}
		b.WriteString(s[:eq+1])
		s = s[eq+1:]
		n = len(s) - len(strings.TrimLeft(s, " \t"))
		b.WriteString(s[:n])
		s = s[n:]
		var raw, val string
		if strings.HasPrefix(s, "'") {
			var v strings.Builder
			i := 1
			for ; i < len(s) && s[i] != '\''; i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
			}
			if i == len(s) {
				return "", "", false // unterminated quote
			}
			raw, val, s = s[:i+1], v.String(), s[i+1:]
		} else {
			// Unquoted, a backslash escapes the next character (a
			// space too), as in libpq.
			var v strings.Builder
			i := 0
			for ; i < len(s) && !strings.ContainsRune(" \t\n\r\f\v", rune(s[i])); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				v.WriteByte(s[i])
			}
			raw, val, s = s[:i], v.String(), s[i:]
		}
		if key == "password" {
			if password != "" && val != password {
				return "", "", false
			}
			password = val
			raw = hidden
		}
		b.WriteString(raw)
	}
}
