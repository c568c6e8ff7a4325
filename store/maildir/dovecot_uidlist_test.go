package maildir

import (
	"bytes"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/postie-mail/postie/store"
)

// A dovecot-uidlist as Dovecot 2.3 wrote it after one LMTP delivery, three
// files put in new/ by hand and a POP3 LIST, and what its POP3 answered
// with pop3_uidl_format = %08Xu%08Xv|%g|%f|%v.%u (one UIDL per "|").
const realUidlist = `3 V1796597488 N7 G48c8e80bf0e6156bc312000083ecc375
1 :1796597488.M199805P4803.vm,S=198,W=208
3 W30 :1700000002.M2P1.host
5 W21 :1700000001.M1P1.host,S=18
6 :1700000003.M3P1.host,S=18,W=21
`

func TestParseUidlistReal(t *testing.T) {
	l, err := parseUidlist([]byte(realUidlist))
	if err != nil {
		t.Fatal(err)
	}
	if l.validity != 1796597488 {
		t.Errorf("validity %d", l.validity)
	}
	want := map[string]string{
		"1796597488.M199805P4803.vm": "000000016b15e6f0|1796597488.M199805P4803.vm,S=198,W=208|1796597488.M199805P4803.vm,S=198,W=208|1796597488.1",
		"1700000002.M2P1.host":       "000000036b15e6f0|1700000002.M2P1.host|1700000002.M2P1.host|1796597488.3",
		"1700000001.M1P1.host":       "000000056b15e6f0|1700000001.M1P1.host,S=18|1700000001.M1P1.host,S=18|1796597488.5",
		"1700000003.M3P1.host":       "000000066b15e6f0|1700000003.M3P1.host,S=18,W=21|1700000003.M3P1.host,S=18,W=21|1796597488.6",
	}
	f, err := ParseUIDLFormat("%08Xu%08Xv|%g|%f|%v.%u")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.byUnique) != len(want) {
		t.Fatalf("%d records, want %d", len(l.byUnique), len(want))
	}
	for u, w := range want {
		r := l.lookup(u)
		if r == nil {
			t.Errorf("%s not listed", u)
			continue
		}
		if got := f.expand(r, l.validity); got != w {
			t.Errorf("%s: %q, want %q", u, got, w)
		}
	}
	if r := l.lookup("1700000002.M2P1.host"); r.vsize != 30 {
		t.Errorf("W: %d", r.vsize)
	}
}

func TestUIDLFormatExpand(t *testing.T) {
	r := &dovecotRecord{uid: 0x2a, base: "1700000001.M1P1.host,S=18", vsize: -1}
	g := &dovecotRecord{uid: 7, base: "abc", guid: "0123456789abcdef", vsize: -1}
	p := &dovecotRecord{uid: 7, base: "abc", pop3: "saved-uidl", vsize: -1}
	d := &dovecotRecord{uid: 1, base: "1796597488.M199805P4803.vm,S=198,W=208", vsize: -1}
	for _, c := range []struct {
		format string
		r      *dovecotRecord
		want   string
	}{
		{"%08Xu%08Xv", r, "0000002a000003e8"},
		{"%08xu%08xv", r, "0000002a000003e8"},
		{"%u", r, "42"},
		{"%v.%u", r, "1000.42"},
		{"%g", r, "1700000001.M1P1.host,S=18"},
		{"%g", g, "0123456789abcdef"},
		{"%f", r, "1700000001.M1P1.host,S=18"},
		{"%05u", r, "00042"},
		{"%1u", r, "4"},
		{"x%%%u", r, "x%42"},
		{"%Uf", g, "ABC"},
		{"%Lg", g, "0123456789abcdef"},
		{"%XUu", r, "2A"},
		// What Dovecot 2.3.19 answered for "1796597488.M199805P4803.vm,S=198,W=208",
		// UID 1, UIDVALIDITY 1796597488.
		{"%Xv", d, "6b15e6f0"},
		{"%Ug", d, "1796597488.M199805P4803.VM,S=198,W=208"},
		{"%4f", d, "1796"},
		{"%-4f", d, "1796"},
		{"%2.3f", d, "965"},
		{"%05u", d, "00001"},
		{"%0.8u", d, "1"},
		{"%-2.2f", d, "08"},
		{"%LXv", d, "6b15e6f0"},
		{"%UXv", d, "6b15e6f0"},
		{"%08Xu%08Xv", p, "saved-uidl"},
	} {
		f, err := ParseUIDLFormat(c.format)
		if err != nil {
			t.Errorf("%q: %v", c.format, err)
			continue
		}
		v := uint32(1000)
		if c.r == d {
			v = 1796597488
		}
		if got := f.expand(c.r, v); got != c.want {
			t.Errorf("%q: %q, want %q", c.format, got, c.want)
		}
	}
}

