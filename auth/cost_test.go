package auth

import (
	"os"
	"regexp"
	"testing"
)

// TestMain makes the slow hashes cheap for every test but
// TestProductionCosts: with Dovecot's Argon2 parameters (64 MiB, three
// passes) the package's tests took minutes under the race detector.
func TestMain(m *testing.M) {
	cost = costs{argon2idMemory: 64, argon2idTime: 1, argon2iMemory: 64, argon2iTime: 1, bcrypt: 4}
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

// What Hash writes outside the tests: Dovecot's defaults, so that hashes
// move between Dovecot and postie unchanged.
func TestProductionCosts(t *testing.T) {
	if productionCosts != (costs{argon2idMemory: 65536, argon2idTime: 3, argon2iMemory: 32768, argon2iTime: 4, bcrypt: 10}) {
		t.Errorf("productionCosts = %+v, not Dovecot's defaults", productionCosts)
	}
	for _, tc := range []struct{ scheme, shape string }{
		{"ARGON2ID", `^\{ARGON2ID\}\$argon2id\$v=19\$m=65536,t=3,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`},
		{"BLF-CRYPT", `^\{BLF-CRYPT\}\$2y\$10\$[./A-Za-z0-9]{53}$`},
	} {
		h, err := hashWith(productionCosts, tc.scheme, "secret")
		if err != nil || !regexp.MustCompile(tc.shape).MatchString(h) {
			t.Errorf("hashWith(productionCosts, %s) = %q, %v; want %s", tc.scheme, h, err, tc.shape)
		}
		if ok, err := Verify(h, "secret"); !ok || err != nil {
			t.Errorf("Verify(%s with production costs) = %v, %v", tc.scheme, ok, err)
		}
	}
}
