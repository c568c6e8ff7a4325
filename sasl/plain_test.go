package sasl

import (
	"strings"
	"testing"
)

func TestPLAIN(t *testing.T) {
	pc := passwords{"alice": "secret", "Bob": "pw"}
	long := strings.Repeat("x", 256)
	max := strings.Repeat("x", 255)
	tests := []struct {
		name  string
		steps []step
		user  string
	}{
		{"initial response", []step{{resp: b("\x00alice\x00secret"), done: true}}, "alice"},
		{"no initial response", []step{{resp: nil, challenge: ""}, {resp: b("\x00alice\x00secret"), done: true}}, "alice"},
		{"authzid equal", []step{{resp: b("alice\x00alice\x00secret"), done: true}}, "alice"},
		{"authzid equal to canonical", []step{{resp: b("Bob\x00BOB\x00pw"), done: true}}, "Bob"},
		{"authzid case differs", []step{{resp: b("ALICE\x00alice\x00secret"), done: true}}, "alice"},
		{"canonical name returned", []step{{resp: b("\x00bob\x00pw"), done: true}}, "Bob"},
		{"wrong password", []step{{resp: b("\x00alice\x00wrong"), done: true, err: ErrAuthFailed}}, ""},
		{"unknown user", []step{{resp: b("\x00mallory\x00secret"), done: true, err: ErrAuthFailed}}, ""},
		{"proxy authzid", []step{{resp: b("bob\x00alice\x00secret"), done: true, err: ErrAuthFailed}}, ""},
		{"kelvin sign is not k", []step{{resp: b("\u212Aalice\x00alice\x00secret"), done: true, err: ErrAuthFailed}}, ""},
		{"backend error", []step{{resp: b("\x00sysfail\x00x"), done: true, err: errBackend}}, ""},
		{"255-octet fields", []step{{resp: b(max + "\x00" + max + "\x00" + max), done: true, err: ErrAuthFailed}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewPLAIN(pc)
			run(t, s, tc.steps)
			if s.User() != tc.user {
				t.Errorf("User() = %q, want %q", s.User(), tc.user)
			}
			mustFinish(t, s)
		})
	}

	malformed := []string{
		"",
		"alice",
		"\x00alice",
		"\x00alice\x00",
		"\x00\x00secret",
		"\x00alice\x00secret\x00",
		"\x00alice\x00sec\x00ret",
		"\x00al\xffice\x00secret",
		"\x00alice\x00secr\xc3",
		"\xff\x00alice\x00secret",
		long + "\x00alice\x00secret",
		"\x00" + long + "\x00secret",
		"\x00alice\x00" + long,
	}
	for _, m := range malformed {
		s := NewPLAIN(pc)
		run(t, s, []step{{resp: b(m), done: true, err: ErrMalformed}})
		if s.User() != "" {
			t.Errorf("%q: User() = %q after failure", m, s.User())
		}
	}
}

func TestLOGIN(t *testing.T) {
	pc := passwords{"alice": "secret"}
	tests := []struct {
		name  string
		steps []step
		user  string
	}{
		{"no initial response", []step{
			{resp: nil, challenge: "Username:"},
			{resp: b("alice"), challenge: "Password:"},
			{resp: b("secret"), done: true}}, "alice"},
		{"initial response is the user", []step{
			{resp: b("ALICE"), challenge: "Password:"},
			{resp: b("secret"), done: true}}, "alice"},
		{"wrong password", []step{
			{resp: b("alice"), challenge: "Password:"},
			{resp: b("nope"), done: true, err: ErrAuthFailed}}, ""},
		{"unknown user asks for the password too", []step{
			{resp: nil, challenge: "Username:"},
			{resp: b("mallory"), challenge: "Password:"},
			{resp: b("secret"), done: true, err: ErrAuthFailed}}, ""},
		{"backend error", []step{
			{resp: b("sysfail"), challenge: "Password:"},
			{resp: b("x"), done: true, err: errBackend}}, ""},
		{"empty user name", []step{{resp: b(""), done: true, err: ErrMalformed}}, ""},
		{"empty user name after challenge", []step{
			{resp: nil, challenge: "Username:"},
			{resp: b(""), done: true, err: ErrMalformed}}, ""},
		{"NUL in user name", []step{{resp: b("al\x00ice"), done: true, err: ErrMalformed}}, ""},
		{"bad UTF-8 user name", []step{{resp: b("al\xffice"), done: true, err: ErrMalformed}}, ""},
		{"long user name", []step{{resp: b(strings.Repeat("a", 256)), done: true, err: ErrMalformed}}, ""},
		{"empty password", []step{
			{resp: b("alice"), challenge: "Password:"},
			{resp: b(""), done: true, err: ErrMalformed}}, ""},
		{"NUL in password", []step{
			{resp: b("alice"), challenge: "Password:"},
			{resp: b("sec\x00ret"), done: true, err: ErrMalformed}}, ""},
		{"long password", []step{
			{resp: b("alice"), challenge: "Password:"},
			{resp: b(strings.Repeat("p", 256)), done: true, err: ErrMalformed}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewLOGIN(pc)
			run(t, s, tc.steps)
			if s.User() != tc.user {
				t.Errorf("User() = %q, want %q", s.User(), tc.user)
			}
			mustFinish(t, s)
		})
	}
}

func TestEXTERNAL(t *testing.T) {
	tests := []struct {
		name     string
		identity string
		steps    []step
		user     string
	}{
		{"empty authzid", "alice", []step{{resp: b(""), done: true}}, "alice"},
		{"no initial response", "alice", []step{{resp: nil, challenge: ""}, {resp: b(""), done: true}}, "alice"},
		{"same authzid", "alice", []step{{resp: b("Alice"), done: true}}, "alice"},
		{"other authzid", "alice", []step{{resp: b("bob"), done: true, err: ErrAuthFailed}}, ""},
		{"no certificate", "", []step{{resp: b(""), done: true, err: ErrAuthFailed}}, ""},
		{"no certificate, authzid", "", []step{{resp: nil, challenge: ""}, {resp: b("alice"), done: true, err: ErrAuthFailed}}, ""},
		{"NUL", "alice", []step{{resp: b("alice\x00"), done: true, err: ErrMalformed}}, ""},
		{"bad UTF-8", "alice", []step{{resp: b("\xc3"), done: true, err: ErrMalformed}}, ""},
		{"too long", "alice", []step{{resp: b(strings.Repeat("a", 256)), done: true, err: ErrMalformed}}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := NewEXTERNAL(tc.identity)
			run(t, s, tc.steps)
			if s.User() != tc.user {
				t.Errorf("User() = %q, want %q", s.User(), tc.user)
			}
			mustFinish(t, s)
		})
	}
}
