package config

import (
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// TLS holds the server's certificates. With cert_file set, STLS is
// offered on the plain listeners and pop3.listen_tls can be used. The
// files are read at start and again on SIGHUP or when they change.
type TLS struct {
	// CertFile is a PEM certificate chain (leaf first), KeyFile its
	// private key: the certificate for clients that send no SNI name or
	// one that no other certificate matches.
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// Certificates are more certificates chosen by the name the client
	// asks for (SNI) among their DNS names ([[tls.certificates]] tables).
	Certificates []Certificate `toml:"certificates"`
	// SessionTicketKeyFile holds the keys of TLS session tickets, so that
	// the nodes of a cluster that all read it resume each other's
	// sessions: one key a line, 64 hex digits (32 octets), the newest
	// first (it encrypts new tickets; the others still decrypt), read at
	// start and again on SIGHUP. It must not be readable by all. Empty:
	// each process makes and rotates its own keys.
	SessionTicketKeyFile string `toml:"session_ticket_key_file"`
}

// Certificate is one [[tls.certificates]] entry.
type Certificate struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
}

// OAuth configures the OAUTHBEARER and XOAUTH2 mechanisms
// ([auth.oauth]): tokens are JWTs checked against a JWK Set (jwks_file
// or jwks_url) with issuer and audience, or are sent to an RFC 7662
// introspection endpoint. With none of the three set, OAuth is off.
type OAuth struct {
	JWKSFile         string   `toml:"jwks_file"`
	JWKSURL          string   `toml:"jwks_url"`
	Issuer           string   `toml:"issuer"`
	Audience         []string `toml:"audience"`
	UserClaim        string   `toml:"user_claim"`
	IntrospectionURL string   `toml:"introspection_url"`
	ClientID         string   `toml:"client_id"`
	ClientSecretFile string   `toml:"client_secret_file"`
}

// Enabled reports whether a token source is configured.
func (o OAuth) Enabled() bool {
	return o.JWKSFile != "" || o.JWKSURL != "" || o.IntrospectionURL != ""
}

// SASLMechanisms are the mechanism names auth.mechanisms accepts. postie
// offers each where its backend is configured (the -PLUS forms only over
// TLS, EXTERNAL with auth.client_ca_file, OAUTHBEARER and XOAUTH2 with
// [auth.oauth]; PLAIN, LOGIN and the OAuth ones only over TLS or from
// trusted networks).
var SASLMechanisms = []string{
	"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-1-PLUS", "SCRAM-SHA-1",
	"EXTERNAL", "OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN",
}

// DefaultSASLMechanisms is the default of auth.mechanisms: every mechanism
// but the -PLUS forms, which an operator opts into by listing them. GNU
// SASL clients (NeoMutt 20220429 among them) pick SCRAM-SHA-256-PLUS when
// it is offered, cannot give it the TLS 1.3 channel binding
// (tls-exporter), cancel the exchange and fall out of step with the
// server; without -PLUS they log in with SCRAM-SHA-256. See
// docs/clients.md.
var DefaultSASLMechanisms = []string{
	"SCRAM-SHA-256", "SCRAM-SHA-1",
	"EXTERNAL", "OAUTHBEARER", "XOAUTH2", "PLAIN", "LOGIN",
}

// resolveSecurityPaths makes the optional paths of [tls] and [auth]
// absolute, relative to dir; empty ones stay empty.
func (c *Config) resolveSecurityPaths(dir string) {
	resolve := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
		if *p != "" {
			*p = filepath.Clean(*p)
		}
	}
	resolve(&c.TLS.CertFile)
	resolve(&c.TLS.KeyFile)
	for i := range c.TLS.Certificates {
		resolve(&c.TLS.Certificates[i].CertFile)
		resolve(&c.TLS.Certificates[i].KeyFile)
	}
	resolve(&c.TLS.SessionTicketKeyFile)
	resolve(&c.Auth.ClientCAFile)
	resolve(&c.Auth.OAuth.JWKSFile)
	resolve(&c.Auth.OAuth.ClientSecretFile)
	resolve(&c.Web.AdminPasswdFile)
}

