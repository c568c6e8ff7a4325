package auth

import "testing"

// TestHome: the home field of a Dovecot passwd-file line is read as
// written, whatever follows it, and found as Lookup finds the user.
func TestHome(t *testing.T) {
	db, _, _ := openTest(t, "alice@example.org:{PLAIN}a:5000:5000::/var/vmail/example.org/alice::userdb_quota_rule=*:storage=1G\n"+
		"Bob:{PLAIN}b:5000:5000:Bob B:/home/bob:/bin/sh\n"+
		"carol:{PLAIN}c:5000:5000::\n"+
		"dave:{PLAIN}d\n"+
		"eve:{PLAIN}e:1:2:gecos:relative/home\n", Options{})
	for user, want := range map[string]string{
		"alice@example.org": "/var/vmail/example.org/alice",
		"ALICE@example.org": "/var/vmail/example.org/alice",
		"bob":               "/home/bob",
		"Bob":               "/home/bob",
		"eve":               "relative/home",
		"carol":             "",
		"dave":              "",
		"nobody":            "",
		"":                  "",
	} {
		got, ok := db.Home(user)
		if got != want || ok != (want != "") {
			t.Errorf("Home(%q) = %q, %v; want %q", user, got, ok, want)
		}
	}
}
