package testenv

import (
	"crypto/tls"
	"testing"
)

// SelfSignedCert makes a certificate as SelfSigned does and returns it
// ready for a tls.Config, with its PEM (for a client's pool or a file).
func SelfSignedCert(t testing.TB) (cert tls.Certificate, certPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	cert, err = tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return cert, certPEM
}

// ServerTLSConfig is a server's TLS configuration (TLS 1.2 and later)
// with a certificate from SelfSignedCert, and that certificate's PEM.
func ServerTLSConfig(t testing.TB) (*tls.Config, []byte) {
	t.Helper()
	cert, certPEM := SelfSignedCert(t)
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, certPEM
}
