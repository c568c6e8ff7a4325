package sasl

import (
	"context"
	"strings"
	"testing"
)

// tokens is a TokenValidator over a map from token to user; "sysfail"
// is backend trouble. Like the real validators, a named user must match.
type tokens map[string]string

func (v tokens) ValidateToken(_ context.Context, user, token string) (string, bool, error) {
	if token == "sysfail" {
		return "", false, errBackend
	}
	owner, ok := v[token]
	if !ok || (user != "" && !sameUser(user, owner)) {
		return "", false, nil
	}
	return owner, true, nil
}

var testTokens = tokens{"t0k3n": "alice", "eyJhbGciOi.eyJzdWIiOi.c2ln-_~+/==": "bob"}

const oauthOpts = `{"status":"invalid_token","scope":"mail","openid-configuration":"https://idp.example/.well-known/openid-configuration"}`

func TestOAUTHBEARER(t *testing.T) {
	opts := OAuthOptions{Scope: "mail", OpenIDConfiguration: "https://idp.example/.well-known/openid-configuration"}
	msg := func(gs2, auth string) []byte {
		return []byte(gs2 + "\x01host=pop.example\x01port=995\x01auth=" + auth + "\x01\x01")
	}
	tests := []struct {
		name  string
		steps []step
		user  string
	}{
		{"success", []step{{resp: msg("n,a=alice,", "Bearer t0k3n"), done: true}}, "alice"},
		{"no initial response", []step{{resp: nil, challenge: ""}, {resp: msg("n,a=alice,", "Bearer t0k3n"), done: true}}, "alice"},
		{"no user named", []step{{resp: msg("n,,", "Bearer t0k3n"), done: true}}, "alice"},
		{"scheme case, JWT characters", []step{{resp: msg("y,a=BOB,", "bearer eyJhbGciOi.eyJzdWIiOi.c2ln-_~+/=="), done: true}}, "bob"},
		{"only auth", []step{{resp: b("n,a=alice,\x01auth=Bearer t0k3n\x01\x01"), done: true}}, "alice"},
		{"bad token, client sends 0x01", []step{
			{resp: msg("n,a=alice,", "Bearer nope"), challenge: oauthOpts},
			{resp: b("\x01"), done: true, err: ErrAuthFailed}}, ""},
		{"bad token, client sends empty", []step{
			{resp: msg("n,a=alice,", "Bearer nope"), challenge: oauthOpts},
			{resp: b(""), done: true, err: ErrAuthFailed}}, ""},
		{"bad token, client sends nil", []step{
			{resp: msg("n,a=alice,", "Bearer nope"), challenge: oauthOpts},
			{resp: nil, done: true, err: ErrAuthFailed}}, ""},
		{"bad token, client sends garbage", []step{
			{resp: msg("n,a=alice,", "Bearer nope"), challenge: oauthOpts},
			{resp: b("n,a=alice,\x01auth=Bearer t0k3n\x01\x01"), done: true, err: ErrAuthFailed}}, ""},
		{"token of another user", []step{
			{resp: msg("n,a=bob,", "Bearer t0k3n"), challenge: oauthOpts},
			{resp: b("\x01"), done: true, err: ErrAuthFailed}}, ""},
		{"backend error", []step{{resp: msg("n,a=alice,", "Bearer sysfail"), done: true, err: errBackend}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewOAUTHBEARER(testTokens, opts)
			run(t, s, tc.steps)
			if s.User() != tc.user {
				t.Errorf("User() = %q, want %q", s.User(), tc.user)
			}
			mustFinish(t, s)
		})
	}
	// Without options the error challenge is just the status.
	s := NewOAUTHBEARER(testTokens, OAuthOptions{})
	run(t, s, []step{{resp: msg("n,,", "Bearer nope"), challenge: `{"status":"invalid_token"}`}})

	malformed := []string{
		"",
		"\x01",
		"\x01\x01",
		"n,a=alice,",
		"n,a=alice,\x01\x01",
		"n,a=alice,\x01auth=Bearer t0k3n\x01",
		"n,a=alice,\x01auth=Bearer t0k3n",
		"n,a=alice\x01auth=Bearer t0k3n\x01\x01",
		"n,a=alice,x\x01auth=Bearer t0k3n\x01\x01",
		"p=tls-unique,a=alice,\x01auth=Bearer t0k3n\x01\x01",
		"x,a=alice,\x01auth=Bearer t0k3n\x01\x01",
		"n,alice,\x01auth=Bearer t0k3n\x01\x01",
		"n,a=al=ice,\x01auth=Bearer t0k3n\x01\x01",
		"n,a=,\x01auth=Bearer t0k3n\x01\x01",
		"n,a=al\xffice,\x01auth=Bearer t0k3n\x01\x01",
		"n,a=alice,\x01host=x\x01\x01",
		"n,a=alice,\x01auth=t0k3n\x01\x01",
		"n,a=alice,\x01auth=Basic dDBrM24=\x01\x01",
		"n,a=alice,\x01auth=Bearer\x01\x01",
		"n,a=alice,\x01auth=Bearer \x01\x01",
		"n,a=alice,\x01auth=Bearer ===\x01\x01",
		"n,a=alice,\x01auth=Bearer t0k3n x\x01\x01",
		"n,a=alice,\x01auth=Bearer t0=k3n\x01\x01",
		"n,a=alice,\x01auth=Bearer t0k3n\x01auth=Bearer t0k3n\x01\x01",
		"n,a=alice,\x01au th=Bearer t0k3n\x01\x01",
		"n,a=alice,\x01=x\x01auth=Bearer t0k3n\x01\x01",
		"n,a=alice,\x01host\x01auth=Bearer t0k3n\x01\x01",
		"n,a=alice,\x01host=\x00\x01auth=Bearer t0k3n\x01\x01",
		"n,a=alice,\x01auth=Bearer t0k3n\x01\x01\x01",
		"n,a=alice,\x01auth=Bearer " + strings.Repeat("a", maxOAuthMessage) + "\x01\x01",
	}
	for _, m := range malformed {
		s := NewOAUTHBEARER(testTokens, opts)
		run(t, s, []step{{resp: b(m), done: true, err: ErrMalformed}})
		if s.User() != "" {
			t.Fatalf("%q: authenticated", m)
		}
	}
}

