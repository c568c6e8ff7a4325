package fetch

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestProvidersDoc holds the presets and the table of
// docs/fetch-oauth.md together: every preset is a row with the same
// values, every row a preset.
func TestProvidersDoc(t *testing.T) {
	data, err := os.ReadFile("../docs/fetch-oauth.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(data), "| provider | server | port | tls | auth | authorization endpoint | token endpoint | device endpoint | scopes |\n|---|")
	if !ok {
		t.Fatal("no presets table in docs/fetch-oauth.md")
	}
	rows := map[string][]string{}
	for line := range strings.Lines(table) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "| ") {
			if len(rows) > 0 {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if len(cells) != 9 {
			t.Fatalf("row with %d cells: %s", len(cells), line)
		}
		rows[cells[0]] = cells
	}
	for name, p := range providers {
		if p.NoPOP != "" {
			if rows[name] != nil {
				t.Errorf("%s has no POP3 and must not be in the table", name)
			}
			continue
		}
		r, ok := rows[name]
		if !ok {
			t.Errorf("preset %s is not in the table", name)
			continue
		}
		want := []string{name, p.Server, strconv.Itoa(p.Port), p.TLS, p.Auth, p.AuthURL, p.TokenURL, p.DeviceURL, strings.Join(p.Scopes, " ")}
		if !slices.Equal(r, want) {
			t.Errorf("preset %s:\ndoc  %q\ncode %q", name, r, want)
		}
	}
	for name := range rows {
		if providers[name] == nil {
			t.Errorf("the table has %s, the code has no such preset", name)
		}
	}
}

func TestProviderPresets(t *testing.T) {
	three := "[[account]]\nname = \"g\"\nuser = \"me@gmail.com\"\nmaildir = \"m\"\n"
	c := config(t, three+"provider = \"gmail\"\noauth_client_id = \"id\"\n")
	a := c.Accounts[0]
	if a.Server != "pop.gmail.com" || a.Port != 995 || a.TLS != "implicit" || a.Auth != "xoauth2" ||
		a.OAuthAuthURL != "https://accounts.google.com/o/oauth2/v2/auth" || a.OAuthTokenURL != "https://oauth2.googleapis.com/token" ||
		a.OAuthDeviceURL != "" || !slices.Equal(a.OAuthScopes, []string{"https://mail.google.com/"}) ||
		a.authParams.Get("access_type") != "offline" {
		t.Errorf("gmail preset: %+v", a)
	}
	// Keys of the account win; an alias names the same preset.
	c = config(t, three+"provider = \"Office365\"\noauth_client_id = \"id\"\nserver = \"pop.example.org\"\ntls = \"starttls\"\nauth = \"oauthbearer\"\noauth_scopes = [\"x\"]\n")
	a = c.Accounts[0]
	if a.Server != "pop.example.org" || a.Port != 110 || a.TLS != "starttls" || a.Auth != "oauthbearer" ||
		a.OAuthDeviceURL != "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode" || !slices.Equal(a.OAuthScopes, []string{"x"}) {
		t.Errorf("outlook preset with overrides: %+v", a)
	}
	// A preset without OAuth refuses oauth_client_id; one without POP3
	// is refused.
	for text, want := range map[string]string{
		three + "provider = \"yahoo\"\noauth_client_id = \"id\"\n": "provider: yahoo offers no OAuth sign-in for POP3: use an app password",
		three + "provider = \"icloud\"\npassword_env = \"X\"\n":    "provider: iCloud Mail has no POP3 service (IMAP only)",
	} {
		if _, err := Parse("f.toml", []byte(text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", text, err)
		}
	}
	c = config(t, three+"provider = \"fastmail\"\npassword_env = \"X\"\n")
	if a := c.Accounts[0]; a.Server != "pop.fastmail.com" || a.Port != 995 || a.TLS != "implicit" || a.Auth != "auto" {
		t.Errorf("fastmail: %+v", a)
	}
	// A preset with an app password: the server settings, no OAuth.
	c = config(t, three+"provider = \"outlook\"\npassword_env = \"X\"\n")
	if a := c.Accounts[0]; a.Server != "outlook.office365.com" || a.Auth != "auto" || a.OAuthTokenURL != "" {
		t.Errorf("preset without OAuth: %+v", a)
	}
}

func TestOAuthConfigErrors(t *testing.T) {
	base := "[[account]]\nname = \"a\"\nserver = \"pop.example.org\"\nuser = \"u\"\nmaildir = \"m\"\n"
	oauth := "oauth_client_id = \"id\"\noauth_auth_url = \"https://idp.example/auth\"\noauth_token_url = \"https://idp.example/token\"\noauth_scopes = [\"mail\"]\n"
	tests := []struct{ text, want string }{
		{base + "provider = \"yahoo-ish\"\npassword_env = \"X\"\n", `provider: "yahoo-ish" is not one of fastmail, gmail, gmx, outlook, yahoo (or set server, port and tls yourself)`},
		{base + oauth + "password_env = \"X\"\n", "set exactly one of password_file, password_env, password_command, token_command, oauth_client_id"},
		{base + oauth + "auth = \"plain\"\n", `auth: "plain" needs a password, but oauth_client_id signs in with OAuth2`},
		{base + "oauth_client_id = \"id\"\n", "oauth_token_url: required with oauth_client_id"},
		{base + "oauth_client_id = \"id\"\noauth_token_url = \"https://idp.example/token\"\noauth_scopes = [\"m\"]\n", "oauth_auth_url or oauth_device_url: one is needed"},
		{base + strings.Replace(oauth, "https://idp.example/token", "http://idp.example/token", 1), `oauth_token_url: "http://idp.example/token": must be https (http only on a loopback address)`},
		{base + strings.Replace(oauth, "https://idp.example/auth", "idp.example/auth", 1), `oauth_auth_url: "idp.example/auth" is not an absolute URL`},
		{base + strings.Replace(oauth, `["mail"]`, `["a b"]`, 1), `oauth_scopes: "a b" is not a scope`},
		{base + oauth + "oauth_client_secret = \"s\"\noauth_client_secret_file = \"f\"\n", "oauth_client_secret, oauth_client_secret_file: set one, not both"},
		{base + "password_env = \"X\"\noauth_token_url = \"https://idp.example/token\"\n", "oauth_*: need oauth_client_id"},
		{base + "provider = \"gmail\"\npassword_env = \"X\"\noauth_scopes = [\"x\"]\n", "oauth_*: need oauth_client_id"},
		{base + "auth = \"xoauth2\"\npassword_env = \"X\"\n", `auth: "xoauth2" needs token_command or oauth_client_id`},
	}
	for _, tc := range tests {
		_, err := Parse("f.toml", []byte(tc.text))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.text, err, tc.want)
		}
	}
	// http on loopback is fine (a local identity provider).
	ok := base + strings.NewReplacer("https://idp.example", "http://127.0.0.1:8080").Replace(oauth)
	if _, err := Parse("f.toml", []byte(ok)); err != nil {
		t.Errorf("loopback http endpoints: %v", err)
	}
}

func TestProviderServer(t *testing.T) {
	addr, mode, err := ProviderServer("Outlook")
	if err != nil || addr != "outlook.office365.com:995" || mode != "implicit" {
		t.Errorf("outlook: %s %s %v", addr, mode, err)
	}
	if _, _, err := ProviderServer("aol"); err == nil || err.Error() != `provider "aol" is not one of fastmail, gmail, gmx, outlook, yahoo` {
		t.Errorf("unknown: %v", err)
	}
	if _, _, err := ProviderServer("icloud"); err == nil || !strings.Contains(err.Error(), "no POP3 service") {
		t.Errorf("icloud: %v", err)
	}
}
