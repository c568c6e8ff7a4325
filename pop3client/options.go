package pop3client

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// TLSMode says how a connection is secured.
type TLSMode int

const (
	// TLSNone: plain POP3, no TLS (port 110). Passwords and tokens are
	// then only sent to loopback addresses unless AllowInsecureAuth.
	TLSNone TLSMode = iota
	// TLSImplicit: TLS from the first byte (POP3S, port 995; RFC 8314
	// recommends it).
	TLSImplicit
	// TLSStartTLS: plain connection upgraded with STLS (RFC 2595) right
	// after the greeting. If the server refuses STLS the dial fails; it
	// never goes on unencrypted.
	TLSStartTLS
)

func (m TLSMode) String() string {
	switch m {
	case TLSNone:
		return "none"
	case TLSImplicit:
		return "implicit"
	case TLSStartTLS:
		return "starttls"
	}
	return "TLSMode(" + strconv.Itoa(int(m)) + ")"
}

// ContextDialer dials network connections; *net.Dialer is one, and so are
// proxy dialers.
type ContextDialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// DefaultTimeout is Options.Timeout when left zero.
const DefaultTimeout = 2 * time.Minute

// Options configure a Client. The zero value (or nil) is plain POP3 with
// default timeouts.
type Options struct {
	// TLS selects plain, implicit TLS or STLS.
	TLS TLSMode
	// TLSConfig is cloned for the TLS handshake. Certificates are verified
	// against the system roots by default; set RootCAs for a private CA.
	// An empty ServerName is taken from the address dialed. MinVersion
	// defaults to TLS 1.2 (RFC 8997).
	TLSConfig *tls.Config
	// PinSHA256, when set, is the SHA-256 of the server certificate: of
	// the leaf certificate's DER encoding, which is the fingerprint that
	// "openssl x509 -noout -fingerprint -sha256" prints (ParseFingerprint
	// reads that form). The certificate is then accepted when it matches
	// the pin, whoever signed it, and refused otherwise: the pin replaces
	// CA and host name verification.
	PinSHA256 []byte
	// Timeout bounds the dial and each network read or write: a server
	// that sends or accepts nothing for this long fails the call and the
	// connection is closed. A slow but moving transfer never times out.
	// Zero means DefaultTimeout, negative means none (contexts still
	// apply).
	Timeout time.Duration
	// Dialer dials the TCP connection (default: a net.Dialer).
	Dialer ContextDialer
	// Logger receives connection events at Debug and protocol lines at
	// LevelTrace, with passwords, tokens and SASL responses replaced by
	// "***" and message bodies never logged. Default: slog.Default(),
	// which drops both at its default level.
	Logger *slog.Logger
	// AllowInsecureAuth lets USER/PASS and the PLAIN, LOGIN, XOAUTH2 and
	// OAUTHBEARER mechanisms send credentials over a connection without
	// TLS to a server that is not on a loopback address. Off by default,
	// as in net/smtp.
	AllowInsecureAuth bool
}

// LevelTrace is the log level of protocol lines, below slog.LevelDebug.
const LevelTrace = slog.LevelDebug - 4

func (o *Options) withDefaults() (Options, error) {
	var r Options
	if o != nil {
		r = *o
	}
	if r.TLS < TLSNone || r.TLS > TLSStartTLS {
		return r, errors.New("pop3client: invalid Options.TLS " + r.TLS.String())
	}
	if r.PinSHA256 != nil && len(r.PinSHA256) != 32 {
		return r, errors.New("pop3client: Options.PinSHA256 must be 32 octets (a SHA-256 digest)")
	}
	if r.PinSHA256 != nil && r.TLS == TLSNone {
		return r, errors.New("pop3client: Options.PinSHA256 needs TLS")
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultTimeout
	}
	if r.Timeout < 0 {
		r.Timeout = 0
	}
	if r.Dialer == nil {
		r.Dialer = &net.Dialer{Timeout: r.Timeout, KeepAlive: 30 * time.Second}
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	return r, nil
}

// ParseFingerprint reads a SHA-256 certificate fingerprint written in hex,
// with or without colons ("AB:CD:…" as openssl prints it), for
// Options.PinSHA256.
func ParseFingerprint(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(strings.TrimPrefix(s, "sha256:"), "SHA256:")
	b, err := hex.DecodeString(strings.ReplaceAll(s, ":", ""))
	if err != nil || len(b) != 32 {
		return nil, errors.New("pop3client: a SHA-256 fingerprint is 32 octets in hex")
	}
	return b, nil
}
