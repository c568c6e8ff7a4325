package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by this package. Callers test them with errors.Is.
var (
	// ErrUserExists: Add of a name that is already in the file (ASCII
	// case-insensitively: "Alice" and "alice" cannot both exist).
	ErrUserExists = errors.New("auth: user already exists")
	// ErrNoSuchUser: SetPassword or Delete of a name not in the file.
	ErrNoSuchUser = errors.New("auth: no such user")
	// ErrBadUsername: the name fails ValidUsername.
	ErrBadUsername = errors.New("auth: invalid user name")
	// ErrUnknownScheme: a password scheme this package does not know, or
	// (from Hash) one it can verify but will not generate.
	ErrUnknownScheme = errors.New("auth: unknown password scheme")
	// ErrMalformedHash: a stored password in a known scheme that cannot be
	// decoded (bad base64, missing salt, impossible parameters).
	ErrMalformedHash = errors.New("auth: malformed password hash")
)

// MaxUsernameLen is the longest user name ValidUsername accepts, in bytes.
const MaxUsernameLen = 255

// ValidUsername refuses names that could escape a mail root or confuse a
// passwd-file: the empty name, names longer than MaxUsernameLen bytes,
// names containing '/', '\\', ':', NUL, other control characters (below
// 0x20, and 0x7f) or spaces, names starting with '.' (which covers "."
// and "..") and names starting with '#' (a passwd-file line that starts
// so is a comment: the user would be written and never found). The error
// wraps ErrBadUsername.
func ValidUsername(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadUsername)
	case len(name) > MaxUsernameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadUsername, MaxUsernameLen)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("%w: starts with '.'", ErrBadUsername)
	case strings.HasPrefix(name, "#"):
		return fmt.Errorf("%w: starts with '#'", ErrBadUsername)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: control character at byte %d", ErrBadUsername, i)
		case c == ' ' || c == '/' || c == '\\' || c == ':':
			return fmt.Errorf("%w: %q not allowed", ErrBadUsername, c)
		}
	}
	return nil
}

// asciiLower lower-cases ASCII letters only. Unicode case mapping is
// deliberately avoided: it would make look-alike names (the Kelvin sign
// folds to 'k') reach another user's maildrop.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
