package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// webCert makes a self-signed certificate for names (the first also its
// common name) and writes cert.pem and key.pem into dir.
func webCert(t *testing.T, dir string, names ...string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
		DNSNames: names,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600)
}

// postie dns prints exactly these records, taken from the config: the
// host from the certificate (its first name that is not a wildcard), the
// ports from the POP3 listeners, POP3S first.
func TestDNSRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	webCert(t, dir, "*.example.org", "mail.example.org", "autoconfig.example.org")
	cfg := filepath.Join(dir, "postie.toml")
	write := func(text string) {
		if err := os.WriteFile(cfg, []byte("data_dir = \".\"\n"+text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`[pop3]
listen = ["127.0.0.1:110", "[2001:db8::1]:110", "192.0.2.1:1110"]
listen_tls = ["0.0.0.0:995"]
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[intake]
local_domains = ["example.org", "example.net"]
[web]
listen = ["0.0.0.0:443"]
`)
	r := mustPostie(t, 0, "", "dns", "--config", cfg, "Example.NET.")
	want := "; DNS records for example.net: mail clients find the POP3 server mail.example.org by them.\n" +
		"; RFC 6186 service records (priority weight port target); implicit TLS first (RFC 8314).\n" +
		"_pop3s._tcp.example.net.\tIN\tSRV\t0 1 995 mail.example.org.\n" +
		"_pop3._tcp.example.net.\tIN\tSRV\t10 1 110 mail.example.org.\n" +
		"_pop3._tcp.example.net.\tIN\tSRV\t11 1 1110 mail.example.org.\n" +
		"; _submission._tcp: not offered: postie has no mail submission; publish your MTA's.\n" +
		"; Autoconfiguration ([web]): Thunderbird asks https://autoconfig.DOMAIN/, Outlook\n" +
		"; https://autodiscover.DOMAIN/, both on port 443; the certificate must name them.\n" +
		"autoconfig.example.net.\tIN\tCNAME\tmail.example.org.\n" +
		"autodiscover.example.net.\tIN\tCNAME\tmail.example.org.\n"
	if r.stdout != want {
		t.Errorf("postie dns:\n%s\nwant:\n%s", r.stdout, want)
	}

	// web.mail_host wins; no web listener, no autoconfig names; POP3S only.
	write(`[pop3]
listen = ["127.0.0.1:110"]
listen_tls = ["[::]:995"]
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[web]
mail_host = "pop.example.com"
`)
	r = mustPostie(t, 0, "", "dns", "--config", cfg, "example.com")
	want = "; DNS records for example.com: mail clients find the POP3 server pop.example.com by them.\n" +
		"; RFC 6186 service records (priority weight port target); implicit TLS first (RFC 8314).\n" +
		"_pop3s._tcp.example.com.\tIN\tSRV\t0 1 995 pop.example.com.\n" +
		"; _submission._tcp: not offered: postie has no mail submission; publish your MTA's.\n" +
		"; autoconfig and autodiscover: not offered: web.listen is empty.\n"
	if r.stdout != want {
		t.Errorf("postie dns with mail_host:\n%s\nwant:\n%s", r.stdout, want)
	}

	// Bad input: not a domain, a domain not served, a port 0, no TLS.
	for _, tc := range []struct {
		config, domain, stderr string
		code                   int
	}{
		{"[pop3]\nlisten_tls = [\"0.0.0.0:995\"]\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n", "exa mple.org", "postie: dns: \"exa mple.org\" is not a domain name\nRun 'postie dns --help' for usage.\n", 64},
		{"[pop3]\nlisten_tls = [\"0.0.0.0:995\"]\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n[intake]\nlocal_domains = [\"example.org\"]\n", "example.com", "postie: dns: example.com is not one of intake.local_domains (example.org)\n", 65},
		{"[pop3]\nlisten_tls = [\"0.0.0.0:0\"]\n[tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n", "example.org", "postie: dns: pop3.listen_tls: \"0.0.0.0:0\": port 0 is chosen at start; name the port clients use\n", 78},
		{"[pop3]\nlisten = [\"0.0.0.0:110\"]\n[web]\nmail_host = \"mail.example.org\"\n", "example.org", "postie: dns: no POP3 listener with TLS to tell clients of: set pop3.listen_tls, or tls.cert_file for STLS on pop3.listen\n", 78},
	} {
		write(tc.config)
		r := mustPostie(t, tc.code, "", "dns", "--config", cfg, tc.domain)
		if r.stderr != tc.stderr || r.stdout != "" {
			t.Errorf("dns %s: stderr %q, want %q (stdout %q)", tc.domain, r.stderr, tc.stderr, r.stdout)
		}
	}
}
