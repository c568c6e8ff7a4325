// Package oauth holds token validators for the OAUTHBEARER and XOAUTH2
// mechanisms of package sasl: JWTValidator checks JWT access tokens
// locally against the identity provider's JWK Set (RFC 7515, RFC 7517,
// RFC 7519), IntrospectionValidator asks the provider's RFC 7662
// introspection endpoint. Both map a claim of the token to the user name
// and require it to match the user named in the SASL message, ASCII
// case-insensitively.
//
// It is a separate package so that the protocol engine, which imports
// sasl, does not pull in the JWT libraries.
package oauth

import (
	"context"
	"net/http"
	"time"

	"github.com/postie-mail/postie/sasl"
)

var (
	_ sasl.TokenValidator = (*JWTValidator)(nil)
	_ sasl.TokenValidator = (*IntrospectionValidator)(nil)
)

// defaultHTTPTimeout bounds each request to the identity provider.
const defaultHTTPTimeout = 10 * time.Second

func defaultClient(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return &http.Client{Timeout: defaultHTTPTimeout}
}

// userFromClaims returns the string value of claim, or "" (the token is
// refused) when it is absent or empty: never another claim in its place
// ("sub" names the user only when it is the configured claim: a token
// without an email must not log in as whatever its subject is called). A
// claim "email" with "email_verified": false yields "": an unverified
// address must not open a maildrop.
func userFromClaims(claims map[string]any, claim string) string {
	if s, _ := claims[claim].(string); s != "" {
		if claim == "email" {
			if v, ok := claims["email_verified"].(bool); ok && !v {
				return ""
			}
		}
		return s
	}
	return ""
}

// matchUser checks the token's user against the one named in the SASL
// message ("" when none was named). ASCII case folding only: Unicode
// folding would let look-alike names (the Kelvin sign) match.
func matchUser(named, fromToken string) bool {
	if fromToken == "" {
		return false
	}
	if named == "" {
		return true
	}
	if len(named) != len(fromToken) {
		return false
	}
	for i := 0; i < len(named); i++ {
		if lower(named[i]) != lower(fromToken[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// nowFunc returns f, or time.Now.
func nowFunc(f func() time.Time) func() time.Time {
	if f != nil {
		return f
	}
	return time.Now
}

// ctxOrBackground is for constructors given a nil context.
func ctxOrBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
