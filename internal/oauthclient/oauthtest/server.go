// Package oauthtest is an OAuth 2.0 authorization server for tests: the
// authorization endpoint (code grant with PKCE, RFC 6749 §4.1, RFC 7636),
// the device authorization endpoint (RFC 8628), the token endpoint
// (authorization_code, refresh_token, device_code) and a JWK Set, issuing
// access tokens that are JWTs signed with ES256 (RFC 7519, RFC 9068).
//
// It is strict where a real provider is: a PKCE verifier must match its
// S256 challenge, the redirect_uri of the token request must equal the
// authorization request's, a code works once (and its reuse revokes what
// it gave), a device code polled faster than the interval gets slow_down,
// client credentials are checked on every request. It listens on
// 127.0.0.1 on a port the system picks.
package oauthtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Options configure a Server.
type Options struct {
	ClientID     string
	ClientSecret string // "" for a public client
	// Scope must be among those a client asks for (default "mail").
	Scope string
	// Subject is the user the tokens are for ("sub" and "email").
	Subject string
	// TokenTTL is the life of access tokens (default 1h).
	TokenTTL time.Duration
	// RotateRefresh issues a new refresh token on each refresh and
	// revokes the old one (as Microsoft does).
	RotateRefresh bool
	// DeviceInterval is the device grant's polling interval (default 5s).
	DeviceInterval time.Duration
	// Now is the clock (default time.Now); the device grant's interval
	// and expiry and the tokens' "exp" follow it.
	Now func() time.Time
}

// Server is a running authorization server.
type Server struct {
	URL    string // http://127.0.0.1:port
	Issuer string
	opts   Options
	key    *ecdsa.PrivateKey
	srv    *http.Server

	mu       sync.Mutex
	codes    map[string]*grant
	refresh  map[string]*grant // refresh token → grant (revoked: deleted)
	devices  map[string]*device
	users    map[string]*device // user code → device
	deny     bool
	counts   map[string]int
	accessOK map[string]bool // access tokens not revoked
}

type grant struct {
	redirect, challenge, scope string
	used                       bool
	expires                    time.Time
	issued                     []string // refresh and access tokens given for this code
}

type device struct {
	code, userCode, scope string
	expires               time.Time
	interval              time.Duration
	lastPoll              time.Time
	approved, denied      bool
	used                  bool
}

// Start starts a server; Close stops it.
func Start(opts Options) (*Server, error) {
	if opts.Scope == "" {
		opts.Scope = "mail"
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = time.Hour
	}
	if opts.DeviceInterval == 0 {
		opts.DeviceInterval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{
		URL: "http://" + ln.Addr().String(), opts: opts, key: key,
		codes: map[string]*grant{}, refresh: map[string]*grant{}, devices: map[string]*device{},
		users: map[string]*device{}, counts: map[string]int{}, accessOK: map[string]bool{},
	}
	s.Issuer = s.URL
	mux := http.NewServeMux()
	mux.HandleFunc("/authorize", s.authorize)
	mux.HandleFunc("/token", s.token)
	mux.HandleFunc("/device", s.deviceAuth)
	mux.HandleFunc("/device/verify", s.verify)
	mux.HandleFunc("/jwks", s.jwks)
	s.srv = &http.Server{Handler: mux}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// AuthURL, TokenURL, DeviceURL and JWKSURL are the endpoints.
func (s *Server) AuthURL() string   { return s.URL + "/authorize" }
func (s *Server) TokenURL() string  { return s.URL + "/token" }
func (s *Server) DeviceURL() string { return s.URL + "/device" }
func (s *Server) JWKSURL() string   { return s.URL + "/jwks" }

// Deny makes the user refuse consent from now on (access_denied).
func (s *Server) Deny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

// RevokeAll revokes every refresh token (the user withdrew consent).
func (s *Server) RevokeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.refresh)
	clear(s.accessOK)
}

// Count is how many requests of a kind the server answered with a token
// or an error: "authorization_code", "refresh_token", "device_code",
// "device", "authorize".
func (s *Server) Count(kind string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[kind]
}

// Approve plays the user who types userCode at the verification URI and
// consents.
func (s *Server) Approve(userCode string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.users[userCode]
	if d == nil {
		return false
	}
	if s.deny {
		d.denied = true
	} else {
		d.approved = true
	}
	return true
}

