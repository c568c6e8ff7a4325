package auth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"testing"

	"github.com/postie-mail/postie/sasl"
)

func TestClientCertUser(t *testing.T) {
	db, _, _ := openTest(t, "Alice:{PLAIN}a\nbob:{PLAIN}b\n", Options{})
	state := func(cn string, emails ...string) *tls.ConnectionState {
		leaf := &x509.Certificate{Subject: pkix.Name{CommonName: cn}, EmailAddresses: emails}
		return &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{leaf}}}
	}
	for _, tc := range []struct {
		name string
		cs   *tls.ConnectionState
		want string
	}{
		{"common name", state("bob"), "bob"},
		{"the file's spelling", state("alice"), "Alice"},
		{"first address that names a user", state("bob", "nobody@example.org", "alice"), "Alice"},
		{"no address names one: the common name", state("bob", "nobody@example.org"), "bob"},
		{"no user", state("carol", "carol@example.org"), ""},
		{"not a user name", state("../bob"), ""},
		{"unverified", &tls.ConnectionState{PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "bob"}}}}, ""},
		{"empty chain", &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{}}}, ""},
	} {
		if got := db.ClientCertUser(tc.cs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// tokens is a validator that knows a fixed set of tokens.
type tokens map[string]string

func (v tokens) ValidateToken(_ context.Context, user, token string) (string, bool, error) {
	if token == "down" {
		return "", false, errors.New("identity provider unreachable")
	}
	name, ok := v[token]
	return name, ok, nil
}

func TestTokenUsers(t *testing.T) {
	db, _, _ := openTest(t, "Alice:{PLAIN}a\n", Options{})
	valid := tokens{"t-alice": "alice", "t-gone": "gone"}
	builds := 0
	tu, err := db.TokenUsers(func() (sasl.TokenValidator, error) {
		builds++
		if builds == 2 {
			return nil, errors.New("bad JWK Set")
		}
		return valid, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(token, wantUser string, wantOK, wantErr bool) {
		t.Helper()
		u, ok, err := tu.ValidateToken(context.Background(), "", token)
		if u != wantUser || ok != wantOK || (err != nil) != wantErr {
			t.Errorf("token %q: %q, %v, %v; want %q, %v, error %v", token, u, ok, err, wantUser, wantOK, wantErr)
		}
	}
	check("t-alice", "Alice", true, false) // the database's spelling
	check("t-gone", "", false, false)      // valid token, no such user
	check("t-none", "", false, false)
	check("down", "", false, true)
	// A failed rebuild keeps the validator in use.
	if err := tu.Reload(); err == nil {
		t.Errorf("Reload with a failing build succeeded")
	}
	check("t-alice", "Alice", true, false)
	if err := tu.Reload(); err != nil {
		t.Errorf("Reload: %v", err)
	}
	if builds != 3 {
		t.Errorf("%d builds, want 3", builds)
	}
	if _, err := db.TokenUsers(func() (sasl.TokenValidator, error) { return nil, errors.New("no") }); err == nil {
		t.Errorf("TokenUsers with a failing build succeeded")
	}
}
