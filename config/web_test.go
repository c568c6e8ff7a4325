package config

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestWebProblems(t *testing.T) {
	const tlsOn = "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\n"
	for _, tc := range []struct{ body, want string }{
		{"[web]\nlisten = [\"0.0.0.0:443\"]\nmail_host = \"m.example.org\"", `web.listen: "0.0.0.0:443": plain HTTP is served on loopback only: set tls.cert_file for HTTPS, or web.behind_tls_proxy behind a TLS proxy`},
		{"[web]\nlisten = [\":8080\"]\nmail_host = \"m.example.org\"", `web.listen: ":8080": plain HTTP is served on loopback only`},
		{"[web]\nlisten = [\"127.0.0.1\"]\nmail_host = \"m.example.org\"", `web.listen: "127.0.0.1": want host:port`},
		{tlsOn + "[web]\nlisten = [\":443\", \":443\"]", `web.listen: ":443" is listed twice`},
		{"[web]\nlisten = [\"127.0.0.1:8080\"]", "web.mail_host: must be set when there is no tls.cert_file to take the name from"},
		{tlsOn + "[web]\nmail_host = \"m.example.org/x\"", `web.mail_host: "m.example.org/x" is not a host name`},
		{"[web]\nlisten = [\"0.0.0.0:8080\"]\nmail_host = \"m.example.org\"\nbehind_tls_proxy = true", "web.trusted_proxies: must name the proxy when web.behind_tls_proxy is set"},
		{"[web]\ntrusted_proxies = [\"proxy.example.org\"]", `web.trusted_proxies: "proxy.example.org" is not an address or a CIDR prefix`},
		{"[web]\ntrusted_proxies = [\"::/0\"]", `web.trusted_proxies: "::/0" trusts every address`},
		{"[web]\nadmin_passwd_file = \"passwd\"", "web.admin_passwd_file: must not be auth.passwd_file: admins are not mail users"},
	} {
		_, _, err := load(t, tc.body+"\n")
		wantErr(t, err, tc.want)
	}
	for _, ok := range []string{
		"[web]\nlisten = [\"127.0.0.1:8080\", \"[::1]:8080\", \"localhost:8081\"]\nmail_host = \"m.example.org\"",
		"[web]\nlisten = [\"0.0.0.0:8080\"]\nmail_host = \"m.example.org\"\nbehind_tls_proxy = true\ntrusted_proxies = [\"10.0.0.5\", \"192.0.2.0/24\"]",
	} {
		c, _, err := load(t, ok+"\n")
		if err != nil {
			t.Errorf("%q: %v", ok, err)
			continue
		}
		if c.Web.BehindTLSProxy {
			want := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("192.0.2.0/24")}
			if got := c.Web.TrustedProxyPrefixes(); !reflect.DeepEqual(got, want) {
				t.Errorf("TrustedProxyPrefixes = %v, want %v", got, want)
			}
		}
	}
}
