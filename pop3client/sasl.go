package pop3client

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/xdg-go/scram"
)

// SASLMechanism is the client side of a SASL mechanism (RFC 4422). It
// knows nothing of POP3: Client.Auth does the base64, the "+ " lines, the
// 255-octet rule and the "*" cancellation. The method set is that of
// github.com/emersion/go-sasl's Client, so its mechanisms work here too.
type SASLMechanism interface {
	// Start returns the mechanism name and the initial response: nil
	// for none, empty (non-nil) for an empty one.
	Start() (mech string, ir []byte, err error)
	// Next answers a server challenge. An error cancels the exchange.
	Next(challenge []byte) (response []byte, err error)
}

var errUnexpectedChallenge = errors.New("sasl: unexpected server challenge")

// SASLPlain is the PLAIN mechanism (RFC 4616). identity is the
// authorization identity, usually empty (act as username).
func SASLPlain(identity, username, password string) SASLMechanism {
	return &plainMech{identity, username, password}
}

type plainMech struct{ identity, user, pass string }

func (m *plainMech) Start() (string, []byte, error) {
	return "PLAIN", []byte(m.identity + "\x00" + m.user + "\x00" + m.pass), nil
}

func (m *plainMech) Next([]byte) ([]byte, error) { return nil, errUnexpectedChallenge }

// SASLLogin is the obsolete but widespread LOGIN mechanism
// (draft-murchison-sasl-login): the user name and the password, each
// asked for by a challenge.
func SASLLogin(username, password string) SASLMechanism {
	return &loginMech{user: username, pass: password}
}

type loginMech struct {
	user, pass string
	step       int
}

func (m *loginMech) Start() (string, []byte, error) { return "LOGIN", nil, nil }

func (m *loginMech) Next(challenge []byte) ([]byte, error) {
	// Servers ask "Username:" then "Password:"; go by the prompt when it
	// says which, by the order otherwise.
	prompt := strings.ToLower(string(challenge))
	m.step++
	switch {
	case strings.HasPrefix(prompt, "user"):
		return []byte(m.user), nil
	case strings.HasPrefix(prompt, "pass"):
		return []byte(m.pass), nil
	case m.step == 1:
		return []byte(m.user), nil
	case m.step == 2:
		return []byte(m.pass), nil
	}
	return nil, errUnexpectedChallenge
}

// SASLScramSHA256 is SCRAM-SHA-256 (RFC 7677): the password never crosses
// the wire, and the server must prove that it knows the user's stored
// key, or Auth fails even after a +OK.
func SASLScramSHA256(username, password string) SASLMechanism {
	return &scramMech{name: "SCRAM-SHA-256", hash: scram.SHA256, user: username, pass: password}
}

// SASLScramSHA1 is SCRAM-SHA-1 (RFC 5802), as SASLScramSHA256.
func SASLScramSHA1(username, password string) SASLMechanism {
	return &scramMech{name: "SCRAM-SHA-1", hash: scram.SHA1, user: username, pass: password}
}

// SASLScramSHA256Plus is SCRAM-SHA-256-PLUS (RFC 7677, RFC 5802 §6):
// SCRAM bound to the TLS channel, so that a man in the middle who holds a
// certificate the client trusts still cannot relay the login. It needs
// TLS; the binding is tls-exporter on TLS 1.3 (RFC 9266) and tls-unique on
// TLS 1.2 (RFC 5929).
func SASLScramSHA256Plus(username, password string) SASLMechanism {
	return &scramMech{name: "SCRAM-SHA-256-PLUS", hash: scram.SHA256, user: username, pass: password, plus: true}
}

// SASLScramSHA1Plus is SCRAM-SHA-1-PLUS, as SASLScramSHA256Plus.
func SASLScramSHA1Plus(username, password string) SASLMechanism {
	return &scramMech{name: "SCRAM-SHA-1-PLUS", hash: scram.SHA1, user: username, pass: password, plus: true}
}

type scramMech struct {
	name       string
	hash       scram.HashGeneratorFcn
	user, pass string
	plus       bool
	tls        *tls.ConnectionState // set by Client.Auth on a TLS connection
	conv       *scram.ClientConversation
}

func (m *scramMech) setTLS(cs *tls.ConnectionState) { m.tls = cs }

func (m *scramMech) Start() (string, []byte, error) {
	cl, err := m.hash.NewClient(m.user, m.pass, "")
	if err != nil {
		return "", nil, err
	}
	if m.plus {
		cb, err := channelBinding(m.tls)
		if err != nil {
			return "", nil, err
		}
		m.conv = cl.NewConversationWithChannelBinding(cb)
	} else {
		m.conv = cl.NewConversation()
	}
	first, err := m.conv.Step("")
	if err != nil {
		return "", nil, err
	}
	return m.name, []byte(first), nil
}

