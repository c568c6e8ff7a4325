package fetch

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// A provider preset: the published POP3 settings of a mail provider and,
// where it signs in with OAuth 2.0, its endpoints and scopes.
// docs/fetch-oauth.md holds the same table, with the providers' pages
// that give each value; TestProvidersDoc holds the two together.
type provider struct {
	Name   string
	Server string
	Port   int
	TLS    string
	// Auth is the mechanism used with oauth_client_id.
	Auth string
	// OAuth endpoints and scopes ("" and nil when the provider has no
	// OAuth sign-in for POP3 that a user can register a client for).
	AuthURL, TokenURL, DeviceURL string
	Scopes                       []string
	// AuthParams are added to the authorization request.
	AuthParams url.Values
	// NoPOP, when set, says why the provider cannot be used (it has no
	// POP3 service); the preset is refused with it.
	NoPOP string
}

var providers = map[string]*provider{
	"gmail": {
		Name: "gmail", Server: "pop.gmail.com", Port: 995, TLS: "implicit", Auth: "xoauth2",
		AuthURL:  "https://accounts.google.com/o/oauth2/v2/auth",
		TokenURL: "https://oauth2.googleapis.com/token",
		// Google's device grant does not allow the mail scope.
		Scopes: []string{"https://mail.google.com/"},
		// A refresh token only with access_type=offline; prompt=consent
		// gives a new one on a second sign-in too.
		AuthParams: url.Values{"access_type": {"offline"}, "prompt": {"consent"}},
	},
	"outlook": {
		Name: "outlook", Server: "outlook.office365.com", Port: 995, TLS: "implicit", Auth: "xoauth2",
		AuthURL:   "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
		TokenURL:  "https://login.microsoftonline.com/common/oauth2/v2.0/token",
		DeviceURL: "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode",
		Scopes:    []string{"https://outlook.office.com/POP.AccessAsUser.All", "offline_access"},
	},
	// Providers whose POP3 takes an app password (made in the account's
	// security settings) and offer no OAuth client registration for it.
	"yahoo":    {Name: "yahoo", Server: "pop.mail.yahoo.com", Port: 995, TLS: "implicit"},
	"fastmail": {Name: "fastmail", Server: "pop.fastmail.com", Port: 995, TLS: "implicit"},
	"gmx":      {Name: "gmx", Server: "pop.gmx.net", Port: 995, TLS: "implicit"},
	"icloud":   {Name: "icloud", NoPOP: `iCloud Mail has no POP3 service (IMAP only), so postie fetch cannot retrieve from it`},
}

// Other names of presets.
var providerAliases = map[string]string{
	"google": "gmail", "googlemail": "gmail",
	"microsoft": "outlook", "office365": "outlook", "microsoft365": "outlook", "hotmail": "outlook", "outlook.com": "outlook",
	"ymail": "yahoo", "me.com": "icloud",
}

// providerNames lists the usable presets, for messages.
func providerNames() string {
	var n []string
	for k, p := range providers {
		if p.NoPOP == "" {
			n = append(n, k)
		}
	}
	sort.Strings(n)
	return strings.Join(n, ", ")
}

// lookupProvider finds a preset by name or alias.
func lookupProvider(name string) *provider {
	name = strings.ToLower(name)
	if a, ok := providerAliases[name]; ok {
		name = a
	}
	return providers[name]
}

// applyProvider fills in what the account's preset gives and the account
// does not set itself.
func (a *Account) applyProvider() error {
	if a.Provider == "" {
		return nil
	}
	p := lookupProvider(a.Provider)
	if p == nil {
		return fmt.Errorf("provider: %q is not one of %s (or set server, port and tls yourself)", a.Provider, providerNames())
	}
	if p.NoPOP != "" {
		return fmt.Errorf("provider: %s", p.NoPOP)
	}
	if a.Server == "" {
		a.Server = p.Server
	}
	if a.Port == 0 && a.TLS == "" {
		a.Port = p.Port
	}
	if a.TLS == "" {
		a.TLS = p.TLS
	}
	if a.OAuthClientID == "" {
		return nil
	}
	if p.TokenURL == "" && a.OAuthTokenURL == "" {
		return fmt.Errorf("provider: %s offers no OAuth sign-in for POP3: use an app password (password_command and so on) instead of oauth_client_id", p.Name)
	}
	if a.Auth == "" && p.Auth != "" {
		a.Auth = p.Auth
	}
	if a.OAuthAuthURL == "" {
		a.OAuthAuthURL = p.AuthURL
	}
	if a.OAuthTokenURL == "" {
		a.OAuthTokenURL = p.TokenURL
	}
	if a.OAuthDeviceURL == "" {
		a.OAuthDeviceURL = p.DeviceURL
	}
	if len(a.OAuthScopes) == 0 {
		a.OAuthScopes = slices.Clone(p.Scopes)
	}
	if a.authParams == nil && p.AuthParams != nil {
		a.authParams = url.Values{}
		for k, v := range p.AuthParams {
			a.authParams[k] = slices.Clone(v)
		}
	}
	return nil
}

// ProviderServer returns the POP3 server ("host:port") and TLS mode of
// the preset name, for `postie fetch probe --provider`.
func ProviderServer(name string) (addr, tlsMode string, err error) {
	p := lookupProvider(name)
	if p == nil {
		return "", "", fmt.Errorf("provider %q is not one of %s", name, providerNames())
	}
	if p.NoPOP != "" {
		return "", "", errors.New(p.NoPOP)
	}
	return net.JoinHostPort(p.Server, strconv.Itoa(p.Port)), p.TLS, nil
}
