package intake

import (
	"errors"
	"strings"
	"testing"
)

// FuzzResolve holds recipient resolution to its rules for any address
// LMTP, SMTP or deliver may be handed: it never panics; an accepted
// address holds no control characters (it goes into Delivered-To and
// Received), is in a local domain, and names its user by its local part
// or by the part before the first "+"; a refused one gets one of the
// address kinds, which decide a permanent reply.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"alice", "alice@example.org", "ALICE@EXAMPLE.ORG.", "alice+lists@example.org",
		"a+b@example.net", "a+c@example.net", "bob@other.org", "@example.org", "",
		"alice@", "carol@@example.org", "\"alice\"@example.org", "alice\r\nX: y@example.org",
		"ali\x00ce@example.org", "+alice@example.org", "alice+@example.org",
		"alice@example.org@example.org", strings.Repeat("a", 600) + "@example.org",
		"AlIcE", "alice@exampLe.net", "alice@example.org..", "\u212aalice@example.org",
	} {
		f.Add(s)
	}
	e := newEnv(f, nil)
	known := map[string]bool{"alice": true, "bob": true, "carol": true, "a+b": true}
	f.Fuzz(func(t *testing.T, addr string) {
		r, err := e.d.Resolve(addr)
		if err != nil {
			var ie *Error
			if !errors.As(err, &ie) {
				t.Fatalf("Resolve(%q): %v is not an *Error", addr, err)
			}
			switch ie.Kind {
			case KindBadAddress, KindNotLocal, KindNoUser:
			default:
				t.Fatalf("Resolve(%q): kind %v", addr, ie.Kind)
			}
			return
		}
		if !known[r.User] {
			t.Fatalf("Resolve(%q) = user %q, not a user of the database", addr, r.User)
		}
		if strings.ContainsFunc(r.Address, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
			t.Fatalf("Resolve(%q) accepted control characters: %q", addr, r.Address)
		}
		local := addr
		if i := strings.LastIndexByte(addr, '@'); i >= 0 {
			local = addr[:i]
			if !e.d.IsLocalDomain(addr[i+1:]) {
				t.Fatalf("Resolve(%q) accepted a domain that is not local", addr)
			}
		} else if asciiEqualFold(addr, r.User) && r.Address != r.User {
			t.Fatalf("Resolve(%q): a bare user name gives Address %q, want %q", addr, r.Address, r.User)
		}
		base, _, _ := strings.Cut(local, "+")
		if !asciiEqualFold(local, r.User) && !asciiEqualFold(base, r.User) {
			t.Fatalf("Resolve(%q) = user %q: neither the local part nor its base", addr, r.User)
		}
	})
}