// securityProblems checks [tls], pop3.listen_tls and the login settings
// of [auth].
func (c *Config) securityProblems(bad func(key, format string, args ...any)) {
	t := &c.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		bad("tls.key_file", "must be set with tls.cert_file")
	case t.CertFile == "" && t.KeyFile != "":
		bad("tls.cert_file", "must be set with tls.key_file")
	}
	for i, cert := range t.Certificates {
		if cert.CertFile == "" || cert.KeyFile == "" {
			bad("tls.certificates["+strconv.Itoa(i)+"]", "needs cert_file and key_file")
		}
	}
	if len(t.Certificates) > 0 && t.CertFile == "" {
		bad("tls.certificates", "need tls.cert_file too (the certificate for clients without SNI)")
	}
	if t.SessionTicketKeyFile != "" && t.CertFile == "" {
		bad("tls.session_ticket_key_file", "needs tls.cert_file and tls.key_file")
	}

	p := &c.POP3
	for i, addr := range p.ListenTLS {
		if err := checkListen(addr); err != nil {
			bad("pop3.listen_tls", "%q: %v", addr, err)
		} else if slices.Contains(p.ListenTLS[:i], addr) || slices.Contains(p.Listen, addr) && !strings.HasSuffix(addr, ":0") {
			bad("pop3.listen_tls", "%q is listed twice", addr)
		}
	}
	if len(p.ListenTLS) > 0 && t.CertFile == "" {
		bad("pop3.listen_tls", "needs tls.cert_file and tls.key_file")
	}

	a := &c.Auth
	for i, m := range a.Mechanisms {
		switch {
		case !slices.Contains(SASLMechanisms, strings.ToUpper(m)):
			bad("auth.mechanisms", "unknown mechanism %q (known: %s)", m, strings.Join(SASLMechanisms, ", "))
		case slices.ContainsFunc(a.Mechanisms[:i], func(o string) bool { return strings.EqualFold(o, m) }):
			bad("auth.mechanisms", "%q is listed twice", m)
		}
	}
	if a.ClientCAFile != "" && t.CertFile == "" {
		bad("auth.client_ca_file", "needs tls.cert_file (client certificates come with TLS)")
	}

	o := &a.OAuth
	sources := 0
	for _, s := range []string{o.JWKSFile, o.JWKSURL, o.IntrospectionURL} {
		if s != "" {
			sources++
		}
	}
	switch {
	case sources > 1:
		bad("auth.oauth", "set only one of jwks_file, jwks_url and introspection_url")
	case sources == 0:
		if o.Issuer != "" || len(o.Audience) > 0 || o.UserClaim != "" || o.ClientID != "" || o.ClientSecretFile != "" {
			bad("auth.oauth", "needs jwks_file, jwks_url or introspection_url")
		}
	case o.IntrospectionURL != "":
		if !isHTTPS(o.IntrospectionURL) {
			bad("auth.oauth.introspection_url", "must be an https:// URL")
		}
		if o.ClientID == "" {
			bad("auth.oauth.client_id", "must be set with introspection_url")
		}
		if o.ClientSecretFile == "" {
			bad("auth.oauth.client_secret_file", "must be set with introspection_url")
		}
	default: // a JWK Set
		if o.JWKSURL != "" && !isHTTPS(o.JWKSURL) {
			bad("auth.oauth.jwks_url", "must be an https:// URL")
		}
		if o.Issuer == "" {
			bad("auth.oauth.issuer", "must be set with a JWK Set (the tokens' \"iss\")")
		}
		if len(o.Audience) == 0 {
			bad("auth.oauth.audience", "must be set with a JWK Set (this server's client id or resource name)")
		}
		if o.ClientID != "" || o.ClientSecretFile != "" {
			bad("auth.oauth.client_id", "goes with introspection_url only")
		}
	}
}

func isHTTPS(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != ""
}
