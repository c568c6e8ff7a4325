package auth

import (
	"errors"
	"strings"
	"testing"
)

func TestValidUsername(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"ok.user-1_x@example.com", true},
		{"alice", true},
		{"Alice", true},
		{"a", true},
		{"a.", true},
		{"a..b", true},
		{"a#b", true},
		{"user+tag", true},
		{"jürgen", true}, // UTF-8 is not refused
		{strings.Repeat("x", 255), true},

		{"", false},
		{strings.Repeat("x", 256), false},
		{".", false},
		{"..", false},
		{".hidden", false},
		{"#x", false}, // a comment line in the passwd-file
		{"#", false},
		{"../x", false},
		{"a/b", false},
		{"/etc", false},
		{`a\b`, false},
		{"a:b", false},
		{"a b", false},
		{" alice", false},
		{"alice ", false},
		{"a\x00b", false},
		{"a\tb", false},
		{"a\nb", false},
		{"a\rb", false},
		{"a\x1fb", false},
		{"a\x7fb", false},
	}
	for _, tt := range tests {
		err := ValidUsername(tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("ValidUsername(%q) = %v; want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrBadUsername) {
			t.Errorf("ValidUsername(%q) = %v; does not wrap ErrBadUsername", tt.name, err)
		}
	}
}

func TestASCIILower(t *testing.T) {
	for in, want := range map[string]string{
		"":        "",
		"alice":   "alice",
		"ALICE":   "alice",
		"aLiCe@X": "alice@x",
		"JÜRGEN":  "jÜrgen", // ASCII only
		"\u212a":  "\u212a", // the Kelvin sign is not 'k'
	} {
		if got := asciiLower(in); got != want {
			t.Errorf("asciiLower(%q) = %q; want %q", in, got, want)
		}
	}
}
