package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Dovecot is a private Dovecot POP3 server on loopback, started in the
// foreground as a child of the test and stopped at cleanup. Users are
// user1..userN with passwords pass1..passN and a Maildir each.
type Dovecot struct {
	Root     string
	Addr     string // plain POP3 (STLS offered)
	TLSAddr  string // implicit TLS
	CertPEM  []byte // self-signed certificate for 127.0.0.1/localhost
	uid, gid int
	seq      atomic.Int64
}

// StartDovecot starts a Dovecot with n users, or calls Missing when Dovecot
// is not installed.
func StartDovecot(t testing.TB, n int) *Dovecot {
	t.Helper()
	bin := LookPath(t, "dovecot")
	d := &Dovecot{}
	d.Root, d.uid, d.gid = newDovecotRoot(t)
	certPEM, keyPEM := selfSigned(t)
	d.CertPEM = certPEM
	write(t, filepath.Join(d.Root, "etc/cert.pem"), certPEM, 0o644)
	write(t, filepath.Join(d.Root, "etc/key.pem"), keyPEM, 0o600)
	var pw strings.Builder
	for i := 1; i <= n; i++ {
		home := filepath.Join(d.Root, "mail", "user"+strconv.Itoa(i))
		fmt.Fprintf(&pw, "user%d:{PLAIN}pass%d:%d:%d::%s::\n", i, i, d.uid, d.gid, home)
		for _, s := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(home, "Maildir", s), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(t, filepath.Join(d.Root, "etc/passwd"), []byte(pw.String()), 0o644)
	chownR(t, filepath.Join(d.Root, "mail"), d.uid, d.gid)

	plain, tlsPort := FreePort(t), FreePort(t)
	d.Addr = "127.0.0.1:" + strconv.Itoa(plain)
	d.TLSAddr = "127.0.0.1:" + strconv.Itoa(tlsPort)
	conf := fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/run/state
instance_name = postie-test-%[2]d
protocols = pop3
listen = 127.0.0.1
log_path = %[1]s/log/dovecot.log
ssl = yes
ssl_cert = <%[1]s/etc/cert.pem
ssl_key = <%[1]s/etc/key.pem
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN %[1]s/etc/passwd
}
userdb {
  driver = passwd-file
  args = %[1]s/etc/passwd
}
service pop3-login {
  inet_listener pop3 {
    port = %[2]d
  }
  inet_listener pop3s {
    port = %[3]d
    ssl = yes
  }
  service_count = 0
}
protocol pop3 {
  pop3_uidl_format = %%08Xu%%08Xv
}
`, d.Root, plain, tlsPort)
	confPath := filepath.Join(d.Root, "etc/dovecot.conf")
	write(t, confPath, []byte(conf), 0o644)

	t.Cleanup(startDovecot(t, bin, d.Root, confPath, d.Addr))
	return d
}

// Maildir returns the Maildir of user (e.g. "user1").
func (d *Dovecot) Maildir(user string) string {
	return filepath.Join(d.Root, "mail", user, "Maildir")
}

// Deliver puts msg into user's Maildir the way an MDA does: a write to
// tmp/ and a rename into new/. Names sort in delivery order.
func (d *Dovecot) Deliver(t testing.TB, user string, msg []byte) {
	t.Helper()
	md := d.Maildir(user)
	name := fmt.Sprintf("%d.M%06dP%d.test", 1700000000+d.seq.Add(1), 0, os.Getpid())
	mdaDeliver(t, md, name, msg, d.uid, d.gid)
}

// mdaDeliver writes msg to the Maildir md's tmp/ as uid:gid and renames
// it into new/ under name, as an MDA does.
func mdaDeliver(t testing.TB, md, name string, msg []byte, uid, gid int) {
	t.Helper()
	tmp := filepath.Join(md, "tmp", name)
	write(t, tmp, msg, 0o600)
	if err := os.Chown(tmp, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(md, "new", name)); err != nil {
		t.Fatal(err)
	}
}

// Log returns Dovecot's log so far.
func (d *Dovecot) Log() string { return dovecotLog(d.Root) }

// dovecotLog reads the log of the Dovecot instance under root.
func dovecotLog(root string) string {
	b, _ := os.ReadFile(filepath.Join(root, "log/dovecot.log"))
	return string(b)
}

func write(t testing.TB, path string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, b, mode); err != nil {
		t.Fatal(err)
	}
}

func chownR(t testing.TB, root string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// selfSigned makes an ECDSA certificate for localhost and 127.0.0.1.
func selfSigned(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// SelfSigned makes a P-256 certificate valid for localhost, 127.0.0.1 and
// ::1 for a year, in PEM.
func SelfSigned() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}
