package sasl

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

func testCertificate(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tlsPair makes one TLS connection over loopback TCP and returns the
// server's and the client's view of it once the handshake is done.
func tlsPair(t *testing.T, version uint16) (server, client tls.ConnectionState) {
	t.Helper()
	cert := testCertificate(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		cs  tls.ConnectionState
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer c.Close()
		tc := c.(*tls.Conn)
		err = tc.Handshake()
		ch <- result{tc.ConnectionState(), err}
		// Hold the connection until the client is done with it.
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		c.Read(make([]byte, 1))
	}()
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool.AddCert(leaf)
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: version, MaxVersion: version})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.cs, conn.ConnectionState()
}

// The binding the server computes equals the one an independent client
// computes from its side of a real TLS connection, and a SCRAM-PLUS
// exchange over it succeeds.
func TestChannelBindingFromTLS(t *testing.T) {
	users := testSCRAMUsers(t)
	for _, tc := range []struct {
		name    string
		version uint16
		typ     string
		client  func(tls.ConnectionState) (scram.ChannelBinding, error)
	}{
		{"TLS 1.3", tls.VersionTLS13, ChannelBindingTLSExporter, func(cs tls.ConnectionState) (scram.ChannelBinding, error) {
			return scram.NewTLSExporterBinding(&cs)
		}},
		{"TLS 1.2", tls.VersionTLS12, ChannelBindingTLSUnique, func(cs tls.ConnectionState) (scram.ChannelBinding, error) {
			return scram.NewTLSUniqueBinding(cs.TLSUnique), nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			scs, ccs := tlsPair(t, tc.version)
			server := ChannelBindingFromTLS(&scs)
			client, err := tc.client(ccs)
			if err != nil {
				t.Fatal(err)
			}
			if server.Type != tc.typ || string(client.Type) != tc.typ || len(server.Data) == 0 || !bytes.Equal(server.Data, client.Data) {
				t.Fatalf("server %s %x, client %s %x", server.Type, server.Data, client.Type, client.Data)
			}
			other, _ := tlsPair(t, tc.version)
			if bytes.Equal(ChannelBindingFromTLS(&other).Data, server.Data) {
				t.Fatal("two connections have the same binding")
			}

			cfg := &Config{SCRAM: users, SCRAMSecret: testSecret}
			conn := Conn{TLS: true, ChannelBinding: server}
			s, err := cfg.New("SCRAM-SHA-256-PLUS", conn)
			if err != nil {
				t.Fatal(err)
			}
			conv := xdgClient(t, "SCRAM-SHA-256", "alice", "secret", "").NewConversationWithChannelBinding(client)
			if tr := xdgExchange(t, s, conv, true); tr.err != nil || s.User() != "alice" {
				t.Fatalf("SCRAM-SHA-256-PLUS: %v", tr.err)
			}
			// The other connection's binding does not fit this one.
			s, _ = cfg.New("SCRAM-SHA-256-PLUS", Conn{TLS: true, ChannelBinding: ChannelBindingFromTLS(&other)})
			conv = xdgClient(t, "SCRAM-SHA-256", "alice", "secret", "").NewConversationWithChannelBinding(client)
			if tr := xdgExchange(t, s, conv, true); tr.err == nil {
				t.Fatal("binding of another connection accepted")
			}
		})
	}
	if cb := ChannelBindingFromTLS(nil); cb.Type != "" {
		t.Errorf("nil state: %+v", cb)
	}
	if cb := ChannelBindingFromTLS(&tls.ConnectionState{Version: tls.VersionTLS13}); cb.Type != "" {
		t.Errorf("incomplete handshake: %+v", cb)
	}
}
