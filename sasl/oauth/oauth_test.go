package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/postie-mail/postie/sasl"
)

const (
	issuer   = "https://idp.example"
	audience = "postie"
)

var (
	now    = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock  = func() time.Time { return now }
	quiet  = slog.New(slog.DiscardHandler)
	b64url = base64.RawURLEncoding.EncodeToString
)

type keys struct {
	rsa, rsa2, other *rsa.PrivateKey
	ec               *ecdsa.PrivateKey
}

var testKeys = sync.OnceValue(func() keys {
	gen := func() *rsa.PrivateKey {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		return k
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return keys{rsa: gen(), rsa2: gen(), other: gen(), ec: ec}
})

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	e := []byte{byte(k.E >> 16), byte(k.E >> 8), byte(k.E)}
	return map[string]any{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": b64url(k.N.Bytes()), "e": b64url(e)}
}

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	p, err := k.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	return map[string]any{"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256", "x": b64url(p[1:33]), "y": b64url(p[33:])}
}

func jwks(keys ...map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func defaultJWKS() []byte {
	k := testKeys()
	return jwks(rsaJWK("rsa1", &k.rsa.PublicKey), ecJWK("ec1", &k.ec.PublicKey))
}

// claims are valid for issuer/audience at now, for alice.
func claims(edit func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"iss":   issuer,
		"aud":   audience,
		"sub":   "248289761001",
		"email": "alice@example.com",
		"iat":   now.Add(-time.Minute).Unix(),
		"exp":   now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, key crypto.PrivateKey, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// jwksServer is the identity provider's JWK Set endpoint; set replaces
// the set served.
type jwksServer struct {
	*httptest.Server
	mu   sync.Mutex
	body []byte
	hits int
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	s := &jwksServer{body: body}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.hits++
		w.Header().Set("Content-Type", "application/json")
		w.Write(s.body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte) {
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func newURLValidator(t *testing.T, srv *jwksServer, edit func(*JWTOptions)) *JWTValidator {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	opts := JWTOptions{JWKSURL: srv.URL + "/jwks", Issuer: issuer, Audience: []string{"other", audience},
		HTTPClient: srv.Client(), Logger: quiet, Now: clock}
	if edit != nil {
		edit(&opts)
	}
	v, err := NewJWTValidator(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTValidator(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, defaultJWKS())
	v := newURLValidator(t, srv, nil)
	rs := func(c jwt.MapClaims) string { return sign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, c) }
	noneTok, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	pub, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	valid := rs(claims(nil))
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64url([]byte(`{"iss":"`+issuer+`","aud":"postie","email":"bob@example.com","exp":9999999999}`)) + "." + parts[2]

	tests := []struct {
		name, user, token string
		want              string // "" for refused
	}{
		{"valid", "alice@example.com", valid, "alice@example.com"},
		{"user case differs", "Alice@Example.COM", valid, "alice@example.com"},
		{"no user named", "", valid, "alice@example.com"},
		{"user mismatch", "bob@example.com", valid, ""},
		{"Kelvin sign is not k", "alice@example.\u212Aom", rs(claims(func(c jwt.MapClaims) { c["email"] = "alice@example.kom" })), ""},
		{"ES256", "alice@example.com", sign(t, jwt.SigningMethodES256, "ec1", k.ec, claims(nil)), "alice@example.com"},
		{"no kid: tried against the set", "alice@example.com", sign(t, jwt.SigningMethodRS256, "", k.rsa, claims(nil)), "alice@example.com"},
		{"audience list", "", rs(claims(func(c jwt.MapClaims) { c["aud"] = []string{"x", audience} })), "alice@example.com"},
		// Not its sub in the email's place (issue 13, finding 8).
		{"no email: refused, not sub", "248289761001", rs(claims(func(c jwt.MapClaims) { delete(c, "email") })), ""},
		{"no email, no user named: refused", "", rs(claims(func(c jwt.MapClaims) { delete(c, "email") })), ""},
		{"verified email", "alice@example.com", rs(claims(func(c jwt.MapClaims) { c["email_verified"] = true })), "alice@example.com"},
		{"unverified email", "alice@example.com", rs(claims(func(c jwt.MapClaims) { c["email_verified"] = false })), ""},
		{"unverified email, sub named", "248289761001", rs(claims(func(c jwt.MapClaims) { c["email_verified"] = false })), ""},
		{"within leeway", "", rs(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-30 * time.Second).Unix() })), "alice@example.com"},
		{"expired", "", rs(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), ""},
		{"no exp", "", rs(claims(func(c jwt.MapClaims) { delete(c, "exp") })), ""},
		{"not yet valid", "", rs(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() })), ""},
		{"issued in the future", "", rs(claims(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() })), ""},
		{"wrong audience", "", rs(claims(func(c jwt.MapClaims) { c["aud"] = "someone-else" })), ""},
		{"no audience", "", rs(claims(func(c jwt.MapClaims) { delete(c, "aud") })), ""},
		{"wrong issuer", "", rs(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), ""},
		{"no issuer", "", rs(claims(func(c jwt.MapClaims) { delete(c, "iss") })), ""},
		{"wrong signature", "", sign(t, jwt.SigningMethodRS256, "rsa1", k.other, claims(nil)), ""},
		{"tampered payload", "bob@example.com", tampered, ""},
		{"alg none", "", noneTok, ""},
		{"HS256 with the public key as secret", "", sign(t, jwt.SigningMethodHS256, "rsa1", pub, claims(nil)), ""},
		{"alg differs from the key's", "", sign(t, jwt.SigningMethodRS512, "rsa1", k.rsa, claims(nil)), ""},
		{"ES256 signature under the RSA kid", "", sign(t, jwt.SigningMethodES256, "rsa1", k.ec, claims(nil)), ""},
		{"garbage", "", "not.a.token", ""},
		{"empty", "", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := v.ValidateToken(context.Background(), tc.user, tc.token)
			if err != nil || got != tc.want || ok != (tc.want != "") {
				t.Fatalf("ValidateToken = %q, %v, %v; want %q", got, ok, err, tc.want)
			}
		})
	}

	// Another claim names the user.
	pv := newURLValidator(t, srv, func(o *JWTOptions) { o.UserClaim = "preferred_username" })
	tok := rs(claims(func(c jwt.MapClaims) { c["preferred_username"] = "alice" }))
	if got, ok, _ := pv.ValidateToken(context.Background(), "ALICE", tok); !ok || got != "alice" {
		t.Fatalf("preferred_username: %q, %v", got, ok)
	}
	// Without it: refused, though the token has a sub.
	if got, ok, _ := pv.ValidateToken(context.Background(), "", valid); ok {
		t.Fatalf("a token without preferred_username logged in as %q", got)
	}
	// "sub" names the user only when configured.
	sv := newURLValidator(t, srv, func(o *JWTOptions) { o.UserClaim = "sub" })
	if got, ok, _ := sv.ValidateToken(context.Background(), "248289761001", valid); !ok || got != "248289761001" {
		t.Fatalf("user_claim sub: %q, %v", got, ok)
	}
}

