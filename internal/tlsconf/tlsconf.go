// Package tlsconf owns the TLS policy of postie's listeners (RFC 8997's
// TLS 1.2 at least, forward-secret AEAD suites, optional client
// certificates) and their certificates: several, chosen by SNI name, and
// reloaded when their files change or on request without dropping the
// sessions open. It also makes the self-signed certificate of --dev. It
// imports only the standard library.
package tlsconf

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CheckInterval is how often the certificate files are checked for
// changes (a renewal by certbot or an ACME client).
const CheckInterval = 2 * time.Second

// cipherSuites are the TLS 1.2 suites offered: forward secrecy (ECDHE)
// and AEAD only, as in Mozilla's "intermediate" profile. TLS 1.3 suites
// are not configurable in crypto/tls and are all sound.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// ServerConfig returns a server's TLS configuration: TLS 1.2 at least
// (RFC 8997), the suites above, Go's default key exchange groups (X25519
// with ML-KEM, X25519, P-256, P-384), certificates from certs. With
// clientCAs, a client certificate is asked for and verified against them,
// but never required: clients without one log in as usual.
//
// Session resumption is on: crypto/tls issues session tickets under keys
// it rotates itself and keeps in this Config, which lives as long as the
// process (certificate reloads change what GetCertificate returns, not
// the Config), so tickets stay valid across reloads.
func ServerConfig(certs *Certs, clientCAs *x509.CertPool) *tls.Config {
	c := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		CipherSuites:   cipherSuites,
		GetCertificate: certs.GetCertificate,
	}
	if clientCAs != nil {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = clientCAs
	}
	return c
}

// Pair names the files of one certificate: the PEM certificate chain and
// its PEM private key.
type Pair struct{ CertFile, KeyFile string }

// certSet is one load of every certificate: replaced whole, never changed.
type certSet struct {
	def    *tls.Certificate
	byName map[string][]*tls.Certificate // lower-case DNS name or "*.domain"
	stamps []os.FileInfo                 // of the files, in load order
	expiry []Expiry                      // of each pair, in load order
}

// Expiry is when the leaf certificate of one Pair expires.
type Expiry struct {
	CertFile string
	// Name is the certificate's first DNS name, else its subject's
	// common name, else "".
	Name      string
	NotBefore time.Time
	NotAfter  time.Time
}

// LeafExpiry returns the Expiry of a leaf certificate read from certFile.
func LeafExpiry(certFile string, leaf *x509.Certificate) Expiry {
	name := leaf.Subject.CommonName
	if len(leaf.DNSNames) > 0 {
		name = leaf.DNSNames[0]
	}
	return Expiry{CertFile: certFile, Name: name, NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter}
}

// Expiries returns the validity of the certificates in use now, one per
// Pair in the order given to LoadCerts (a reload updates them).
func (s *Certs) Expiries() []Expiry {
	return slices.Clone(s.cur.Load().expiry)
}

// Certs holds the current certificates and reloads them on request
// (Reload, on SIGHUP) or when their files change (Watch). Sessions already open keep the
// certificate they were handshaken with; new ones get the new one.
type Certs struct {
	pairs []Pair // the first is the default
	log   *slog.Logger
	cur   atomic.Pointer[certSet]

	mu         sync.Mutex // one reload at a time
	lastFailed string     // the stamps of the last load that failed, logged once
}

// LoadCerts loads the certificates of pairs; the first is the default, for
// clients that name no server or one no certificate is for. A certificate
// that cannot be loaded is an error. Problems found later are logged on
// log.
func LoadCerts(pairs []Pair, log *slog.Logger) (*Certs, error) {
	if len(pairs) == 0 {
		return nil, errors.New("tls: no certificate")
	}
	if log == nil {
		log = slog.Default()
	}
	s := &Certs{pairs: slices.Clone(pairs), log: log}
	set, err := s.load()
	if err != nil {
		return nil, err
	}
	s.cur.Store(set)
	return s, nil
}

