package maildir

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeliverUIDL: a message delivered with a UIDL is listed under it, in
// this and later sessions, with the snapshot cache on or off; its name
// carries it; an invalid UIDL is refused; two messages claiming one UIDL
// get different ones.
func TestDeliverUIDL(t *testing.T) {
	for _, cache := range []int{0, -1} {
		s, err := New(Options{Root: t.TempDir(), Hostname: "h", SnapshotCache: cache})
		if err != nil {
			t.Fatal(err)
		}
		uidls := []string{"000000016b15e6f0", "a/b:c,d%e\\f", strings.Repeat("~", 70)}
		for _, u := range uidls {
			info, err := s.DeliverUIDL(t.Context(), "u", u, strings.NewReader("Subject: x\n\n"+u+"\n"))
			if err != nil || info.UID != u {
				t.Fatalf("DeliverUIDL(%q) = %+v, %v", u, info, err)
			}
		}
		own := mustDeliver(t, s, "u", "own\n")
		for _, bad := range []string{"", "has space", strings.Repeat("x", 71), "\x00"} {
			if _, err := s.DeliverUIDL(t.Context(), "u", bad, strings.NewReader("x\n")); err == nil {
				t.Errorf("UIDL %q accepted", bad)
			}
		}
		for range 2 {
			md := mustOpen(t, s, "u")
			var got []string
			for _, m := range md.Messages() {
				got = append(got, m.UID)
			}
			md.Close()
			if want := append(append([]string(nil), uidls...), own.UID); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("cache %d: UIDLs %q, want %q", cache, got, want)
			}
		}
		dir, _ := s.Path("u")
		if _, err := s.DeliverUIDL(t.Context(), "u", uidls[0], strings.NewReader("again\n")); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "new"))
		found := false
		for _, e := range ents {
			found = found || strings.Contains(e.Name(), ",U=a%2Fb%3Ac%2Cd%25e%5Cf,")
		}
		if !found {
			t.Errorf("no name records the escaped UIDL: %v", ents)
		}
		md := mustOpen(t, s, "u")
		seen := map[string]bool{}
		for _, m := range md.Messages() {
			if seen[m.UID] {
				t.Errorf("UIDL %q listed twice", m.UID)
			}
			seen[m.UID] = true
		}
		md.Close()
	}
}

func TestParseUIDLField(t *testing.T) {
	for v, want := range map[string]string{
		"abc":          "abc",
		"a%2Fb":        "a/b",
		"a%2fb":        "", // lower case: not ours
		"a%41":         "", // 'A' is never escaped
		"a%2":          "",
		"a%":           "",
		"%25%25":       "%%",
		"":             "",
		"a\\b":         "",
		"sp ce":        "",
		"%5C%3A%2C%2F": "\\:,/",
	} {
		if got := parseUIDLField(v); got != want {
			t.Errorf("parseUIDLField(%q) = %q, want %q", v, got, want)
		}
	}
}

// FuzzUIDLField: every valid UIDL survives a trip through a file name, and
// leaves the name's unique part and sizes alone.
func FuzzUIDLField(f *testing.F) {
	f.Add("000000016b15e6f0")
	f.Add("a/b:c,d%e\\f")
	f.Fuzz(func(t *testing.T, u string) {
		if !validUID(u) {
			return
		}
		name := "1700000000.M1P2Q3R4.host" + uidlField(u) + ",S=5,W=6:2,S"
		n, ok := parseName(name)
		if !ok || n.uidl != u || n.unique != "1700000000.M1P2Q3R4.host" || n.fsize != 5 || n.wsize != 6 || n.uid() != u {
			t.Fatalf("%q: %+v %v", name, n, ok)
		}
	})
}
