package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// SCRAMStore looks up SCRAM credentials. mech is "SCRAM-SHA-256" or
// "SCRAM-SHA-1" (never with -PLUS: the credentials are the same). ok is
// false when the user does not exist or has no credentials for that hash;
// err is for system trouble only. canonical is the user name to log in as.
type SCRAMStore interface {
	SCRAMCredentials(ctx context.Context, user, mech string) (cred SCRAMCredentials, canonical string, ok bool, err error)
}

// SCRAMOptions configure NewSCRAM.
type SCRAMOptions struct {
	// Store provides the credentials. Required.
	Store SCRAMStore
	// Secret keys the fake credentials shown for unknown users (salt and
	// keys are HMACs of the user name under it), so that the salt of a
	// user who does not exist is as stable as a real one. Use a stable
	// secret of 32 random octets from the configuration: with none, a
	// random secret per process is used and a restart changes every fake
	// salt, which an attacker watching over time can notice.
	Secret []byte
	// FakeIterations is the iteration count shown for unknown users
	// (default DefaultSCRAMIterations). Set it to what real entries use.
	FakeIterations int
	// ChannelBinding is the connection's channel binding (see
	// ChannelBindingFromTLS). Set it exactly when the -PLUS mechanisms
	// are advertised on this connection: it is required for -PLUS, and
	// with it a client of the plain mechanism that says "y" (it supports
	// binding but thinks the server does not) fails, as RFC 5802 §6
	// requires to defeat a downgrade. Zero on cleartext connections.
	ChannelBinding ChannelBinding
}

// NewSCRAM returns a SCRAM server (RFC 5802, RFC 7677) for mech, one of
// SCRAM-SHA-256, SCRAM-SHA-1, SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS.
//
// An unknown user runs the whole exchange with fake credentials derived
// from opts.Secret and the user name: the same number of steps and the
// same shape of challenge, then ErrAuthFailed, as for a wrong password.
// Channel-binding mismatches, a "p" flag with the plain mechanism, a
// non-"p" flag with -PLUS and an unsupported binding type fail. The
// authorization identity ("a=") must be empty or name the authenticated
// user. On success the final challenge is the server signature
// ("v=..."), additional data with success.
func NewSCRAM(mech string, opts SCRAMOptions) (Server, error) {
	plus := false
	base := mech
	if len(mech) > 5 && sameUser(mech[len(mech)-5:], "-PLUS") {
		plus = true
		base = mech[:len(mech)-5]
	}
	h, ok := scramHashByName(base)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedMechanism, mech)
	}
	if opts.Store == nil {
		return nil, errors.New("sasl: SCRAMOptions.Store is required")
	}
	if cb := opts.ChannelBinding; cb.Type != "" || cb.Data != nil {
		if !validCBName(cb.Type) || len(cb.Data) == 0 {
			return nil, errors.New("sasl: invalid channel binding")
		}
	}
	if plus && opts.ChannelBinding.Type == "" {
		return nil, fmt.Errorf("%w: %s needs channel binding", ErrUnsupportedMechanism, mech)
	}
	if len(opts.Secret) == 0 {
		opts.Secret = processSecret()
	}
	if opts.FakeIterations <= 0 {
		opts.FakeIterations = DefaultSCRAMIterations
	}
	return &scramServer{h: h, plus: plus, opts: opts}, nil
}

// processSecret is the fallback key for fake credentials.
var processSecret = sync.OnceValue(func() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
})

// maxSCRAMMessage bounds each client message; real ones are well under
// 1 KiB (user names are at most 255 octets, nonces and proofs short).
const maxSCRAMMessage = 4096

type scramServer struct {
	h    scramHash
	plus bool
	opts SCRAMOptions

	step        int // 0 start, 1 empty challenge sent, 2 server-first sent, 3 done
	gs2         gs2Header
	username    string
	bare        string // client-first-message-bare
	serverFirst string
	nonce       string // client nonce + server nonce
	cred        SCRAMCredentials
	known       bool
	canonical   string
	user        string

	testNonce string // fixed server nonce for known-answer tests
}

var (
	_ Server    = (*scramServer)(nil)
	_ Attempter = (*scramServer)(nil)
)

func (s *scramServer) User() string      { return s.user }
func (s *scramServer) Attempted() string { return s.username }

func (s *scramServer) Next(ctx context.Context, resp []byte) ([]byte, bool, error) {
	switch {
	case s.step == 0 && resp == nil:
		// RFC 5802 §5: the client starts; without an initial response
		// the server sends an empty challenge.
		s.step = 1
		return []byte{}, false, nil
	case s.step <= 1:
		c, err := s.first(ctx, resp)
		if err != nil {
			s.step = 3
			return nil, true, err
		}
		s.step = 2
		return c, false, nil
	case s.step == 2:
		s.step = 3
		return s.final(resp)
	}
	return nil, true, errFinished
}

