package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for cn (and localhost) into
// dir and returns its files and the DER of the certificate.
func writePair(t testing.TB, dir, cn string) (Pair, []byte) {
	t.Helper()
	certPEM, keyPEM, err := SelfSigned(cn, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer("*", "star", ".", "_").Replace(cn)
	p := Pair{CertFile: filepath.Join(dir, name+"-cert.pem"), KeyFile: filepath.Join(dir, name+"-key.pem")}
	if err := os.WriteFile(p.KeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.CertFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return p, c.Certificate[0]
}

// served returns the certificate a real handshake over loopback gets when
// the client names serverName.
func served(t *testing.T, cfg *tls.Config, serverName string) []byte {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		tc := tls.Server(c, cfg)
		tc.Handshake()
		tc.Close()
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake for %q: %v", serverName, err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if st.Version < tls.VersionTLS12 {
		t.Errorf("version %x, below TLS 1.2", st.Version)
	}
	return st.PeerCertificates[0].Raw
}

func TestCertsBySNI(t *testing.T) {
	dir := t.TempDir()
	def, defDER := writePair(t, dir, "default.test")
	wild, wildDER := writePair(t, dir, "*.example.org")
	exact, exactDER := writePair(t, dir, "pop.example.org")
	certs, err := LoadCerts([]Pair{def, wild, exact}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(certs, nil)
	for _, tc := range []struct {
		name string
		want []byte
	}{
		{"pop.example.org", exactDER},
		{"POP.Example.ORG.", exactDER},
		{"mail.example.org", wildDER},
		{"a.b.example.org", defDER}, // a wildcard covers one label
		{"default.test", defDER},
		{"other.test", defDER},
		{"", defDER},
	} {
		if got := served(t, cfg, tc.name); !bytes.Equal(got, tc.want) {
			t.Errorf("SNI %q: not the expected certificate", tc.name)
		}
	}
}

// A reload takes changed files; a broken pair keeps the current
// certificates and is an error; unchanged files are not read again.
func TestCertsReload(t *testing.T) {
	dir := t.TempDir()
	p, oldDER := writePair(t, dir, "default.test")
	certs, err := LoadCerts([]Pair{p}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig(certs, nil)
	if err := certs.Reload(false); err != nil {
		t.Fatalf("reload without change: %v", err)
	}
	// The key of another certificate: the pair no longer matches.
	other, _ := writePair(t, t.TempDir(), "default.test")
	key, err := os.ReadFile(other.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.KeyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.Reload(false); err == nil || !strings.Contains(err.Error(), "tls: "+p.CertFile) {
		t.Errorf("reload of a mismatched pair: %v", err)
	}
	if got := served(t, cfg, "default.test"); !bytes.Equal(got, oldDER) {
		t.Errorf("a failed reload changed the certificate")
	}
	// The matching certificate arrives: reloaded.
	cert, err := os.ReadFile(other.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.CertFile, cert, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := certs.Reload(false); err != nil {
		t.Fatal(err)
	}
	if got := served(t, cfg, "default.test"); bytes.Equal(got, oldDER) {
		t.Errorf("still the old certificate after a reload")
	}
	// A missing file at start is an error naming it.
	if _, err := LoadCerts([]Pair{{CertFile: filepath.Join(dir, "none.pem"), KeyFile: p.KeyFile}}, nil); err == nil || !strings.Contains(err.Error(), "none.pem") {
		t.Errorf("LoadCerts of a missing file: %v", err)
	}
	if _, err := LoadCerts(nil, nil); err == nil {
		t.Errorf("LoadCerts of no pair succeeded")
	}
}

// With client CAs, a certificate is asked for and verified, never required.
func TestClientCerts(t *testing.T) {
	dir := t.TempDir()
	p, _ := writePair(t, dir, "default.test")
	certs, err := LoadCerts([]Pair{p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg := ServerConfig(certs, nil); cfg.ClientAuth != tls.NoClientCert || cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("without CAs: ClientAuth %v, MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
	}
	pool := x509.NewCertPool()
	if cfg := ServerConfig(certs, pool); cfg.ClientAuth != tls.VerifyClientCertIfGiven || cfg.ClientCAs != pool {
		t.Errorf("with CAs: ClientAuth %v", cfg.ClientAuth)
	}
	// No TLS 1.2 suite without forward secrecy and AEAD.
	for _, id := range cipherSuites {
		name := tls.CipherSuiteName(id)
		if !strings.HasPrefix(name, "TLS_ECDHE_") || !(strings.Contains(name, "_GCM_") || strings.Contains(name, "CHACHA20_POLY1305")) {
			t.Errorf("suite %s offered", name)
		}
	}
}

func TestEnsureSelfSigned(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	created, err := EnsureSelfSigned(cert, key)
	if err != nil || !created {
		t.Fatalf("first call: created %v, %v", created, err)
	}
	first, _ := os.ReadFile(cert)
	created, err = EnsureSelfSigned(cert, key)
	if err != nil || created {
		t.Fatalf("second call: created %v, %v", created, err)
	}
	if again, _ := os.ReadFile(cert); !bytes.Equal(first, again) {
		t.Errorf("a valid certificate was replaced")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", fi.Mode().Perm(), err)
	}
	// A key that cannot be read is an error, not replaced.
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureSelfSigned(cert, key); err == nil || !strings.HasPrefix(err.Error(), "dev certificate: ") {
		t.Errorf("broken key: %v", err)
	}
}
