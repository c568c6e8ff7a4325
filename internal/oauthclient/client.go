// Package oauthclient is the OAuth 2.0 client of postie fetch: it signs a
// user in with the authorization code grant and PKCE over a loopback
// redirect (RFC 6749 §4.1, RFC 7636, RFC 8252) or with the device
// authorization grant (RFC 8628), refreshes access tokens (RFC 6749 §6),
// and keeps the tokens of one account in a file (Source).
//
// Tokens are secrets: no error or log line of this package contains one.
// The error texts of an authorization server are kept only when they are
// the short printable ASCII that RFC 6749 §5.2 allows.
//
// It imports only the standard library and internal/fsutil.
package oauthclient

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is an OAuth client registered with one authorization server.
type Config struct {
	// ClientID and ClientSecret identify the client. The secret may be
	// empty (a public client); Google's "Desktop app" clients have one
	// that is not confidential but must be sent.
	ClientID     string
	ClientSecret string
	// AuthURL is the authorization endpoint, TokenURL the token endpoint,
	// DeviceURL the device authorization endpoint ("" when the provider
	// offers no device grant).
	AuthURL   string
	TokenURL  string
	DeviceURL string
	// Scopes are requested in every grant.
	Scopes []string
	// AuthParams are added to the authorization request (Google needs
	// access_type=offline to issue a refresh token).
	AuthParams url.Values
	// HTTPClient makes the requests (default: a client with a 30s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Sleep waits d or until ctx is done (default: a timer); the device
	// grant's polling goes through it.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (c *Config) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Config) client() *http.Client {
	if c.HTTPClient != nil {
		return c.HTTPClient
	}
	return &http.Client{Timeout: 30 * time.Second}
}

func (c *Config) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Token is what a token endpoint issued.
type Token struct {
	AccessToken  string    `json:"access_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Scope        string    `json:"scope,omitempty"`
}

// String hides the token's secrets, so that printing a Token by mistake
// leaks nothing.
func (t *Token) String() string {
	return fmt.Sprintf("Token{type %q, expiry %v, refresh token %v}", t.TokenType, t.Expiry, t.RefreshToken != "")
}

// Error is an error response of an authorization server (RFC 6749 §4.1.2.1,
// §5.2; RFC 8628 §3.5).
type Error struct {
	// Endpoint names the step: "authorization", "token", "device".
	Endpoint string
	// Code is the "error" value: invalid_grant, access_denied, ….
	Code string
	// Description is "error_description", when it is short printable
	// ASCII; otherwise empty.
	Description string
	// Status is the HTTP status (0 for the authorization endpoint, whose
	// errors come back through the redirect).
	Status int
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s endpoint: %s", e.Endpoint, e.Code)
	if e.Description != "" {
		s += " (" + e.Description + ")"
	}
	return s
}

// IsInvalidGrant reports whether err says the grant (a refresh token, an
// authorization code) is invalid, expired or revoked: the user must sign
// in again.
func IsInvalidGrant(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == "invalid_grant"
}

// clean keeps s when it is short text in the character set RFC 6749 §5.2
// allows for "error" and "error_description" (%x20-21 / %x23-5B / %x5D-7E),
// so that a hostile or broken server cannot put control characters or
// pages of text into postie's messages.
func clean(s string, max int) string {
	if len(s) > max {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return ""
		}
	}
	return s
}

// cleanDesc keeps the first line of an error_description, cut to 200
// characters, when it is text clean accepts: Microsoft's descriptions
// run on with "\r\nTrace ID: …" lines.
func cleanDesc(s string) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return clean(strings.TrimSpace(s), 300)
}

// maxBody bounds a token endpoint's answer.
const maxBody = 1 << 20

// tokenResponse is RFC 6749 §5.1 plus the error fields of §5.2.
type tokenResponse struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	RefreshToken string          `json:"refresh_token"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	Scope        string          `json:"scope"`
	Error        string          `json:"error"`
	Description  string          `json:"error_description"`
}

// post sends form to endpoint (client credentials in the body, RFC 6749
// §2.3.1) and decodes the JSON answer into out. An error answer becomes
// *Error.
func (c *Config) post(ctx context.Context, name, endpoint string, form url.Values, out any) error {
	form.Set("client_id", c.ClientID)
	if c.ClientSecret != "" {
		form.Set("client_secret", c.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%s endpoint: %v", name, redactURLError(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := c.client().Do(req)
	if err != nil {
		return fmt.Errorf("%s endpoint: %v", name, redactURLError(err))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return fmt.Errorf("%s endpoint %s: reading the answer: %v", name, host(endpoint), err)
	}
	if len(body) > maxBody {
		return fmt.Errorf("%s endpoint %s: answer over %d bytes", name, host(endpoint), maxBody)
	}
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	jsonErr := json.Unmarshal(body, &e)
	if resp.StatusCode != http.StatusOK || e.Error != "" {
		code := clean(e.Error, 64)
		if jsonErr != nil || code == "" {
			return fmt.Errorf("%s endpoint %s: HTTP status %d without an OAuth error", name, host(endpoint), resp.StatusCode)
		}
		return &Error{Endpoint: name, Code: code, Description: cleanDesc(e.Description), Status: resp.StatusCode}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/json" {
		return fmt.Errorf("%s endpoint %s: answer is %q, not application/json", name, host(endpoint), mt)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s endpoint %s: answer is not the JSON expected", name, host(endpoint))
	}
	return nil
}

// redactURLError drops the URL a *url.Error names: the query of an
// endpoint could hold a secret someone put there.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s %s: %w", ue.Op, host(ue.URL), ue.Err)
	}
	return err
}

// host is the scheme and host of u, for messages.
func host(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(bad URL)"
	}
	return p.Scheme + "://" + p.Host
}

// token asks the token endpoint for a token with form.
func (c *Config) token(ctx context.Context, form url.Values) (*Token, error) {
	start := c.now()
	var tr tokenResponse
	if err := c.post(ctx, "token", c.TokenURL, form, &tr); err != nil {
		return nil, err
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint %s: answer without access_token", host(c.TokenURL))
	}
	// RFC 6749 §7.1: the type must be understood; XOAUTH2 and
	// OAUTHBEARER carry bearer tokens (RFC 6750).
	if !strings.EqualFold(tr.TokenType, "bearer") {
		return nil, fmt.Errorf("token endpoint %s: token type %q, not Bearer", host(c.TokenURL), clean(tr.TokenType, 32))
	}
	t := &Token{AccessToken: tr.AccessToken, TokenType: "Bearer", RefreshToken: tr.RefreshToken, Scope: tr.Scope}
	if secs, ok := expiresIn(tr.ExpiresIn); ok {
		t.Expiry = start.Add(time.Duration(secs) * time.Second)
	}
	return t, nil
}

// expiresIn reads "expires_in": a number, or (Microsoft's older endpoints)
// a string of digits.
func expiresIn(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	s := strings.Trim(string(raw), `"`)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 || n > 10*365*24*3600 {
		return 0, false
	}
	return n, true
}

// Refresh exchanges a refresh token for a new access token (RFC 6749 §6).
// When the server issues no new refresh token the old one stays valid and
// is returned in the Token.
func (c *Config) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	if refreshToken == "" {
		return nil, errors.New("no refresh token")
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}
	t, err := c.token(ctx, form)
	if err != nil {
		return nil, err
	}
	if t.RefreshToken == "" {
		t.RefreshToken = refreshToken
	}
	return t, nil
}

// randomString is n random octets, base64url without padding.
func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// challengeS256 is BASE64URL(SHA256(ASCII(verifier))) (RFC 7636 §4.2).
func challengeS256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