// load reads every certificate and indexes it by its DNS names.
func (s *Certs) load() (*certSet, error) {
	set := &certSet{byName: map[string][]*tls.Certificate{}}
	for _, p := range s.pairs {
		for _, f := range []string{p.CertFile, p.KeyFile} {
			fi, err := os.Stat(f)
			if err != nil {
				return nil, fmt.Errorf("tls: %w", err)
			}
			set.stamps = append(set.stamps, fi)
		}
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %s: %w", p.CertFile, err)
		}
		leaf := cert.Leaf
		if leaf == nil {
			if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
				return nil, fmt.Errorf("tls: %s: %w", p.CertFile, err)
			}
			cert.Leaf = leaf
		}
		if now := time.Now(); now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			s.log.Warn("tls: certificate not valid now", "file", p.CertFile, "not_before", leaf.NotBefore, "not_after", leaf.NotAfter)
		}
		set.expiry = append(set.expiry, LeafExpiry(p.CertFile, leaf))
		if set.def == nil {
			set.def = &cert
		}
		names := leaf.DNSNames
		if len(names) == 0 && leaf.Subject.CommonName != "" {
			names = []string{leaf.Subject.CommonName}
		}
		for _, n := range names {
			n = strings.ToLower(strings.TrimSuffix(n, "."))
			set.byName[n] = append(set.byName[n], &cert)
		}
	}
	return set, nil
}

// GetCertificate picks the certificate for a handshake: one whose DNS
// names match the SNI name exactly, else by wildcard, preferring one the
// client supports (an ECDSA and an RSA certificate for the same name);
// else the default.
func (s *Certs) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	set := s.cur.Load()
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	cands := set.byName[name]
	if len(cands) == 0 {
		if i := strings.IndexByte(name, '.'); i > 0 {
			cands = set.byName["*"+name[i:]]
		}
	}
	for _, c := range cands {
		if hello.SupportsCertificate(c) == nil {
			return c, nil
		}
	}
	if len(cands) > 0 {
		return cands[0], nil
	}
	return set.def, nil
}

// Reload loads the certificates again; when force is false, only if a
// file changed since the last successful load. On error the current
// certificates stay in use.
func (s *Certs) Reload(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !force && !s.changed() {
		return nil
	}
	set, err := s.load()
	if err != nil {
		// A renewal writes the certificate and the key one after the
		// other: a mismatch may last until the next check. Log each
		// failing state of the files once.
		key := s.stampKey()
		if force || key != s.lastFailed {
			s.log.Error("tls: reloading certificates failed; keeping the current ones", "err", err)
		}
		s.lastFailed = key
		return err
	}
	s.lastFailed = ""
	s.cur.Store(set)
	s.log.Info("tls: certificates reloaded", "certificates", len(s.pairs))
	return nil
}

// changed reports whether a file differs from the last successful load:
// another file (a renewed symlink target), size or modification time.
func (s *Certs) changed() bool {
	old := s.cur.Load().stamps
	i := 0
	for _, p := range s.pairs {
		for _, f := range []string{p.CertFile, p.KeyFile} {
			fi, err := os.Stat(f)
			if err != nil {
				return true
			}
			o := old[i]
			i++
			if !os.SameFile(fi, o) || fi.Size() != o.Size() || !fi.ModTime().Equal(o.ModTime()) {
				return true
			}
		}
	}
	return false
}

// stampKey describes the current state of the files, to log a failing
// state once.
func (s *Certs) stampKey() string {
	var b strings.Builder
	for _, p := range s.pairs {
		for _, f := range []string{p.CertFile, p.KeyFile} {
			if fi, err := os.Stat(f); err == nil {
				fmt.Fprintf(&b, "%s %d %d;", f, fi.Size(), fi.ModTime().UnixNano())
			}
		}
	}
	return b.String()
}

// Watch reloads the certificates when their files change, until ctx ends.
func (s *Certs) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Reload(false)
		}
	}
}

// EnsureSelfSigned makes a self-signed certificate (postie serve --dev's)
// at certPath and keyPath unless a valid one is there for another day:
// P-256, for localhost, 127.0.0.1 and ::1, valid for a year. It is its own
// CA: clients trust it with --cacert certPath and the like.
func EnsureSelfSigned(certPath, keyPath string) (created bool, err error) {
	if pair, err := tls.LoadX509KeyPair(certPath, keyPath); err == nil {
		if leaf, err := x509.ParseCertificate(pair.Certificate[0]); err == nil && time.Now().Add(24*time.Hour).Before(leaf.NotAfter) {
			return false, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("dev certificate: %w", err)
	}
	certPEM, keyPEM, err := SelfSigned("localhost", time.Now())
	if err != nil {
		return false, fmt.Errorf("dev certificate: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return false, err
	}
	// The key first: a certificate without its key would not load.
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return false, fmt.Errorf("dev certificate: %w", err)
	}
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		return false, fmt.Errorf("dev certificate: %w", err)
	}
	return true, nil
}

// SelfSigned makes a self-signed P-256 certificate and key in PEM for cn,
// localhost, 127.0.0.1 and ::1, valid from now (less an hour of clock skew)
// for a year.
func SelfSigned(cn string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	names := []string{"localhost"}
	if cn != "localhost" {
		names = append(names, cn)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn, Organization: []string{"postie --dev"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              names,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}
