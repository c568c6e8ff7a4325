package sasl

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
)

// passwords is a PasswordChecker over a map, ASCII case-insensitive on
// the name like package auth; the canonical name is the map key.
type passwords map[string]string

func (p passwords) Authenticate(_ context.Context, user, password string) (string, bool, error) {
	if user == "sysfail" {
		return "", false, errBackend
	}
	for name, pw := range p {
		if strings.EqualFold(name, user) && pw == password {
			return name, true, nil
		}
	}
	return "", false, nil
}

var errBackend = errors.New("backend down")

// step is one client response and what the server must answer.
type step struct {
	resp      []byte // nil: no initial response
	challenge string // expected challenge (exact)
	done      bool
	err       error // expected error (errors.Is); nil for none
}

// run feeds steps to s and checks each answer.
func run(t *testing.T, s Server, steps []step) {
	t.Helper()
	for i, st := range steps {
		c, done, err := s.Next(context.Background(), st.resp)
		if string(c) != st.challenge || done != st.done || !errors.Is(err, st.err) || (st.err == nil && err != nil) {
			t.Fatalf("step %d: Next(%q) = %q, %v, %v; want %q, %v, %v", i, st.resp, c, done, err, st.challenge, st.done, st.err)
		}
		if err != nil && !done {
			t.Fatalf("step %d: error without done", i)
		}
	}
}

// mustFinish checks that a finished exchange refuses more input.
func mustFinish(t *testing.T, s Server) {
	t.Helper()
	if _, done, err := s.Next(context.Background(), []byte("x")); !done || !errors.Is(err, ErrMalformed) {
		t.Fatalf("Next after the end = %v, %v; want done and ErrMalformed", done, err)
	}
}

func b(s string) []byte { return []byte(s) }

func pbkdf2SHA256(password string, salt []byte) []byte {
	k, err := pbkdf2.Key(sha256.New, password, salt, 4096, sha256.Size)
	if err != nil {
		panic(err)
	}
	return k
}