func random() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// loopbackRedirect accepts http://127.0.0.1:PORT/ with any port (RFC 8252
// §7.3), nothing else.
var loopbackRedirect = regexp.MustCompile(`^http://127\.0\.0\.1:[1-9][0-9]{0,4}/$`)

// RFC 7636 §4.1: 43 to 128 unreserved characters.
var verifierSyntax = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

func (s *Server) hasScope(scope string) bool {
	return slices.Contains(strings.Fields(scope), s.opts.Scope)
}

func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		http.Error(w, "GET only", http.StatusMethodNotAllowed)
		return
	}
	q := r.URL.Query()
	// RFC 6749 §4.1.2.1: without a valid client and redirect URI the
	// error goes to the user, not to the redirect.
	if q.Get("client_id") != s.opts.ClientID {
		http.Error(w, "unknown client", http.StatusBadRequest)
		return
	}
	redirect := q.Get("redirect_uri")
	if !loopbackRedirect.MatchString(redirect) {
		http.Error(w, "redirect_uri not registered", http.StatusBadRequest)
		return
	}
	back := func(params url.Values) {
		params.Set("state", q.Get("state"))
		http.Redirect(w, r, redirect+"?"+params.Encode(), http.StatusFound)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts["authorize"]++
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE with S256 required"}})
	case !s.hasScope(q.Get("scope")):
		back(url.Values{"error": {"invalid_scope"}})
	case s.deny:
		back(url.Values{"error": {"access_denied"}, "error_description": {"The user said no"}})
	default:
		code := random()
		s.codes[code] = &grant{redirect: redirect, challenge: q.Get("code_challenge"), scope: q.Get("scope"), expires: s.opts.Now().Add(10 * time.Minute)}
		back(url.Values{"code": {code}})
	}
}

// client checks the client credentials of a token or device request.
func (s *Server) client(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return false
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "form encoding required")
		return false
	}
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > 0 {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return false
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id != s.opts.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return false
	}
	return true
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if !s.client(w, r) {
		return
	}
	f := r.PostForm
	s.mu.Lock()
	defer s.mu.Unlock()
	kind := f.Get("grant_type")
	switch kind {
	case "authorization_code":
		s.counts[kind]++
		g := s.codes[f.Get("code")]
		switch {
		case g == nil || !s.opts.Now().Before(g.expires):
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown or expired code")
		case g.used:
			// RFC 6749 §4.1.2: a code used twice revokes the tokens
			// it gave.
			for _, t := range g.issued {
				delete(s.refresh, t)
				delete(s.accessOK, t)
			}
			oauthError(w, http.StatusBadRequest, "invalid_grant", "code already used")
		case f.Get("redirect_uri") != g.redirect:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri mismatch")
		case !verifierSyntax.MatchString(f.Get("code_verifier")):
			oauthError(w, http.StatusBadRequest, "invalid_request", "bad code_verifier")
		case subtle.ConstantTimeCompare([]byte(s256(f.Get("code_verifier"))), []byte(g.challenge)) != 1:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "PKCE verification failed")
		default:
			g.used = true
			s.issue(w, g, "")
		}
	case "refresh_token":
		s.counts[kind]++
		old := f.Get("refresh_token")
		g := s.refresh[old]
		if g == nil {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "refresh token revoked or expired")
			return
		}
		if sc := f.Get("scope"); sc != "" && sc != g.scope {
			oauthError(w, http.StatusBadRequest, "invalid_scope", "")
			return
		}
		if s.opts.RotateRefresh {
			delete(s.refresh, old)
			s.issue(w, g, "")
			return
		}
		s.issue(w, g, old)
	case "urn:ietf:params:oauth:grant-type:device_code":
		s.counts["device_code"]++
		d := s.devices[f.Get("device_code")]
		now := s.opts.Now()
		switch {
		case d == nil || d.used:
			oauthError(w, http.StatusBadRequest, "invalid_grant", "unknown device code")
		case !now.Before(d.expires):
			oauthError(w, http.StatusBadRequest, "expired_token", "")
		case !d.lastPoll.IsZero() && now.Sub(d.lastPoll) < d.interval:
			// RFC 8628 §3.5: too fast; the client must add 5s.
			d.interval += 5 * time.Second
			d.lastPoll = now
			oauthError(w, http.StatusBadRequest, "slow_down", "")
		case d.denied:
			d.used = true
			oauthError(w, http.StatusBadRequest, "access_denied", "")
		case !d.approved:
			d.lastPoll = now
			oauthError(w, http.StatusBadRequest, "authorization_pending", "")
		default:
			d.used = true
			s.issue(w, &grant{scope: d.scope}, "")
		}
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

