package fetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/postie-mail/postie/internal/oauthclient"
)

// The built-in OAuth 2.0 sign-in. An account with oauth_client_id signs in
// once with Login (`postie fetch login NAME`): the authorization code grant
// with PKCE over a loopback redirect, or the device grant. The tokens go
// to NAME.oauth in the state directory (mode 0600, replaced atomically);
// each run takes the access token from there, refreshing it (and storing
// the new one) when it expires within five minutes. A refresh token that
// no longer works (consent revoked, token expired: invalid_grant) makes
// the run fail with an authentication error that says to sign in again;
// the daemon goes on polling and says so on every poll.

// validateOAuth checks the OAuth keys of an account.
func (a *Account) validateOAuth(base string) []string {
	var probs []string
	bad := func(format string, args ...any) { probs = append(probs, fmt.Sprintf(format, args...)) }
	set := a.OAuthClientSecret != "" || a.OAuthClientSecretFile != "" || a.OAuthAuthURL != "" ||
		a.OAuthTokenURL != "" || a.OAuthDeviceURL != "" || len(a.OAuthScopes) > 0
	if a.OAuthClientID == "" {
		// (A preset fills the oauth_* keys only with a client id.)
		if set {
			bad("oauth_*: need oauth_client_id")
		}
		return probs
	}
	if a.Auth != "auto" && a.Auth != "xoauth2" && a.Auth != "oauthbearer" {
		bad("auth: %q needs a password, but oauth_client_id signs in with OAuth2 (use xoauth2, oauthbearer or auto)", a.Auth)
	}
	if a.OAuthClientSecret != "" && a.OAuthClientSecretFile != "" {
		bad("oauth_client_secret, oauth_client_secret_file: set one, not both")
	}
	if a.OAuthClientSecretFile != "" {
		a.OAuthClientSecretFile = resolve(base, a.OAuthClientSecretFile)
	}
	if a.OAuthTokenURL == "" {
		bad("oauth_token_url: required with oauth_client_id (or a provider that has one)")
	}
	if a.OAuthAuthURL == "" && a.OAuthDeviceURL == "" {
		bad("oauth_auth_url or oauth_device_url: one is needed to sign in")
	}
	for _, k := range []struct{ key, val string }{{"oauth_auth_url", a.OAuthAuthURL}, {"oauth_token_url", a.OAuthTokenURL}, {"oauth_device_url", a.OAuthDeviceURL}} {
		if k.val != "" {
			if err := checkEndpoint(k.val); err != nil {
				bad("%s: %v", k.key, err)
			}
		}
	}
	if len(a.OAuthScopes) == 0 {
		bad("oauth_scopes: required with oauth_client_id (or a provider that has them)")
	}
	for _, s := range a.OAuthScopes {
		// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
		if s == "" || strings.ContainsFunc(s, func(r rune) bool { return r <= 0x20 || r == '"' || r == '\\' || r > 0x7e }) {
			bad("oauth_scopes: %q is not a scope", s)
		}
	}
	return probs
}

// checkEndpoint accepts https URLs, and http on a loopback address (a
// local identity provider): tokens and secrets must not cross a network
// in the clear.
func checkEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || (ip != nil && ip.IsLoopback()) {
			return nil
		}
	}
	return fmt.Errorf("%q: must be https (http only on a loopback address)", s)
}

// TokenFile is where account a's OAuth tokens are kept.
func (c *Config) TokenFile(a *Account) string { return filepath.Join(c.StateDir, a.Name+".oauth") }

// UsesOAuth reports whether the account signs in with the built-in OAuth
// client (and so needs `postie fetch login`).
func (a *Account) UsesOAuth() bool { return a.OAuthClientID != "" }

// oauthConfig is the OAuth client of account a.
func (a *Account) oauthConfig(opts *Options) (*oauthclient.Config, error) {
	secret := a.OAuthClientSecret
	if a.OAuthClientSecretFile != "" {
		b, err := os.ReadFile(a.OAuthClientSecretFile)
		if err != nil {
			return nil, fail(KindConfig, "oauth_client_secret_file: %v", err)
		}
		secret, _, _ = strings.Cut(string(b), "\n")
		secret = strings.TrimSpace(secret)
		if secret == "" {
			return nil, fail(KindConfig, "oauth_client_secret_file: %s: empty first line", a.OAuthClientSecretFile)
		}
	}
	params := url.Values{}
	for k, v := range a.authParams {
		params[k] = slices.Clone(v)
	}
	// OpenID Connect's login_hint: the provider preselects the account.
	params.Set("login_hint", a.User)
	return &oauthclient.Config{
		ClientID: a.OAuthClientID, ClientSecret: secret,
		AuthURL: a.OAuthAuthURL, TokenURL: a.OAuthTokenURL, DeviceURL: a.OAuthDeviceURL,
		Scopes: a.OAuthScopes, AuthParams: params,
		Now: opts.Now, Sleep: opts.oauthSleep,
	}, nil
}

