package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// IntrospectionOptions configure NewIntrospectionValidator.
type IntrospectionOptions struct {
	// Endpoint is the https URL of the introspection endpoint (RFC 7662
	// §2). Required.
	Endpoint string
	// ClientID and ClientSecret authenticate this server to the endpoint
	// with HTTP Basic (RFC 6749 §2.3.1). Required.
	ClientID, ClientSecret string
	// UserClaim names the user in the response (default "username"); a
	// response without it is refused ("sub" is used only when named).
	UserClaim string
	// Issuer, when set, must equal the response's "iss".
	Issuer string
	// Audience, when set: the response's "aud" must contain one of these.
	Audience []string
	// HTTPClient makes the requests (default: a client with a 10s
	// timeout).
	HTTPClient *http.Client
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// IntrospectionValidator asks an RFC 7662 introspection endpoint whether
// a token is active and whose it is. It implements sasl.TokenValidator
// and is safe for concurrent use.
type IntrospectionValidator struct {
	opts   IntrospectionOptions
	client *http.Client
	now    func() time.Time
}

// NewIntrospectionValidator checks opts and returns a validator.
func NewIntrospectionValidator(opts IntrospectionOptions) (*IntrospectionValidator, error) {
	u, err := url.Parse(opts.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("oauth: introspection endpoint %q is not an https URL", opts.Endpoint)
	}
	if opts.ClientID == "" || opts.ClientSecret == "" {
		return nil, errors.New("oauth: IntrospectionOptions.ClientID and ClientSecret are required")
	}
	if opts.UserClaim == "" {
		opts.UserClaim = "username"
	}
	return &IntrospectionValidator{opts: opts, client: defaultClient(opts.HTTPClient), now: nowFunc(opts.Now)}, nil
}

// maxIntrospectionResponse bounds the response body read.
const maxIntrospectionResponse = 1 << 20

// ValidateToken implements sasl.TokenValidator. An endpoint that cannot
// be reached, answers other than 200, or sends something other than a
// JSON object is system trouble (err); "active": false, an expired or
// not yet valid token, a wrong issuer or audience, and a user mismatch
// are ok == false.
func (v *IntrospectionValidator) ValidateToken(ctx context.Context, user, token string) (string, bool, error) {
	// RFC 7662 §2.1.
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.opts.Endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", false, fmt.Errorf("oauth: introspection: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: both form-urlencoded before Basic encoding.
	req.SetBasicAuth(url.QueryEscape(v.opts.ClientID), url.QueryEscape(v.opts.ClientSecret))
	resp, err := v.client.Do(req)
	if err != nil {
		return "", false, fmt.Errorf("oauth: introspection: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionResponse))
	if err != nil {
		return "", false, fmt.Errorf("oauth: introspection: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", false, fmt.Errorf("oauth: introspection: endpoint answered %s", resp.Status)
	}
	// RFC 7662 §2.2.
	var claims map[string]any
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return "", false, errors.New("oauth: introspection: response is not a JSON object")
	}
	if active, _ := claims["active"].(bool); !active {
		return "", false, nil
	}
	now := v.now()
	if exp, ok := numericDate(claims["exp"]); ok && !now.Before(exp) {
		return "", false, nil
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Before(nbf) {
		return "", false, nil
	}
	if v.opts.Issuer != "" {
		if iss, _ := claims["iss"].(string); iss != v.opts.Issuer {
			return "", false, nil
		}
	}
	if len(v.opts.Audience) > 0 && !audienceMatches(claims["aud"], v.opts.Audience) {
		return "", false, nil
	}
	name := userFromClaims(claims, v.opts.UserClaim)
	if !matchUser(user, name) {
		return "", false, nil
	}
	return name, true, nil
}

// numericDate reads an RFC 7519 NumericDate (seconds since the epoch).
func numericDate(v any) (time.Time, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, false
	}
	f, err := n.Float64()
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// audienceMatches: aud is a string or an array of strings (RFC 7519 §4.1.3).
func audienceMatches(aud any, want []string) bool {
	var have []string
	switch a := aud.(type) {
	case string:
		have = []string{a}
	case []any:
		for _, x := range a {
			if s, ok := x.(string); ok {
				have = append(have, s)
			}
		}
	}
	for _, h := range have {
		for _, w := range want {
			if h == w {
				return true
			}
		}
	}
	return false
}