// first handles client-first-message and returns server-first-message
// (RFC 5802 §7):
//
//	client-first-message = gs2-header client-first-message-bare
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//	server-first-message = [reserved-mext ","] nonce "," salt "," iteration-count ["," extensions]
func (s *scramServer) first(ctx context.Context, resp []byte) ([]byte, error) {
	if len(resp) > maxSCRAMMessage {
		return nil, ErrMalformed
	}
	msg := string(resp)
	g, bare, err := parseGS2Header(msg)
	if err != nil {
		return nil, err
	}
	// RFC 5802 §6 channel binding negotiation.
	switch {
	case s.plus && g.flag != 'p':
		return nil, fmt.Errorf("%w: -PLUS mechanism without channel binding", ErrMalformed)
	case s.plus && g.cbType != s.opts.ChannelBinding.Type:
		// e=unsupported-channel-binding-type
		return nil, fmt.Errorf("%w: channel binding type %q not offered", ErrAuthFailed, g.cbType)
	case !s.plus && g.flag == 'p':
		return nil, fmt.Errorf("%w: channel binding requested with a non-PLUS mechanism", ErrMalformed)
	case !s.plus && g.flag == 'y' && s.opts.ChannelBinding.Type != "":
		// The client could bind and believes we cannot, yet we
		// advertised -PLUS: a downgrade (e=server-does-support-channel-binding).
		return nil, fmt.Errorf("%w: client says the server does not support channel binding", ErrAuthFailed)
	}
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return nil, ErrMalformed
	}
	if strings.HasPrefix(attrs[0], "m=") {
		return nil, fmt.Errorf("%w: mandatory extension not supported", ErrMalformed)
	}
	user, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return nil, ErrMalformed
	}
	if user, err = decodeSASLName(user); err != nil {
		return nil, err
	}
	s.username = user
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !validNonce(cnonce) {
		return nil, ErrMalformed
	}
	for _, a := range attrs[2:] {
		if !validExtension(a) {
			return nil, ErrMalformed
		}
	}

	cred, canonical, known, err := s.opts.Store.SCRAMCredentials(ctx, user, s.h.name)
	if err != nil {
		return nil, err
	}
	if known && !cred.valid(s.h) {
		return nil, fmt.Errorf("sasl: stored %s credentials are invalid", s.h.name)
	}
	if !known {
		cred, canonical = fakeSCRAMCredentials(s.opts.Secret, s.h, user, s.opts.FakeIterations), ""
	}

	s.gs2 = g
	s.bare = bare
	s.nonce = cnonce + s.serverNonce()
	s.cred, s.known, s.canonical = cred, known, canonical
	s.serverFirst = "r=" + s.nonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) +
		",i=" + strconv.Itoa(cred.Iterations)
	return []byte(s.serverFirst), nil
}

// final handles client-final-message and returns server-final-message
// (RFC 5802 §7):
//
//	client-final-message-without-proof = channel-binding "," nonce ["," extensions]
//	client-final-message = client-final-message-without-proof "," proof
func (s *scramServer) final(resp []byte) ([]byte, bool, error) {
	if len(resp) > maxSCRAMMessage {
		return nil, true, ErrMalformed
	}
	msg := string(resp)
	attrs := strings.Split(msg, ",")
	if len(attrs) < 3 {
		return nil, true, ErrMalformed
	}
	cbind, ok1 := strings.CutPrefix(attrs[0], "c=")
	nonce, ok2 := strings.CutPrefix(attrs[1], "r=")
	proofB64, ok3 := strings.CutPrefix(attrs[len(attrs)-1], "p=")
	if !ok1 || !ok2 || !ok3 {
		return nil, true, ErrMalformed
	}
	for _, a := range attrs[2 : len(attrs)-1] {
		if !validExtension(a) {
			return nil, true, ErrMalformed
		}
	}
	cbData, err1 := base64.StdEncoding.DecodeString(cbind)
	proof, err2 := base64.StdEncoding.DecodeString(proofB64)
	if err1 != nil || err2 != nil || len(proof) != s.h.size {
		return nil, true, ErrMalformed
	}
	if nonce != s.nonce {
		return nil, true, fmt.Errorf("%w: nonce mismatch", ErrAuthFailed)
	}
	// RFC 5802 §6: c= is the gs2-header, then the binding data for "p".
	want := []byte(s.gs2.raw)
	if s.gs2.flag == 'p' {
		want = append(want, s.opts.ChannelBinding.Data...)
	}
	if !hmac.Equal(cbData, want) {
		return nil, true, fmt.Errorf("%w: channel binding mismatch", ErrAuthFailed)
	}

	// RFC 5802 §3: AuthMessage, ClientSignature, ClientKey, H(ClientKey).
	withoutProof := msg[:len(msg)-len(attrs[len(attrs)-1])-1]
	authMessage := []byte(s.bare + "," + s.serverFirst + "," + withoutProof)
	clientSig := hmacSum(s.h, s.cred.StoredKey, authMessage)
	for i := range proof {
		proof[i] ^= clientSig[i] // proof now holds ClientKey
	}
	hk := s.h.new()
	hk.Write(proof)
	valid := hmac.Equal(hk.Sum(nil), s.cred.StoredKey)
	if !valid || !s.known || !authzOK(s.gs2.authzid, s.username, s.canonical) {
		return nil, true, ErrAuthFailed
	}
	s.user = s.canonical
	return []byte("v=" + base64.StdEncoding.EncodeToString(hmacSum(s.h, s.cred.ServerKey, authMessage))), true, nil
}

