package config

import (
	"net"
	"net/netip"
	"strings"
)

// Web configures the web listener ([web]): the client autoconfiguration
// documents (Thunderbird, Outlook, Apple) and the users' account page. It
// serves HTTPS with the [tls] certificates; plain HTTP only on loopback, or
// behind a TLS-terminating proxy (BehindTLSProxy).
type Web struct {
	// Listen holds host:port addresses; empty: no web listener.
	Listen []string `toml:"listen"`
	// MailHost is the host name clients are told to connect to for POP3;
	// "" = the first DNS name of tls.cert_file.
	MailHost string `toml:"mail_host"`
	// BehindTLSProxy serves plain HTTP on every web listener, for a
	// reverse proxy that terminates TLS; X-Forwarded-For and
	// X-Forwarded-Proto are believed only from TrustedProxies.
	BehindTLSProxy bool `toml:"behind_tls_proxy"`
	// TrustedProxies are the CIDR prefixes of the proxies whose
	// X-Forwarded-For and X-Forwarded-Proto are believed.
	TrustedProxies []string `toml:"trusted_proxies"`
	// AdminPasswdFile turns on /admin: a passwd-file (the format of
	// auth.passwd_file) of the admins' names and password hashes,
	// separate from the mail users. "" = no admin page.
	AdminPasswdFile string `toml:"admin_passwd_file"`
}

// TrustedProxyPrefixes returns web.trusted_proxies as prefixes (a lone
// address as one of its full length); entries that do not parse (Validate
// reports them) are left out.
func (w Web) TrustedProxyPrefixes() []netip.Prefix {
	return prefixes(w.TrustedProxies)
}

// IsLoopbackHost reports whether host (of a host:port) names only the
// loopback interface: a loopback address or "localhost".
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

func (c *Config) webProblems(bad func(key, format string, args ...any)) {
	w := &c.Web
	for i, addr := range w.Listen {
		if err := checkListen(addr); err != nil {
			bad("web.listen", "%q: %v", addr, err)
			continue
		}
		for _, prev := range w.Listen[:i] {
			if prev == addr {
				bad("web.listen", "%q is listed twice", addr)
			}
		}
		host, _, _ := net.SplitHostPort(addr)
		if c.TLS.CertFile == "" && !w.BehindTLSProxy && !IsLoopbackHost(host) {
			bad("web.listen", "%q: plain HTTP is served on loopback only: set tls.cert_file for HTTPS, or web.behind_tls_proxy behind a TLS proxy", addr)
		}
	}
	for _, s := range w.TrustedProxies {
		switch p, ok := tracePrefix(s); {
		case !ok:
			bad("web.trusted_proxies", "%q is not an address or a CIDR prefix such as 192.0.2.0/24", s)
		case p.Bits() == 0:
			// X-Forwarded-For names the address that the web login's
			// delays and bans count against.
			bad("web.trusted_proxies", "%q trusts every address: any client could then claim any address", s)
		}
	}
	if w.BehindTLSProxy && len(w.TrustedProxies) == 0 {
		bad("web.trusted_proxies", "must name the proxy when web.behind_tls_proxy is set")
	}
	if strings.ContainsFunc(w.MailHost, func(r rune) bool {
		return r <= ' ' || r == 0x7f || r == '/' || r == ':' || r == '<' || r == '>' || r == '&'
	}) {
		bad("web.mail_host", "%q is not a host name", w.MailHost)
	}
	if w.AdminPasswdFile != "" && w.AdminPasswdFile == c.Auth.PasswdFile {
		bad("web.admin_passwd_file", "must not be auth.passwd_file: admins are not mail users")
	}
	if len(w.Listen) > 0 && w.MailHost == "" && c.TLS.CertFile == "" {
		bad("web.mail_host", "must be set when there is no tls.cert_file to take the name from")
	}
}