func TestXOAUTH2(t *testing.T) {
	const errChallenge = `{"status":"401","schemes":"bearer","scope":"mail"}`
	opts := OAuthOptions{Scope: "mail", OpenIDConfiguration: "https://idp.example/"}
	tests := []struct {
		name  string
		steps []step
		user  string
	}{
		{"success", []step{{resp: b("user=alice\x01auth=Bearer t0k3n\x01\x01"), done: true}}, "alice"},
		{"no initial response", []step{{resp: nil, challenge: ""}, {resp: b("user=ALICE\x01auth=Bearer t0k3n\x01\x01"), done: true}}, "alice"},
		{"bad token", []step{
			{resp: b("user=alice\x01auth=Bearer nope\x01\x01"), challenge: errChallenge},
			{resp: b(""), done: true, err: ErrAuthFailed}}, ""},
		{"bad token, garbage after", []step{
			{resp: b("user=alice\x01auth=Bearer nope\x01\x01"), challenge: errChallenge},
			{resp: b("\x01\x02\xff"), done: true, err: ErrAuthFailed}}, ""},
		{"token of another user", []step{
			{resp: b("user=bob\x01auth=Bearer t0k3n\x01\x01"), challenge: errChallenge},
			{resp: nil, done: true, err: ErrAuthFailed}}, ""},
		{"backend error", []step{{resp: b("user=alice\x01auth=Bearer sysfail\x01\x01"), done: true, err: errBackend}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewXOAUTH2(testTokens, opts)
			run(t, s, tc.steps)
			if s.User() != tc.user {
				t.Errorf("User() = %q, want %q", s.User(), tc.user)
			}
			mustFinish(t, s)
		})
	}
	for _, m := range []string{
		"",
		"\x01",
		"user=alice\x01auth=Bearer t0k3n\x01",
		"user=alice\x01auth=Bearer t0k3n",
		"auth=Bearer t0k3n\x01\x01",
		"user=\x01auth=Bearer t0k3n\x01\x01",
		"user=alice\x01\x01",
		"user=alice\x01auth=Bearer\x01\x01",
		"user=alice\x01auth=Token t0k3n\x01\x01",
		"n,a=alice,\x01auth=Bearer t0k3n\x01\x01",
		"user=" + strings.Repeat("a", 256) + "\x01auth=Bearer t0k3n\x01\x01",
	} {
		s := NewXOAUTH2(testTokens, opts)
		run(t, s, []step{{resp: b(m), done: true, err: ErrMalformed}})
	}
}