// serverNonce returns 18 random octets in base64 (24 printable
// characters without ','), or the fixed nonce a test set.
func (s *scramServer) serverNonce() string {
	if s.testNonce != "" {
		return s.testNonce
	}
	b := make([]byte, 18)
	rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// fakeSCRAMCredentials derives stable credentials for a user that does
// not exist, so the salt seen for the name does not change between tries.
// The name is ASCII-lowercased first: case variants of one unknown name
// look alike, as they do for a real (case-insensitive) user.
func fakeSCRAMCredentials(secret []byte, h scramHash, user string, iterations int) SCRAMCredentials {
	lower := []byte(user)
	for i, c := range lower {
		lower[i] = asciiLower(c)
	}
	derive := func(label string, n int) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("postie sasl fake SCRAM\x00" + label + "\x00" + h.name + "\x00"))
		m.Write(lower)
		return m.Sum(nil)[:n]
	}
	return SCRAMCredentials{
		Salt:       derive("salt", scramSaltLen),
		Iterations: iterations,
		StoredKey:  derive("stored", h.size),
		ServerKey:  derive("server", h.size),
	}
}

// gs2Header is the GS2 header of RFC 5801 §4, as used by SCRAM (RFC 5802
// §7) and OAUTHBEARER (RFC 7628 §3.1):
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	gs2-cbind-flag = ("p=" cb-name) / "n" / "y"
//	authzid = "a=" saslname
type gs2Header struct {
	flag    byte   // 'n', 'y' or 'p'
	cbType  string // cb-name when flag is 'p'
	authzid string // decoded; "" when absent
	raw     string // the header as sent, for SCRAM's c= check
}

// parseGS2Header splits the GS2 header off msg.
func parseGS2Header(msg string) (gs2Header, string, error) {
	var g gs2Header
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return g, "", ErrMalformed
	}
	switch {
	case flag == "n" || flag == "y":
		g.flag = flag[0]
	case strings.HasPrefix(flag, "p=") && validCBName(flag[2:]):
		g.flag, g.cbType = 'p', flag[2:]
	default:
		return g, "", ErrMalformed
	}
	az, rest, ok := strings.Cut(rest, ",")
	if !ok {
		return g, "", ErrMalformed
	}
	if az != "" {
		name, ok := strings.CutPrefix(az, "a=")
		if !ok {
			return g, "", ErrMalformed
		}
		var err error
		if g.authzid, err = decodeSASLName(name); err != nil {
			return g, "", err
		}
	}
	g.raw = msg[:len(msg)-len(rest)]
	return g, rest, nil
}

// decodeSASLName decodes a saslname (RFC 5802 §7): "=2C" is ',', "=3D"
// is '=', any other '=' is an error. The result is 1–255 octets of UTF-8
// without NUL.
func decodeSASLName(s string) (string, error) {
	if s == "" {
		return "", ErrMalformed
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			switch {
			case strings.HasPrefix(s[i:], "=2C"):
				c = ','
			case strings.HasPrefix(s[i:], "=3D"):
				c = '='
			default:
				return "", ErrMalformed
			}
			i += 2
		}
		b.WriteByte(c)
	}
	out := b.String()
	if !validField([]byte(out)) {
		return "", ErrMalformed
	}
	return out, nil
}

// validCBName: cb-name = 1*(ALPHA / DIGIT / "." / "-") (RFC 5802 §7).
func validCBName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// validNonce: c-nonce = printable, printable = %x21-2B / %x2D-7E.
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validExtension: attr-val = ALPHA "=" value (RFC 5802 §7); unknown
// optional extensions are ignored. Valid UTF-8 without NUL.
func validExtension(s string) bool {
	if len(s) < 2 || s[1] != '=' || !validField([]byte(s)) {
		return false
	}
	c := s[0]
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