// A token signed by a key the set did not have yet makes the validator
// fetch the set again (key rotation); an unknown key id does not make a
// login wait.
func TestJWTValidatorKeyRotation(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, defaultJWKS())
	v := newURLValidator(t, srv, nil)
	rotated := sign(t, jwt.SigningMethodRS256, "rsa2", k.rsa2, claims(nil))
	srv.set(jwks(rsaJWK("rsa1", &k.rsa.PublicKey), rsaJWK("rsa2", &k.rsa2.PublicKey)))
	if _, ok, err := v.ValidateToken(context.Background(), "", rotated); !ok || err != nil {
		t.Fatalf("token under a rotated key: %v, %v", ok, err)
	}
	start := time.Now()
	for range 5 {
		tok := sign(t, jwt.SigningMethodRS256, "unknown", k.rsa, claims(nil))
		if _, ok, _ := v.ValidateToken(context.Background(), "", tok); ok {
			t.Fatal("unknown kid accepted")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("unknown kids took %v", d)
	}
}

func TestJWTValidatorFile(t *testing.T) {
	k := testKeys()
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, defaultJWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := NewJWTValidator(context.Background(), JWTOptions{JWKSFile: path, Issuer: issuer, Audience: []string{audience}, Logger: quiet, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok, err := v.ValidateToken(context.Background(), "alice@example.com", sign(t, jwt.SigningMethodES256, "ec1", k.ec, claims(nil))); !ok || err != nil || got != "alice@example.com" {
		t.Fatalf("file JWKS: %q, %v, %v", got, ok, err)
	}
	if _, ok, _ := v.ValidateToken(context.Background(), "", sign(t, jwt.SigningMethodRS256, "rsa1", k.other, claims(nil))); ok {
		t.Fatal("wrong signature accepted")
	}
}

func TestJWTValidatorIdPDown(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, defaultJWKS())
	srv.Close()
	v := newURLValidator(t, srv, nil)
	if _, ok, err := v.ValidateToken(context.Background(), "", sign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, claims(nil))); ok || err != nil {
		t.Fatalf("with no key set: %v, %v", ok, err)
	}
}

func TestNewJWTValidatorErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwks.json")
	os.WriteFile(path, defaultJWKS(), 0o600)
	bad := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o600)
	ok := JWTOptions{JWKSFile: path, Issuer: issuer, Audience: []string{audience}}
	for name, edit := range map[string]func(*JWTOptions){
		"no issuer":     func(o *JWTOptions) { o.Issuer = "" },
		"no audience":   func(o *JWTOptions) { o.Audience = nil },
		"no source":     func(o *JWTOptions) { o.JWKSFile = "" },
		"two sources":   func(o *JWTOptions) { o.JWKSURL = "https://idp.example/jwks" },
		"http URL":      func(o *JWTOptions) { o.JWKSFile, o.JWKSURL = "", "http://idp.example/jwks" },
		"relative URL":  func(o *JWTOptions) { o.JWKSFile, o.JWKSURL = "", "/jwks" },
		"missing file":  func(o *JWTOptions) { o.JWKSFile = path + ".missing" },
		"bad file":      func(o *JWTOptions) { o.JWKSFile = bad },
		"symmetric alg": func(o *JWTOptions) { o.Algorithms = []string{"RS256", "HS256"} },
		"alg none":      func(o *JWTOptions) { o.Algorithms = []string{"none"} },
	} {
		o := ok
		edit(&o)
		if _, err := NewJWTValidator(context.Background(), o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := NewJWTValidator(context.Background(), ok); err != nil {
		t.Fatal(err)
	}
}

// The whole path: an OAUTHBEARER exchange checked by the JWT validator.
func TestOAUTHBEARERWithJWT(t *testing.T) {
	k := testKeys()
	srv := newJWKSServer(t, defaultJWKS())
	v := newURLValidator(t, srv, nil)
	msg := func(tok string) []byte {
		return []byte("n,a=alice@example.com,\x01host=pop.example\x01port=995\x01auth=Bearer " + tok + "\x01\x01")
	}
	ctx := context.Background()
	s := sasl.NewOAUTHBEARER(v, sasl.OAuthOptions{})
	if c, done, err := s.Next(ctx, msg(sign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, claims(nil)))); c != nil || !done || err != nil || s.User() != "alice@example.com" {
		t.Fatalf("valid token: %q, %v, %v", c, done, err)
	}
	s = sasl.NewOAUTHBEARER(v, sasl.OAuthOptions{})
	expired := sign(t, jwt.SigningMethodRS256, "rsa1", k.rsa, claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }))
	c, done, err := s.Next(ctx, msg(expired))
	if done || err != nil || string(c) != `{"status":"invalid_token"}` {
		t.Fatalf("expired token: %q, %v, %v", c, done, err)
	}
	if _, done, err := s.Next(ctx, []byte{1}); !done || !errors.Is(err, sasl.ErrAuthFailed) {
		t.Fatalf("after the error challenge: %v, %v", done, err)
	}
}