// issue answers with an access token, and a refresh token: keep, or a new
// one when keep is "".
func (s *Server) issue(w http.ResponseWriter, g *grant, keep string) {
	at := s.accessToken()
	s.accessOK[at] = true
	resp := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": int64(s.opts.TokenTTL / time.Second), "scope": g.scope}
	if keep == "" {
		rt := random()
		s.refresh[rt] = g
		g.issued = append(g.issued, rt)
		resp["refresh_token"] = rt
	}
	g.issued = append(g.issued, at)
	writeJSON(w, resp)
}

func (s *Server) deviceAuth(w http.ResponseWriter, r *http.Request) {
	if !s.client(w, r) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts["device"]++
	if !s.hasScope(r.PostForm.Get("scope")) {
		oauthError(w, http.StatusBadRequest, "invalid_scope", "")
		return
	}
	b := make([]byte, 4)
	rand.Read(b)
	d := &device{code: random(), userCode: fmt.Sprintf("%X-%X", b[:2], b[2:]), scope: r.PostForm.Get("scope"),
		expires: s.opts.Now().Add(15 * time.Minute), interval: s.opts.DeviceInterval}
	s.devices[d.code] = d
	s.users[d.userCode] = d
	writeJSON(w, map[string]any{
		"device_code": d.code, "user_code": d.userCode,
		"verification_uri": s.URL + "/device/verify", "expires_in": 900,
		"interval": int64(s.opts.DeviceInterval / time.Second),
	})
}

// verify is the page where the user types the user code (POST user_code).
func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.ParseForm() != nil {
		http.Error(w, "POST user_code", http.StatusBadRequest)
		return
	}
	if !s.Approve(r.PostForm.Get("user_code")) {
		http.Error(w, "no such code", http.StatusNotFound)
		return
	}
	fmt.Fprintln(w, "approved")
}

// Valid reports whether an access token is one this server issued, not
// revoked and not expired, and returns its subject.
func (s *Server) Valid(token string) (string, bool) {
	s.mu.Lock()
	ok := s.accessOK[token]
	s.mu.Unlock()
	if !ok {
		return "", false
	}
	claims, ok := s.verifyJWT(token)
	if !ok {
		return "", false
	}
	exp, _ := claims["exp"].(float64)
	if !s.opts.Now().Before(time.Unix(int64(exp), 0)) {
		return "", false
	}
	sub, _ := claims["sub"].(string)
	return sub, true
}

// ValidateToken is sasl.TokenValidator: user must be the subject.
func (s *Server) ValidateToken(_ context.Context, user, token string) (string, bool, error) {
	sub, ok := s.Valid(token)
	if !ok || (user != "" && user != sub) {
		return "", false, nil
	}
	return sub, true, nil
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// accessToken is an ES256 JWT for the subject.
func (s *Server) accessToken() string {
	now := s.opts.Now()
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "at+jwt", "kid": "k1"})
	claims, _ := json.Marshal(map[string]any{
		"iss": s.Issuer, "aud": s.opts.ClientID, "sub": s.opts.Subject, "email": s.opts.Subject,
		"iat": now.Unix(), "exp": now.Add(s.opts.TokenTTL).Unix(), "jti": random(),
	})
	signing := b64(hdr) + "." + b64(claims)
	sum := sha256.Sum256([]byte(signing))
	r, sg, err := ecdsa.Sign(rand.Reader, s.key, sum[:])
	if err != nil {
		panic(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sg.FillBytes(sig[32:])
	return signing + "." + b64(sig)
}

func (s *Server) verifyJWT(tok string) (map[string]any, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || len(sig) != 64 {
		return nil, false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	r, sg := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
	if !ecdsa.Verify(&s.key.PublicKey, sum[:], r, sg) {
		return nil, false
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var claims map[string]any
	if json.Unmarshal(body, &claims) != nil {
		return nil, false
	}
	return claims, true
}

// JWKS is the server's JWK Set (RFC 7517), for a validator to trust.
func (s *Server) JWKS() []byte {
	pt, err := s.key.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	x, y := pt[1:33], pt[33:]
	b, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": "k1", "alg": "ES256", "use": "sig",
	}}})
	return b
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(s.JWKS())
}
