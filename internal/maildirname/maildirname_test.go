package maildirname

import "testing"

func TestEscapeHost(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"mail.example.org", "mail.example.org"},
		{"a/b:c,d", `a\057b\072c\054d`},
		{`back\slash`, `back\134slash`},
		{"sp ace\ttab", `sp\040ace\011tab`},
		{"del\x7f\x00", `del\177\000`},
		{"h\xc3\xa9", `h\303\251`},
		{"!~-_.", "!~-_."},
	} {
		if got := EscapeHost(tc.in); got != tc.want {
			t.Errorf("EscapeHost(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