// introspectionServer answers RFC 7662 requests from a table of token
// responses, after checking the client's credentials.
func introspectionServer(t *testing.T, responses map[string]string) *httptest.Server {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		if !ok || id != "post:ie" || secret != "s3cr+t%41:&=" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		body, _ := io.ReadAll(r.Body)
		form, _ := url.ParseQuery(string(body))
		if form.Get("token_type_hint") != "access_token" {
			http.Error(w, "no hint", http.StatusBadRequest)
			return
		}
		resp, ok := responses[form.Get("token")]
		switch {
		case resp == "500":
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		case !ok:
			resp = `{"active":false}`
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestIntrospectionValidator(t *testing.T) {
	future, past := now.Add(time.Hour).Unix(), now.Add(-time.Minute).Unix()
	js := func(m map[string]any) string { b, _ := json.Marshal(m); return string(b) }
	srv := introspectionServer(t, map[string]string{
		"good":      js(map[string]any{"active": true, "username": "alice", "sub": "Z5O3upPC88QrAjx00dis", "exp": future, "iss": issuer, "aud": []string{"x", audience}}),
		"sub":       js(map[string]any{"active": true, "sub": "alice", "iss": issuer, "aud": audience}),
		"inactive":  js(map[string]any{"active": false, "username": "alice"}),
		"strbool":   js(map[string]any{"active": "true", "username": "alice", "iss": issuer, "aud": audience}),
		"expired":   js(map[string]any{"active": true, "username": "alice", "exp": past, "iss": issuer, "aud": audience}),
		"notyet":    js(map[string]any{"active": true, "username": "alice", "nbf": future, "iss": issuer, "aud": audience}),
		"wrongiss":  js(map[string]any{"active": true, "username": "alice", "iss": "https://evil.example", "aud": audience}),
		"wrongaud":  js(map[string]any{"active": true, "username": "alice", "iss": issuer, "aud": "other"}),
		"nouser":    js(map[string]any{"active": true, "iss": issuer, "aud": audience}),
		"500":       "500",
		"notjson":   "<html>",
		"jsonarray": "[1,2]",
	})
	v, err := NewIntrospectionValidator(IntrospectionOptions{Endpoint: srv.URL + "/introspect", ClientID: "post:ie", ClientSecret: "s3cr+t%41:&=",
		Issuer: issuer, Audience: []string{audience}, HTTPClient: srv.Client(), Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user, token string
		want        string
		sysErr      bool
	}{
		{"alice", "good", "alice", false},
		{"ALICE", "good", "alice", false},
		{"", "good", "alice", false},
		{"bob", "good", "", false},
		// A response without "username" is refused, not taken by its
		// "sub" (issue 13, finding 8).
		{"alice", "sub", "", false},
		{"", "sub", "", false},
		{"alice", "inactive", "", false},
		{"alice", "unknown", "", false},
		{"alice", "strbool", "", false},
		{"alice", "expired", "", false},
		{"alice", "notyet", "", false},
		{"alice", "wrongiss", "", false},
		{"alice", "wrongaud", "", false},
		{"alice", "nouser", "", false},
		{"alice", "500", "", true},
		{"alice", "notjson", "", true},
		{"alice", "jsonarray", "", true},
	}
	for _, tc := range tests {
		got, ok, err := v.ValidateToken(context.Background(), tc.user, tc.token)
		if got != tc.want || ok != (tc.want != "") || (err != nil) != tc.sysErr {
			t.Errorf("ValidateToken(%q, %q) = %q, %v, %v; want %q, system error %v", tc.user, tc.token, got, ok, err, tc.want, tc.sysErr)
		}
	}

	// Wrong client credentials and an unreachable endpoint are system trouble.
	bad, _ := NewIntrospectionValidator(IntrospectionOptions{Endpoint: srv.URL, ClientID: "post:ie", ClientSecret: "wrong", HTTPClient: srv.Client()})
	if _, ok, err := bad.ValidateToken(context.Background(), "alice", "good"); ok || err == nil {
		t.Errorf("wrong client secret: %v, %v", ok, err)
	}
	down := httptest.NewTLSServer(http.NotFoundHandler())
	dv, _ := NewIntrospectionValidator(IntrospectionOptions{Endpoint: down.URL, ClientID: "a", ClientSecret: "b", HTTPClient: down.Client()})
	down.Close()
	if _, ok, err := dv.ValidateToken(context.Background(), "alice", "good"); ok || err == nil {
		t.Errorf("endpoint down: %v, %v", ok, err)
	}

	for _, o := range []IntrospectionOptions{
		{Endpoint: "http://idp.example/introspect", ClientID: "a", ClientSecret: "b"},
		{Endpoint: "https://idp.example/introspect", ClientID: "a"},
		{Endpoint: "https://idp.example/introspect", ClientSecret: "b"},
		{Endpoint: "", ClientID: "a", ClientSecret: "b"},
	} {
		if _, err := NewIntrospectionValidator(o); err == nil {
			t.Errorf("NewIntrospectionValidator(%+v) succeeded", o)
		}
	}
}