// oauthToken returns the account's access token, fresh when fresh is set
// (the server refused the last one).
func (f *Fetcher) oauthToken(ctx context.Context, fresh bool) (string, error) {
	a := f.acct
	if f.oauth == nil {
		oc, err := a.oauthConfig(&f.opts)
		if err != nil {
			return "", err
		}
		f.oauth = &oauthclient.Source{Config: oc, Path: f.cfg.TokenFile(a)}
	}
	if fresh {
		f.oauth.Invalidate()
	}
	tok, err := f.oauth.Token(ctx)
	if err != nil {
		return "", oauthError(a, err)
	}
	return tok, nil
}

// oauthError classifies a failure to get an access token.
func oauthError(a *Account, err error) *Error {
	var ln *oauthclient.LoginNeededError
	var oe *oauthclient.Error
	switch {
	case errors.Is(err, oauthclient.ErrNotSignedIn):
		return &Error{Kind: KindAuth, Err: fmt.Errorf("account %q is not signed in: run `postie fetch login %s`", a.Name, a.Name)}
	case errors.As(err, &ln):
		return &Error{Kind: KindAuth, Err: fmt.Errorf("account %q: %s: run `postie fetch login %s` again", a.Name, ln.Reason, a.Name)}
	case errors.As(err, &oe) && oe.Code == "invalid_client":
		return &Error{Kind: KindConfig, Err: fmt.Errorf("account %q: the OAuth client was refused: %w", a.Name, err),
			Hint: "Check oauth_client_id and oauth_client_secret against the client registered with the provider."}
	case errors.As(err, &oe):
		return &Error{Kind: KindAuth, Err: fmt.Errorf("account %q: refreshing the OAuth token failed: %w", a.Name, err)}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &Error{Kind: KindTemporary, Err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) || strings.HasPrefix(err.Error(), "token endpoint") {
		return &Error{Kind: KindTemporary, Err: fmt.Errorf("account %q: refreshing the OAuth token: %w", a.Name, err)}
	}
	return &Error{Kind: KindFailed, Err: fmt.Errorf("account %q: %w", a.Name, err)}
}

// LoginOptions steer Login.
type LoginOptions struct {
	// Device uses the device authorization grant (RFC 8628): a code to
	// type on another device, for machines without a browser.
	Device bool
	// Out receives the instructions: the URL to open, or the code to
	// type and where.
	Out io.Writer
	// Open, when set, opens a URL in the user's browser; a failure is
	// only reported to Out (the URL is printed anyway).
	Open func(url string) error
	// Wait bounds the wait for the browser (default 5m); the device
	// grant waits until its code expires.
	Wait time.Duration
}

// Login signs account a in and stores its tokens (TokenFile).
func Login(ctx context.Context, cfg *Config, a *Account, opts Options, lo LoginOptions) error {
	if !a.UsesOAuth() {
		return fail(KindConfig, "account %q has no oauth_client_id: it does not sign in with OAuth", a.Name)
	}
	oc, err := a.oauthConfig(&opts)
	if err != nil {
		return err
	}
	out := lo.Out
	if out == nil {
		out = io.Discard
	}
	var tok *oauthclient.Token
	if lo.Device {
		if a.OAuthDeviceURL == "" {
			return fail(KindConfig, "account %q: the provider offers no device sign-in (no oauth_device_url); sign in without --device, with a browser", a.Name)
		}
		tok, err = oc.LoginDevice(ctx, func(dc *oauthclient.DeviceCode) {
			fmt.Fprintf(out, "To sign in account %q as %s, open\n\n    %s\n\nand enter the code\n\n    %s\n\n", a.Name, a.User, dc.VerificationURI, dc.UserCode)
			if dc.VerificationURIComplete != "" {
				fmt.Fprintf(out, "(or open %s, which holds the code)\n", dc.VerificationURIComplete)
			}
			fmt.Fprintf(out, "Waiting until %s...\n", dc.Expires.Local().Format("15:04"))
		})
	} else {
		if a.OAuthAuthURL == "" {
			return fail(KindConfig, "account %q: no oauth_auth_url: sign in with --device", a.Name)
		}
		tok, err = oc.LoginLoopback(ctx, oauthclient.LoopbackOptions{Wait: lo.Wait, Show: func(u string) {
			fmt.Fprintf(out, "To sign in account %q as %s, open this URL in a browser:\n\n    %s\n\n", a.Name, a.User, u)
			if lo.Open != nil {
				if err := lo.Open(u); err != nil {
					fmt.Fprintf(out, "(the browser could not be started: %v)\n", err)
				}
			}
			fmt.Fprintln(out, "Waiting for the browser to come back to postie on 127.0.0.1...")
		}})
	}
	if err != nil {
		var oe *oauthclient.Error
		if errors.As(err, &oe) && oe.Code == "invalid_client" {
			return &Error{Kind: KindConfig, Err: fmt.Errorf("account %q: sign-in failed: %w", a.Name, err),
				Hint: "Check oauth_client_id and oauth_client_secret against the client registered with the provider."}
		}
		return &Error{Kind: KindAuth, Err: fmt.Errorf("account %q: sign-in failed: %w", a.Name, err)}
	}
	src := &oauthclient.Source{Config: oc, Path: cfg.TokenFile(a)}
	if err := src.Save(tok); err != nil {
		return &Error{Kind: KindFailed, Err: fmt.Errorf("account %q: %w", a.Name, err)}
	}
	fmt.Fprintf(out, "Signed in; account %q is ready (tokens in %s).\n", a.Name, cfg.TokenFile(a))
	return nil
}
