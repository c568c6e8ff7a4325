package auth

import (
	"slices"
	"strings"
	"testing"
)

// TestCheckPasswdFile: the problems name the line and never its text.
func TestCheckPasswdFile(t *testing.T) {
	secret := "{SHA512-CRYPT}$6$salt$notreallyahash"
	data := "# users\n" +
		"alice:{PLAIN}pw1\n" +
		"\n" +
		"no colon here " + secret + "\n" +
		"alice:{PLAIN}other\n" +
		"bob:{NOSUCH}" + secret + "\n" +
		"carol::::::\n" +
		"bad/name:" + secret + "\n" +
		"dave:" + secret + "\r\n"
	users, problems := CheckPasswdFile([]byte(data))
	if users != 4 {
		t.Errorf("users = %d, want 4 (alice, bob, carol, dave)", users)
	}
	var got []string
	for _, p := range problems {
		s := p.String()
		if strings.Contains(s, "notreallyahash") || strings.Contains(s, "pw1") || strings.Contains(s, "other") {
			t.Errorf("problem %q shows a password", s)
		}
		if p.Malformed {
			s = "malformed " + s
		}
		got = append(got, s)
	}
	want := []string{
		`malformed line 4: no ':' after the user name`,
		`line 5 (user "alice"): a second entry for this user (skipped: the first wins)`,
		`line 6 (user "bob"): unknown password scheme: the user cannot log in`,
		`malformed line 8: `,
	}
	if len(got) != len(want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d = %q, want %q…", i, got[i], want[i])
		}
	}
	if users, problems := CheckPasswdFile(nil); users != 0 || !slices.Equal(problems, nil) {
		t.Errorf("empty file: %d users, %v", users, problems)
	}
}
