package config

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSecurityValues(t *testing.T) {
	c, dir, err := load(t, `
data_dir = "state"
[pop3]
listen_tls = ["0.0.0.0:995"]
[tls]
cert_file = "fullchain.pem"
key_file = "/etc/postie/privkey.pem"
[[tls.certificates]]
cert_file = "other.pem"
key_file = "other.key"
[auth]
mechanisms = ["scram-sha-256", "PLAIN"]
apop = true
client_ca_file = "ca.pem"
[auth.oauth]
jwks_file = "jwks.json"
issuer = "https://id.example.org"
audience = ["pop3"]
user_claim = "sub"
`)
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	want := TLS{
		CertFile:     filepath.Join(state, "fullchain.pem"),
		KeyFile:      "/etc/postie/privkey.pem",
		Certificates: []Certificate{{filepath.Join(state, "other.pem"), filepath.Join(state, "other.key")}},
	}
	if !reflect.DeepEqual(c.TLS, want) {
		t.Errorf("tls = %+v, want %+v", c.TLS, want)
	}
	if c.Auth.ClientCAFile != filepath.Join(state, "ca.pem") || c.Auth.OAuth.JWKSFile != filepath.Join(state, "jwks.json") {
		t.Errorf("auth paths not resolved: %+v", c.Auth)
	}
	if !c.Auth.APOP || !reflect.DeepEqual(c.Auth.Mechanisms, []string{"scram-sha-256", "PLAIN"}) || !c.Auth.OAuth.Enabled() {
		t.Errorf("auth = %+v", c.Auth)
	}
}

func TestSecurityBadValues(t *testing.T) {
	const cert = "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"
	for _, tc := range []struct{ body, key string }{
		{"[tls]\ncert_file = \"c.pem\"", "tls.key_file"},
		{"[tls]\nkey_file = \"k.pem\"", "tls.cert_file"},
		{"[[tls.certificates]]\ncert_file = \"a\"\nkey_file = \"b\"", "tls.certificates"},
		{cert + "[[tls.certificates]]\ncert_file = \"a\"", "tls.certificates[0]"},
		{"[pop3]\nlisten_tls = [\"127.0.0.1:995\"]", "pop3.listen_tls: needs tls.cert_file"},
		{"[pop3]\nlisten_tls = [\"x\"]\n" + cert, "pop3.listen_tls"},
		{"[pop3]\nlisten = [\"127.0.0.1:995\"]\nlisten_tls = [\"127.0.0.1:995\"]\n" + cert, "pop3.listen_tls"},
		{"[auth]\nmechanisms = [\"CRAM-MD5\"]", "auth.mechanisms"},
		{"[auth]\nmechanisms = [\"PLAIN\", \"plain\"]", "auth.mechanisms"},
		{"[auth]\nclient_ca_file = \"ca.pem\"", "auth.client_ca_file"},
		{"[auth.oauth]\nissuer = \"x\"", "auth.oauth"},
		{"[auth.oauth]\njwks_file = \"j\"\njwks_url = \"https://x/j\"\nissuer = \"i\"\naudience = [\"a\"]", "auth.oauth"},
		{"[auth.oauth]\njwks_file = \"j\"\naudience = [\"a\"]", "auth.oauth.issuer"},
		{"[auth.oauth]\njwks_file = \"j\"\nissuer = \"i\"", "auth.oauth.audience"},
		{"[auth.oauth]\njwks_url = \"http://x/j\"\nissuer = \"i\"\naudience = [\"a\"]", "auth.oauth.jwks_url"},
		{"[auth.oauth]\nintrospection_url = \"https://x/i\"\nclient_id = \"c\"", "auth.oauth.client_secret_file"},
		{"[auth.oauth]\nintrospection_url = \"https://x/i\"\nclient_secret_file = \"s\"", "auth.oauth.client_id"},
		{"[auth.oauth]\nintrospection_url = \"ftp://x/i\"\nclient_id = \"c\"\nclient_secret_file = \"s\"", "auth.oauth.introspection_url"},
		{"[tls]\ncolour = 1", "tls.colour"},
		{"[tls]\nsession_ticket_key_file = \"t\"", "tls.session_ticket_key_file: needs tls.cert_file"},
	} {
		_, _, err := load(t, tc.body+"\n")
		if err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%q: error %v, want one naming %s", tc.body, err, tc.key)
		}
	}
}

// The default offers no -PLUS mechanism (GNU SASL clients pick it and
// fail, docs/clients.md); listing them is the operator's opt-in.
func TestSASLPlusOptIn(t *testing.T) {
	c, _, err := load(t, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Auth.Mechanisms {
		if strings.HasSuffix(m, "-PLUS") {
			t.Errorf("default auth.mechanisms %q offers %s", c.Auth.Mechanisms, m)
		}
	}
	if want := []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "EXTERNAL", "OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN"}; !reflect.DeepEqual(c.Auth.Mechanisms, want) {
		t.Errorf("default auth.mechanisms = %q, want %q", c.Auth.Mechanisms, want)
	}
	c, _, err = load(t, "[auth]\nmechanisms = [\"SCRAM-SHA-256-PLUS\", \"scram-sha-1-plus\", \"SCRAM-SHA-256\"]\n")
	if err != nil {
		t.Fatalf("opting in to -PLUS: %v", err)
	}
	if want := []string{"SCRAM-SHA-256-PLUS", "scram-sha-1-plus", "SCRAM-SHA-256"}; !reflect.DeepEqual(c.Auth.Mechanisms, want) {
		t.Errorf("auth.mechanisms = %q, want %q", c.Auth.Mechanisms, want)
	}
}
