package sasl

import "fmt"

// Mechanism describes one server mechanism for advertising (the CAPA
// "SASL" line, RFC 5034 §6) and for choosing where it may be offered.
type Mechanism struct {
	// Name as advertised and as the client names it in AUTH.
	Name string
	// Cleartext: the client sends a reusable secret (a password or a
	// bearer token) as is. Offer only over TLS, unless the operator
	// allowed cleartext logins for the connection (RFC 2595 §2.2,
	// RFC 8314).
	Cleartext bool
	// NeedsTLS: meaningful only on a TLS connection (channel binding, a
	// client certificate); never offered without TLS.
	NeedsTLS bool
}

// Mechanisms returns every mechanism this package implements, in the
// order Config.Names advertises them (strongest first).
func Mechanisms() []Mechanism {
	return []Mechanism{
		{Name: "SCRAM-SHA-256-PLUS", NeedsTLS: true},
		{Name: "SCRAM-SHA-256"},
		{Name: "SCRAM-SHA-1-PLUS", NeedsTLS: true},
		{Name: "SCRAM-SHA-1"},
		{Name: "EXTERNAL", NeedsTLS: true},
		{Name: "OAUTHBEARER", Cleartext: true},
		{Name: "XOAUTH2", Cleartext: true},
		{Name: "PLAIN", Cleartext: true},
		{Name: "LOGIN", Cleartext: true},
	}
}

// Config is what the mechanisms check credentials against. An engine keeps
// one for the server's lifetime and, per connection, asks Names for the
// CAPA line and New to start an AUTH exchange. A mechanism whose backend
// is nil is not offered.
type Config struct {
	// Passwords checks PLAIN and LOGIN.
	Passwords PasswordChecker
	// SCRAM provides credentials for the SCRAM mechanisms; SCRAMSecret
	// and SCRAMFakeIterations are SCRAMOptions.Secret and FakeIterations.
	SCRAM               SCRAMStore
	SCRAMSecret         []byte
	SCRAMFakeIterations int
	// Tokens checks OAUTHBEARER and XOAUTH2; OAuth fills their error
	// challenges.
	Tokens TokenValidator
	OAuth  OAuthOptions
	// External offers EXTERNAL on connections with a client certificate
	// identity.
	External bool
	// Enabled, when non-nil, restricts the mechanisms to these names
	// (ASCII case-insensitively); the order stays that of Mechanisms.
	Enabled []string
}

// Conn is what the engine knows about one connection.
type Conn struct {
	// TLS: the connection is encrypted (implicit TLS, or after STLS).
	TLS bool
	// AllowCleartext offers the Cleartext mechanisms without TLS (the
	// operator trusts the network: loopback, a trusted subnet).
	AllowCleartext bool
	// ChannelBinding is ChannelBindingFromTLS of the connection; with it
	// the -PLUS mechanisms are offered.
	ChannelBinding ChannelBinding
	// ExternalIdentity is the user of the verified TLS client
	// certificate, "" when there is none.
	ExternalIdentity string
}

// Names returns the mechanisms to advertise on conn, in the order of
// Mechanisms: for example "SCRAM-SHA-256 SCRAM-SHA-1 PLAIN LOGIN" on a TLS
// connection with passwords and SCRAM configured but no channel binding.
func (c *Config) Names(conn Conn) []string {
	var names []string
	for _, m := range Mechanisms() {
		if c.offered(m, conn) {
			names = append(names, m.Name)
		}
	}
	return names
}

func (c *Config) offered(m Mechanism, conn Conn) bool {
	if m.NeedsTLS && !conn.TLS || m.Cleartext && !conn.TLS && !conn.AllowCleartext {
		return false
	}
	if c.Enabled != nil {
		found := false
		for _, e := range c.Enabled {
			found = found || sameUser(e, m.Name)
		}
		if !found {
			return false
		}
	}
	switch m.Name {
	case "PLAIN", "LOGIN":
		return c.Passwords != nil
	case "SCRAM-SHA-256", "SCRAM-SHA-1":
		return c.SCRAM != nil
	case "SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS":
		return c.SCRAM != nil && conn.ChannelBinding.Type != "" && len(conn.ChannelBinding.Data) > 0
	case "OAUTHBEARER", "XOAUTH2":
		return c.Tokens != nil
	case "EXTERNAL":
		return c.External && conn.ExternalIdentity != ""
	}
	return false
}

// New starts an exchange of the mechanism the client named (ASCII
// case-insensitively). It returns an error wrapping
// ErrUnsupportedMechanism when the mechanism is unknown or not offered
// on conn (the reply is then "-ERR unrecognized authentication type"),
// and one wrapping ErrCleartextRefused when it is a Cleartext mechanism
// and conn may not carry cleartext.
func (c *Config) New(name string, conn Conn) (Server, error) {
	for _, m := range Mechanisms() {
		if !sameUser(name, m.Name) {
			continue
		}
		if m.Cleartext && !conn.TLS && !conn.AllowCleartext {
			return nil, fmt.Errorf("%w: %s", ErrCleartextRefused, m.Name)
		}
		if !c.offered(m, conn) {
			break
		}
		switch m.Name {
		case "PLAIN":
			return NewPLAIN(c.Passwords), nil
		case "LOGIN":
			return NewLOGIN(c.Passwords), nil
		case "OAUTHBEARER":
			return NewOAUTHBEARER(c.Tokens, c.OAuth), nil
		case "XOAUTH2":
			return NewXOAUTH2(c.Tokens, c.OAuth), nil
		case "EXTERNAL":
			return NewEXTERNAL(conn.ExternalIdentity), nil
		}
		// The SCRAM family. The binding is passed whenever the -PLUS
		// form of the hash is offered, so that a "y" client of the
		// plain form fails (RFC 5802 §6).
		var cb ChannelBinding
		plus := m.Name
		if !m.NeedsTLS {
			plus += "-PLUS"
		}
		if c.offered(Mechanism{Name: plus, NeedsTLS: true}, conn) {
			cb = conn.ChannelBinding
		}
		return NewSCRAM(m.Name, SCRAMOptions{
			Store:          c.SCRAM,
			Secret:         c.SCRAMSecret,
			FakeIterations: c.SCRAMFakeIterations,
			ChannelBinding: cb,
		})
	}
	return nil, fmt.Errorf("%w: %.40q", ErrUnsupportedMechanism, name)
}
