package fetch

import (
	"hash/crc32"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzStateLoad feeds arbitrary snapshot and journal files to the UIDL
// state of an account. Loading never panics; a damaged snapshot is an
// error that names the file; and what loads is written back (compacted)
// and loads again to the same entries, with nothing pending forgotten and
// the journal emptied.
func FuzzStateLoad(f *testing.F) {
	rec := func(p string) string { return p + " " + crcHex(p) + "\n" }
	for _, s := range [][2]string{
		{"", ""},
		{stateMagic + "\n", ""},
		{stateMagic + " dirty\nabc 1700000000 1700000001 -1 0\nxyz 5 0 1024 6\n", ""},
		{stateMagic + "\nabc 1 2 -1 0\n", rec("B 1700000000") + rec("D 1700000100 abc def ghi") + rec("P jkl 4096 1700000200")},
		{"", rec("D 10 a b") + rec("U a") + "torn line without crc"},
		{"", rec("P x 1 2") + rec("U x") + rec("D 3")},
		{"", "D 1 a 00000000\n"},
		{stateMagic + "\nabc 1 2\n", ""},
		{stateMagic + "\nabc 1 2 x 4\n", ""},
		{"postie-fetch-state 2\n", ""},
		{stateMagic + "\n\xff\xfe 1 2 3 4\n", rec("D 9 \u00a0 \u0085")},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, snapshot, journal string) {
		dir := t.TempDir()
		if snapshot != "" {
			if err := os.WriteFile(filepath.Join(dir, "acct.state"), []byte(snapshot), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, "acct.journal"), []byte(journal), 0o600); err != nil {
			t.Fatal(err)
		}
		now := time.Unix(1800000000, 0)
		s, err := openState(dir, "acct", false, now)
		if err != nil {
			if !strings.Contains(err.Error(), filepath.Join(dir, "acct.state")) {
				t.Fatalf("error %q does not name the state file", err)
			}
			return
		}
		want := maps.Clone(s.entries)
		for id, e := range s.entries {
			if id == "" || strings.ContainsAny(id, " \t\r\n") {
				t.Fatalf("entry id %q", id)
			}
			c := *e
			want[id] = &c
		}
		if journal != "" && !s.dirty {
			t.Fatal("a non-empty journal did not mark the state dirty")
		}
		if err := s.close(true); err != nil {
			t.Fatal(err)
		}
		s2, err := openState(dir, "acct", true, now)
		if err != nil {
			t.Fatalf("the compacted state does not load: %v", err)
		}
		defer s2.unlock()
		if s2.dirty {
			t.Fatal("state still dirty after a clean close")
		}
		if len(s2.entries) != len(want) {
			t.Fatalf("%d entries after compaction, want %d", len(s2.entries), len(want))
		}
		for id, e := range want {
			if g := s2.entries[id]; g == nil || *g != *e {
				t.Fatalf("entry %q = %+v after compaction, want %+v", id, g, e)
			}
		}
		if data, _ := os.ReadFile(filepath.Join(dir, "acct.journal")); len(data) != 0 {
			t.Fatalf("journal not emptied: %q", data)
		}
	})
}

func crcHex(p string) string {
	const hex = "0123456789abcdef"
	v := crc32.ChecksumIEEE([]byte(p))
	b := make([]byte, 8)
	for i := 7; i >= 0; i-- {
		b[i] = hex[v&15]
		v >>= 4
	}
	return string(b)
}