func TestUIDLFormatBad(t *testing.T) {
	for _, s := range []string{"", "abc", "%", "%08X", "%m", "%Xg", "%{uid}", "%Eu", "%q", "a b%u", "%u\x00", strings.Repeat("%u", 200)} {
		if _, err := ParseUIDLFormat(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestParseUidlistBad(t *testing.T) {
	for name, s := range map[string]string{
		"empty":          "",
		"no header end":  "3 V1 N2",
		"version 1":      "1 12345 3\n1 a\n",
		"version 2":      "2 V1 N1\n",
		"no V":           "3 N5\n",
		"V zero":         "3 V0 N5\n",
		"V too big":      "3 V4294967296 N5\n",
		"bad header":     "3 V1 n5\n",
		"no name":        "3 V1\n1 W5\n",
		"empty name":     "3 V1\n1 :\n",
		"slash":          "3 V1\n1 :../x\n",
		"dot name":       "3 V1\n1 :.x\n",
		"uid zero":       "3 V1\n0 :a\n",
		"uid sign":       "3 V1\n+1 :a\n",
		"uid order":      "3 V1\n2 :a\n1 :b\n",
		"uid repeated":   "3 V1\n1 :a\n1 :b\n",
		"name twice":     "3 V1\n1 :a,S=1\n2 :a,S=2\n",
		"bad W":          "3 V1\n1 Wx :a\n",
		"lower key":      "3 V1\n1 w5 :a\n",
		"control":        "3 V1\n1 P\x01 :a\n",
		"double space":   "3 V1\n1  :a\n",
		"incomplete":     "3 V1\n1 :a\n2 :b",
		"long line":      "3 V1\n1 P" + strings.Repeat("x", maxUidlistLine) + " :a\n",
		"control name":   "3 V1\n1 :a\x01b\n",
		"invalid utf8":   "3 V1\n1 :\xff\n",
		"uid too big":    "3 V1\n4294967296 :a\n",
		"field no value": "3 V1\n1 P :a\n",
	} {
		if _, err := parseUidlist([]byte(s)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := parseUidlist(make([]byte, maxUidlist+1)); err == nil {
		t.Error("oversized accepted")
	}
}

// FuzzParseUidlist holds the dovecot-uidlist parser to what the store
// relies on: it never panics, and what it accepts has a UIDVALIDITY,
// records with UIDs from 1 up, each under the unique part of its own name,
// whose UIDL is valid (RFC 1939 §7).
func FuzzParseUidlist(f *testing.F) {
	f.Add([]byte(realUidlist))
	f.Add([]byte("3 V1 N2\n1 P0123 G99 W12 :a,S=1:2,S\n"))
	f.Add([]byte("3 V1\n1 :a\n2 :a\n"))
	f.Add([]byte("1 2 3\n"))
	fm, err := ParseUIDLFormat("%08Xu%08Xv%g%-3f")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseUidlist(data)
		if err != nil {
			return
		}
		if l.validity == 0 {
			t.Fatal("no UIDVALIDITY")
		}
		for u, r := range l.byUnique {
			if r.uid == 0 {
				t.Fatal("UID 0")
			}
			n, ok := parseName(r.base)
			if !ok || n.unique != u {
				t.Fatalf("record of %q under %q", r.base, u)
			}
			if u := fm.uidl(r, l.validity); !validUID(u) {
				t.Fatalf("invalid UIDL %q", u)
			}
		}
	})
}

// dovecotStore is a store taking over Dovecot's UIDLs with format, and a
// Maildir for user "u" holding the given files (name → content).
func dovecotStore(t *testing.T, format string, files map[string]string) (*Store, string, *bytes.Buffer) {
	t.Helper()
	return takeoverStore(t, Options{DovecotUIDLFormat: format}, files)
}

// takeoverStore is a store with opts (its Root, Hostname, Logger and
// SnapshotCache set here), and a Maildir for user "u" holding the given
// files (name → content).
func takeoverStore(t *testing.T, opts Options, files map[string]string) (*Store, string, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	opts.Root = t.TempDir()
	opts.Hostname = "postie.example"
	opts.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.SnapshotCache = -1
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := s.Path("u")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return s, dir, &logs
}

// uidls opens u's maildrop and returns its UIDLs and sizes, in order.
func uidls(t *testing.T, s *Store) []store.MessageInfo {
	t.Helper()
	md := mustOpen(t, s, "u")
	defer md.Close()
	return append([]store.MessageInfo(nil), md.Messages()...)
}

var takeoverFiles = map[string]string{
	"new/1700000002.M2P1.host":           "Subject: b\n\nbody2\n",
	"cur/1700000001.M1P1.host,S=18:2,S":  "Subject: a\n\nbody1\n",
	"cur/1700000003.M3P1.host,S=18,W=21": "Subject: c\n\nbody3\n",
	"new/1700000004.M4P1.host":           "Subject: d\n\nnot listed\n",
	"dovecot-uidlist": `3 V1796597488 N7 G48c8e80bf0e6156bc312000083ecc375
3 W21 :1700000002.M2P1.host
5 W21 :1700000001.M1P1.host,S=18
6 P+saved+ :1700000003.M3P1.host,S=18,W=21
`,
}

// dovecotWant is what Dovecot answered of takeoverFiles, with
// pop3_uidl_format = %08Xu%08Xv.
var dovecotWant = []store.MessageInfo{
	{UID: "000000056b15e6f0", Size: 21},
	{UID: "000000036b15e6f0", Size: 21},
	{UID: "+saved+", Size: 21},
	{UID: "1700000004.M4P1.host", Size: 26},
}

func TestDovecotUIDLs(t *testing.T) {
	s, dir, logs := dovecotStore(t, "%08Xu%08Xv", takeoverFiles)
	want := dovecotWant
	// Dovecot rebuilt its file with a new UIDVALIDITY and now lists the
	// fourth message too: what postie answered stays.
	uidlist := "3 V99 N3\n1 :1700000001.M1P1.host,S=18\n2 :1700000004.M4P1.host\n"
	checkTakeover(t, s, dir, logs, want, uidlistName, uidlist, 1)
	// A removed message leaves the record.
	if b, _ := os.ReadFile(filepath.Join(dir, uidlsName)); bytes.Contains(b, []byte("1700000002.M2P1.host")) {
		t.Errorf("removed message still recorded:\n%s", b)
	}
}

// checkTakeover checks, for a store s whose maildrop "u" (in dir) takes
// over another server's UIDLs, that they are want the first time and
// again; that a deleted postie-uidls is rebuilt byte for byte with the
// same answers; that they stay when the other server rewrites its file
// (name) with list; that after message del is removed a delivery gets
// postie's own UIDL; and that the other server's file is never written.
func checkTakeover(t *testing.T, s *Store, dir string, logs *bytes.Buffer, want []store.MessageInfo, name, list string, del int) {
	t.Helper()
	check := func(what string) {
		t.Helper()
		if got := uidls(t, s); !slicesEqual(got, want) {
			t.Fatalf("%s: %v, want %v\n%s", what, got, want, logs)
		}
	}
	check("first")
	side, err := os.ReadFile(filepath.Join(dir, uidlsName))
	if err != nil {
		t.Fatal(err)
	}
	check("again")
	os.Remove(filepath.Join(dir, uidlsName))
	check("side file deleted")
	if again, _ := os.ReadFile(filepath.Join(dir, uidlsName)); !bytes.Equal(again, side) {
		t.Errorf("rebuilt postie-uidls differs:\n%s\nwant\n%s", again, side)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	check(name + " changed")
	md := mustOpen(t, s, "u")
	if err := md.Commit(t.Context(), []int{del}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	info := mustDeliver(t, s, "u", "new\n")
	want = append(slicesDelete(want, del), store.MessageInfo{UID: info.UID, Size: 5})
	check("after delete and delivery")
	if b, _ := os.ReadFile(filepath.Join(dir, name)); string(b) != list {
		t.Errorf("%s changed:\n%s", name, b)
	}
}

// hostileFiles are ways another server's file (at path) can be unusable:
// damaged (written as it), a symbolic link (to a file holding good), a
// FIFO, bigger than max, a directory.
func hostileFiles(t *testing.T, damaged, good string, max int64) map[string]func(path string) error {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]func(path string) error{
		"damaged": func(p string) error { return os.WriteFile(p, []byte(damaged), 0o600) },
		"symlink": func(p string) error { return os.Symlink(secret, p) },
		"fifo":    func(p string) error { return syscall.Mkfifo(p, 0o600) },
		"huge": func(p string) error {
			f, err := os.Create(p)
			if err != nil {
				return err
			}
			defer f.Close()
			return f.Truncate(max + 1)
		},
		"directory": func(p string) error { return os.Mkdir(p, 0o700) },
	}
}

// checkHostile checks, for each of hostileFiles in place of another
// server's file name (whose good content is in files), a store taking
// over with opts: the file is logged as unusable, the answers are
// postie's own (the first being own), nothing is recorded; and once the
// file is repaired the answers are want.
func checkHostile(t *testing.T, opts Options, files map[string]string, name, damaged string, max int64, own string, want []store.MessageInfo) {
	t.Helper()
	for what, setup := range hostileFiles(t, damaged, files[name], max) {
		without := maps.Clone(files)
		delete(without, name)
		s, dir, logs := takeoverStore(t, opts, without)
		if err := setup(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
		got := uidls(t, s)
		if len(got) != len(want) || got[0].UID != own {
			t.Errorf("%s: %v", what, got)
		}
		if !strings.Contains(logs.String(), "cannot use "+name) {
			t.Errorf("%s: not logged:\n%s", what, logs)
		}
		if fileExists(filepath.Join(dir, uidlsName)) {
			t.Errorf("%s: postie-uidls written", what)
		}
		os.Remove(filepath.Join(dir, name))
		os.WriteFile(filepath.Join(dir, name), []byte(files[name]), 0o600)
		if got := uidls(t, s); !slicesEqual(got, want) {
			t.Errorf("%s: after repair: %v, want %v", what, got, want)
		}
	}
}

func slicesEqual(a, b []store.MessageInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func slicesDelete(s []store.MessageInfo, i int) []store.MessageInfo {
	return append(append([]store.MessageInfo(nil), s[:i]...), s[i+1:]...)
}

func TestDovecotUIDLsOtherFormats(t *testing.T) {
	for format, first := range map[string]string{
		"%v.%u": "1796597488.5",
		"%g":    "1700000001.M1P1.host,S=18",
		"%08xu": "00000005",
	} {
		s, _, logs := dovecotStore(t, format, takeoverFiles)
		got := uidls(t, s)
		if got[0].UID != first || got[2].UID != "+saved+" || got[3].UID != "1700000004.M4P1.host" {
			t.Errorf("%s: %v\n%s", format, got, logs)
		}
	}
}

// TestDovecotUIDLsDisabled: no format, no Dovecot: postie's own UIDLs and
// no side file.
func TestDovecotUIDLsDisabled(t *testing.T) {
	s, dir, _ := dovecotStore(t, "", takeoverFiles)
	if got := uidls(t, s); got[0].UID != "1700000001.M1P1.host" {
		t.Errorf("%v", got)
	}
	if fileExists(filepath.Join(dir, uidlsName)) {
		t.Error("postie-uidls written")
	}
	// A maildrop Dovecot never had: no side file either.
	s, dir, _ = dovecotStore(t, "%08Xu%08Xv", map[string]string{"new/1.a": "x\n"})
	if got := uidls(t, s); got[0].UID != "1.a" {
		t.Errorf("%v", got)
	}
	if fileExists(filepath.Join(dir, uidlsName)) {
		t.Error("postie-uidls written")
	}
}

// TestDovecotUIDLsHostile: a dovecot-uidlist that is damaged, a symbolic
// link, a FIFO or huge is not used (logged), the maildrop still opens, and
// nothing is recorded, so that the answers follow the file once it is
// repaired.
func TestDovecotUIDLsHostile(t *testing.T) {
	checkHostile(t, Options{DovecotUIDLFormat: "%08Xu%08Xv"}, takeoverFiles, uidlistName, "3 V1\n1 :x\nrubbish\n", maxUidlist, "1700000001.M1P1.host", dovecotWant)
}

// TestDovecotUIDLsSideFileHostile: a damaged postie-uidls is rebuilt from
// dovecot-uidlist; one that is a symbolic link is not followed.
func TestDovecotUIDLsSideFileHostile(t *testing.T) {
	for name, content := range map[string]string{
		"damaged":   "postie-uidls 1\nno-space-here\n",
		"bad uidl":  "postie-uidls 1\n1700000001.M1P1.host bad\x01uidl\n",
		"duplicate": "postie-uidls 1\na x\na y\n",
		"header":    "postie-uidls 9\n",
	} {
		s, dir, _ := dovecotStore(t, "%08Xu%08Xv", takeoverFiles)
		os.WriteFile(filepath.Join(dir, uidlsName), []byte(content), 0o600)
		if got := uidls(t, s); got[0].UID != "000000056b15e6f0" || got[2].UID != "+saved+" {
			t.Errorf("%s: %v", name, got)
		}
	}
	s, dir, _ := dovecotStore(t, "%08Xu%08Xv", takeoverFiles)
	target := filepath.Join(t.TempDir(), "target")
	os.WriteFile(target, []byte("postie-uidls 1\n1700000001.M1P1.host stolen\n"), 0o600)
	os.Symlink(target, filepath.Join(dir, uidlsName))
	if got := uidls(t, s); got[0].UID != "000000056b15e6f0" {
		t.Errorf("symlink followed: %v", got)
	}
	if b, _ := os.ReadFile(target); !strings.Contains(string(b), "stolen") {
		t.Errorf("written through the link: %s", b)
	}
}

// FuzzUIDLFormat: any format the parser accepts expands without panicking
// to a valid UIDL, for any record.
func FuzzUIDLFormat(f *testing.F) {
	for _, s := range []string{"%08Xu%08Xv", "%-2.2f", "%2.3f", "%0.8u", "%XUu", "%-9999.9999g", "%%%u"} {
		f.Add(s, uint32(1), "1700000001.M1P1.host,S=18", "")
	}
	f.Fuzz(func(t *testing.T, format string, uid uint32, base, guid string) {
		fm, err := ParseUIDLFormat(format)
		if err != nil {
			return
		}
		r := &dovecotRecord{uid: uid, base: base, guid: guid, vsize: -1}
		if u := fm.uidl(r, 12345); !validUID(u) {
			t.Fatalf("invalid UIDL %q", u)
		}
	})
}

// TestDovecotControlPath: with Options.DovecotControlPath, dovecot-uidlist
// is read in the user's control directory (Dovecot's CONTROL=), in .INBOX/,
// not in the Maildir; a missing control directory is a missing uidlist,
// one that is a symbolic link is refused.
func TestDovecotControlPath(t *testing.T) {
	files := map[string]string{}
	for k, v := range takeoverFiles {
		files[k] = v
	}
	// What a Maildir without CONTROL= would have: not Dovecot's file here.
	files[uidlistName] = "3 V5 N9\n1 :1700000001.M1P1.host,S=18\n"
	want := dovecotWant
	s, dir, logs := takeoverStore(t, Options{DovecotUIDLFormat: "%08Xu%08Xv", DovecotControlPath: "control/%u"}, files)
	control := filepath.Join(filepath.Dir(dir), "control", "u")
	if got := uidls(t, s); got[0].UID != "1700000001.M1P1.host" || fileExists(filepath.Join(dir, uidlsName)) {
		t.Errorf("no control directory: %v", got)
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("a missing control directory logged an error:\n%s", logs)
	}
	// A control directory that is a symbolic link: not followed.
	elsewhere := t.TempDir()
	os.Mkdir(filepath.Join(elsewhere, inboxControls[0]), 0o700)
	os.WriteFile(filepath.Join(elsewhere, inboxControls[0], uidlistName), []byte(takeoverFiles[uidlistName]), 0o600)
	os.MkdirAll(filepath.Dir(control), 0o700)
	if err := os.Symlink(elsewhere, control); err != nil {
		t.Fatal(err)
	}
	if got := uidls(t, s); got[0].UID != "1700000001.M1P1.host" || !strings.Contains(logs.String(), "cannot use dovecot-uidlist") {
		t.Errorf("symbolic link: %v\n%s", got, logs)
	}
	os.Remove(control)
	if err := os.MkdirAll(filepath.Join(control, inboxControls[0]), 0o700); err != nil {
		t.Fatal(err)
	}
	// Only INBOX's file counts (as Dovecot 2.3 keeps it, in .INBOX/).
	os.WriteFile(filepath.Join(control, uidlistName), []byte(files[uidlistName]), 0o600)
	os.WriteFile(filepath.Join(control, inboxControls[0], uidlistName), []byte(takeoverFiles[uidlistName]), 0o600)
	if got := uidls(t, s); !slicesEqual(got, want) {
		t.Errorf("%v, want %v\n%s", got, want, logs)
	}
	if _, err := New(Options{Root: t.TempDir(), DovecotControlPath: "control"}); err == nil {
		t.Error("a control path without a variable accepted")
	}
	if _, err := New(Options{Root: t.TempDir(), DovecotControlPath: "%h/control"}); err == nil {
		t.Error("%h without home directories accepted")
	}
}

// TestDovecotControlPathLayoutFS: with Dovecot's LAYOUT=fs, INBOX's
// control files are in INBOX/ of the control directory, not .INBOX/:
// dovecot-uidlist is read there when there is no .INBOX/; an INBOX that is
// a symbolic link is refused.
func TestDovecotControlPathLayoutFS(t *testing.T) {
	files := map[string]string{}
	for k, v := range takeoverFiles {
		files[k] = v
	}
	delete(files, uidlistName)
	s, dir, logs := takeoverStore(t, Options{DovecotUIDLFormat: "%08Xu%08Xv", DovecotControlPath: "control/%u"}, files)
	control := filepath.Join(filepath.Dir(dir), "control", "u")
	elsewhere := t.TempDir()
	os.WriteFile(filepath.Join(elsewhere, uidlistName), []byte(takeoverFiles[uidlistName]), 0o600)
	if err := os.MkdirAll(control, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(elsewhere, filepath.Join(control, "INBOX")); err != nil {
		t.Fatal(err)
	}
	if got := uidls(t, s); got[0].UID != "1700000001.M1P1.host" || !strings.Contains(logs.String(), "cannot use dovecot-uidlist") {
		t.Errorf("INBOX a symbolic link: %v\n%s", got, logs)
	}
	os.Remove(filepath.Join(control, "INBOX"))
	if err := os.Mkdir(filepath.Join(control, "INBOX"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(control, "INBOX", uidlistName), []byte(takeoverFiles[uidlistName]), 0o600)
	if got := uidls(t, s); !slicesEqual(got, dovecotWant) {
		t.Errorf("%v, want %v\n%s", got, dovecotWant, logs)
	}
}
