package auth

import (
	"strings"
	"testing"
)

// A failed login for an unknown name is checked against one of the stored
// hashes, not always against the Argon2 dummy: where users are stored in a
// cheaper scheme, the dummy's cost told unknown names from known ones
// (measured through postie serve: 130–430 ms against 3 ms with
// SHA512-CRYPT users).
func TestUnknownUserCostsLikeAKnownOne(t *testing.T) {
	var file strings.Builder
	for _, u := range []string{"alice", "bob", "carol"} {
		h, err := Hash("SHA512-CRYPT", u+"-pw")
		if err != nil {
			t.Fatal(err)
		}
		file.WriteString(u + ":" + h + "\n")
	}
	file.WriteString("frank:{NO-SUCH-SCHEME}xyz\nerin:\n")
	db, _, logs := openTest(t, file.String(), Options{CacheTTL: -1})
	st := db.current()
	if len(st.hashes) != 3 {
		t.Fatalf("%d stand-in hashes, want the 3 in a known scheme", len(st.hashes))
	}
	for _, name := range []string{"nobody", "mallory", "x", "erin", strings.Repeat("z", 64)} {
		stand := st.stand(name, db.dummy)
		if scheme, _ := storedScheme(stand); scheme != "SHA512-CRYPT" {
			t.Errorf("%s is checked against a %s hash, want one of the stored SHA512-CRYPT ones", name, scheme)
		}
		if st.stand(strings.ToUpper(name), db.dummy) != stand {
			t.Errorf("%s: the stand-in depends on the case of the name", name)
		}
		// Even the right password of the user whose hash stands in
		// does not log an unknown name in.
		for _, u := range []string{"alice", "bob", "carol"} {
			before := db.verifications.Load()
			if _, ok := authOK(t, db, name, u+"-pw"); ok {
				t.Fatalf("%s logged in with %s's password", name, u)
			}
			if n := db.verifications.Load() - before; n != 1 {
				t.Errorf("%s: %d verifications, want 1", name, n)
			}
		}
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("failed logins of unknown names logged errors:\n%s", logs.String())
	}
	// Without a stored hash, the Argon2 dummy.
	empty, _, _ := openTest(t, "", Options{CacheTTL: -1})
	if got := empty.current().stand("nobody", empty.dummy); got != empty.dummy {
		t.Errorf("empty DB: stand-in %q, want the dummy", got)
	}
}