// maxSCRAMIterations bounds the PBKDF2 work a server can ask for (RFC
// 7677 §4 asks for at least 4096; a hostile server could ask for
// billions, and the computation does not heed contexts).
const maxSCRAMIterations = 1 << 20

func (m *scramMech) Next(challenge []byte) ([]byte, error) {
	if m.conv == nil || m.conv.Done() {
		return nil, errUnexpectedChallenge
	}
	for f := range strings.SplitSeq(string(challenge), ",") {
		if v, ok := strings.CutPrefix(f, "i="); ok {
			if n, err := strconv.Atoi(v); err != nil || n > maxSCRAMIterations {
				return nil, errors.New("scram: server asks for " + strconv.Quote(v) + " iterations")
			}
		}
	}
	resp, err := m.conv.Step(string(challenge))
	if err != nil {
		return nil, errors.New("scram: " + err.Error())
	}
	return []byte(resp), nil
}

// channelBinding returns the binding of the TLS connection for the -PLUS
// mechanisms.
func channelBinding(cs *tls.ConnectionState) (scram.ChannelBinding, error) {
	if cs == nil || !cs.HandshakeComplete {
		return scram.ChannelBinding{}, errors.New("scram: -PLUS mechanisms need TLS")
	}
	switch {
	case cs.Version >= tls.VersionTLS13:
		return scram.NewTLSExporterBinding(cs)
	case len(cs.TLSUnique) > 0:
		return scram.NewTLSUniqueBinding(cs.TLSUnique), nil
	}
	return scram.ChannelBinding{}, errors.New("scram: no channel binding for this TLS session (TLS 1.2 resumed without extended master secret)")
}

// verified is checked after +OK: the server's final message, with its
// signature, must have come and been valid.
func (m *scramMech) verified() error {
	if m.conv == nil || !m.conv.Valid() {
		return errors.New("scram: server accepted the login without proving it knows the password")
	}
	return nil
}

// SASLOAuthBearer is OAUTHBEARER (RFC 7628) with an OAuth 2.0 access
// token. If the server refuses the token, the *Error returned by Auth
// carries the server's reason as an *OAuthError in Details.
func SASLOAuthBearer(username, token string) SASLMechanism {
	a := ""
	if username != "" {
		// RFC 5801 saslname: ',' and '=' escaped.
		a = "a=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(username)
	}
	return &oauthMech{
		name: "OAUTHBEARER",
		ir:   []byte("n," + a + ",\x01auth=Bearer " + token + "\x01\x01"),
		// RFC 7628 §3.2.3: the client answers an error challenge with a
		// single ^A, and the server then fails the exchange.
		errResp: []byte{0x01},
	}
}

// SASLXOAuth2 is Google's and Microsoft's XOAUTH2 with an OAuth 2.0 access
// token. Tokens are long: Auth sends them as a continuation line, never
// on the AUTH line (Microsoft 365 refuses that).
func SASLXOAuth2(username, token string) SASLMechanism {
	return &oauthMech{
		name: "XOAUTH2",
		ir:   []byte("user=" + username + "\x01auth=Bearer " + token + "\x01\x01"),
		// An error challenge is answered with an empty response.
		errResp: []byte{},
	}
}

type oauthMech struct {
	name    string
	ir      []byte
	errResp []byte
	srvErr  *OAuthError
}

func (m *oauthMech) Start() (string, []byte, error) { return m.name, m.ir, nil }

// Next sees only the error challenge: a JSON document saying why the
// token was refused.
func (m *oauthMech) Next(challenge []byte) ([]byte, error) {
	if m.srvErr != nil {
		return nil, errUnexpectedChallenge
	}
	var e OAuthError
	if err := json.Unmarshal(challenge, &e); err != nil || e.Status == "" {
		s := string(challenge)
		if len(s) > 200 {
			s = s[:200]
		}
		e = OAuthError{Status: s}
	}
	m.srvErr = &e
	return m.errResp, nil
}

func (m *oauthMech) serverError() error {
	if m.srvErr == nil {
		return nil
	}
	return m.srvErr
}

// OAuthError is the reason an OAUTHBEARER or XOAUTH2 server gave for
// refusing a token (RFC 7628 §3.2.2).
type OAuthError struct {
	Status              string `json:"status"` // "invalid_token", or an HTTP status such as "401"
	Schemes             string `json:"schemes,omitempty"`
	Scope               string `json:"scope,omitempty"`
	OpenIDConfiguration string `json:"openid-configuration,omitempty"`
}

func (e *OAuthError) Error() string {
	s := "oauth: status " + e.Status
	if e.Scope != "" {
		s += ", scope " + e.Scope
	}
	return s
}
