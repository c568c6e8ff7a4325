package auth

import (
	"strings"
	"testing"
)

func TestParseLine(t *testing.T) {
	tests := []struct {
		raw                  string
		kind                 lineKind
		user, password, rest string
	}{
		{"", lineBlank, "", "", ""},
		{"   \t", lineBlank, "", "", ""},
		{"\r", lineBlank, "", "", ""},
		{"# comment: with colons", lineComment, "", "", ""},
		{"  # indented comment", lineComment, "", "", ""},
		{"alice:{PLAIN}x", lineEntry, "alice", "{PLAIN}x", ""},
		{"alice:{PLAIN}x\r", lineEntry, "alice", "{PLAIN}x", ""},
		{"alice:{PLAIN}x:1000:1000::/home/alice::", lineEntry, "alice", "{PLAIN}x", ":1000:1000::/home/alice::"},
		{"alice:{PLAIN}x:::::: userdb_mail=maildir:~/Mail:LAYOUT=fs", lineEntry, "alice", "{PLAIN}x", ":::::: userdb_mail=maildir:~/Mail:LAYOUT=fs"},
		{"alice:", lineEntry, "alice", "", ""},
		{"alice::1000", lineEntry, "alice", "", ":1000"},
		{"alice", lineMalformed, "", "", ""},
		{":{PLAIN}x", lineMalformed, "", "", ""},
		{" alice:{PLAIN}x", lineMalformed, "", "", ""},
		{"../alice:{PLAIN}x", lineMalformed, "", "", ""},
		{".alice:{PLAIN}x", lineMalformed, "", "", ""},
		{"alice:{PLAIN}x\x00y", lineMalformed, "", "", ""},
		{"alice:{PLAIN}x\ty", lineMalformed, "", "", ""},
		{"alice:{PLAIN}x\r\r", lineMalformed, "", "", ""},
		{"alice:{PLAIN}x:a\rb", lineMalformed, "", "", ""},
	}
	for _, tt := range tests {
		l := parseLine(tt.raw)
		if l.kind != tt.kind || l.user != tt.user || l.password != tt.password || l.rest != tt.rest || l.raw != tt.raw {
			t.Errorf("parseLine(%q) = %+v; want kind %d user %q password %q rest %q", tt.raw, l, tt.kind, tt.user, tt.password, tt.rest)
		}
		if tt.kind == lineMalformed && l.problem == "" {
			t.Errorf("parseLine(%q): malformed without a reason", tt.raw)
		}
		if tt.kind == lineMalformed && strings.Contains(l.problem, "PLAIN") {
			t.Errorf("parseLine(%q): reason %q quotes the line", tt.raw, l.problem)
		}
	}
}

func TestParseFileRoundTrip(t *testing.T) {
	const file = "# postie users\n" +
		"\n" +
		"alice:{PLAIN}a:1000:1000:Alice A:/home/alice:/bin/false:userdb_quota_rule=*:storage=1G\n" +
		"bob:{PLAIN}b\r\n" +
		"bad line\n" +
		"   \n" +
		"carol:{PLAIN}c" // no final newline
	f := parseFile([]byte(file))
	if got, want := len(f.lines), 7; got != want {
		t.Fatalf("%d lines; want %d", got, want)
	}
	kinds := []lineKind{lineComment, lineBlank, lineEntry, lineEntry, lineMalformed, lineBlank, lineEntry}
	for i, k := range kinds {
		if f.lines[i].kind != k {
			t.Errorf("line %d kind %d; want %d", i+1, f.lines[i].kind, k)
		}
	}
	if f.crlf {
		t.Error("crlf set for a file whose first line ends LF")
	}
	if got, want := string(f.bytes()), file+"\n"; got != want {
		t.Errorf("bytes() =\n%q\nwant\n%q", got, want)
	}
	if f := parseFile([]byte("a:{PLAIN}x\r\nb:{PLAIN}y\r\n")); !f.crlf || f.newEntry("c", "{PLAIN}z", "").raw != "c:{PLAIN}z\r" {
		t.Errorf("CRLF file: crlf=%v, new entry %q", f.crlf, f.newEntry("c", "{PLAIN}z", "").raw)
	}
	if f := parseFile(nil); len(f.lines) != 0 || len(f.bytes()) != 0 {
		t.Errorf("empty file: %d lines, %q", len(f.lines), f.bytes())
	}
}

// FuzzParseLine: parseLine never panics; an entry re-serialises to the
// same text and parses back to the same fields; every line survives a
// file round trip.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"alice:{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA:1000:1000:Alice:/home/alice:/bin/sh:userdb_x=y",
		"bob:$2y$10$IgZA.7/GKVEV5INh4bTBrujWPDM5j8RBB6xWCnnYD/z.3UYjk4RRW",
		"carol:{PLAIN}x\r",
		"# comment",
		"",
		"  \t",
		"no-colon",
		"../evil:{PLAIN}x",
		"a:b:c\rd",
		"dave::::::",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.Contains(raw, "\n") {
			t.Skip("a line has no LF")
		}
		l := parseLine(raw)
		if l.raw != raw {
			t.Fatalf("raw %q; want %q", l.raw, raw)
		}
		if l.kind == lineEntry {
			if err := ValidUsername(l.user); err != nil {
				t.Fatalf("entry with invalid user %q: %v", l.user, err)
			}
			if strings.ContainsRune(l.password, ':') {
				t.Fatalf("password field %q contains ':'", l.password)
			}
			text := l.format()
			if text != strings.TrimSuffix(raw, "\r") {
				t.Fatalf("format() = %q; want %q", text, strings.TrimSuffix(raw, "\r"))
			}
			again := parseLine(text)
			if again.kind != lineEntry || again.user != l.user || again.password != l.password || again.rest != l.rest {
				t.Fatalf("reparse of %q = %+v; want %+v", text, again, l)
			}
		}
		f := parseFile([]byte(raw + "\n"))
		if len(f.lines) != 1 || f.lines[0].kind != l.kind || string(f.bytes()) != raw+"\n" {
			t.Fatalf("file round trip of %q: %+v, %q", raw, f.lines, f.bytes())
		}
	})
}
