package maildir

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postie-mail/postie/store"
)

// courierFiles is a Maildir as Courier's POP3 server (Debian 12's
// courier-pop 1.0.16) left it after a session: every message moved to
// cur/, and the list it wrote. The fourth message arrived afterwards.
var courierFiles = map[string]string{
	"cur/1600000000.M3P3.host:2,S":     "Subject: c\n\nx\n",
	"cur/1700000000.M1P1.host:2,":      "Subject: a\n\nhello\n",
	"cur/1700000001.M2P2.host,S=19:2,": "Subject: b\n\nbody22\n",
	"new/1700000005.M5P5.host":         "Subject: new\n\n",
	sizelistName: `/3 4 1796616186
1600000000.M3P3.host:2,S 17 1:1796616186:0
1700000000.M1P1.host:2, 21 2:1796616186:0
1700000001.M2P2.host,S=19:2, 22 3:1796616186:0
`,
}

var courierWant = []store.MessageInfo{
	{UID: "UID1-1796616186", Size: 17},
	{UID: "UID2-1796616186", Size: 21},
	{UID: "UID3-1796616186", Size: 22},
	{UID: "1700000005.M5P5.host", Size: 16},
}

func TestParseSizelist(t *testing.T) {
	l, err := parseSizelist([]byte(courierFiles[sizelistName]))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]courierRecord{
		"1600000000.M3P3.host": {1, 1796616186, 17},
		"1700000000.M1P1.host": {2, 1796616186, 21},
		"1700000001.M2P2.host": {3, 1796616186, 22},
	}
	if len(l.byUnique) != len(want) || l.bad != 0 {
		t.Fatalf("%+v", l)
	}
	for u, r := range want {
		if l.byUnique[u] != r {
			t.Errorf("%s: %+v, want %+v", u, l.byUnique[u], r)
		}
	}
	// List version 2 (no UTF-8 flag), a name with a space, UIDVALIDITY 0
	// and UID 0 (the name's UIDL, Courier's escapes).
	l, err = parseSizelist([]byte("/2 9\n17 a b:2,S 5 7:0\n18.x+'\" 5 0:4\n19.y 6 8:9:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for base, want := range map[string]string{"17 a b": "UID7", "18.x+'\"": "18.x+2B+27+22", "19.y": "UID8-9"} {
		n, _ := parseName(base)
		r, ok := l.lookup(n.unique)
		if got := r.uidl(base); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", base, got, ok, want)
		}
	}
}

func TestParseSizelistBad(t *testing.T) {
	for _, h := range []string{"", "/3 4 5", "3 4 5\n", "/1 4 5\n", "/4 4 5\n", "/3\n", "/3 4 5 6\n", "/3 -4 5\n", "/3 +4 5\n", "/3 4  5\n", "/3 4 5\r\n", "/03x 4 5\n", "/3 99999999999999999999 5\n"} {
		if _, err := parseSizelist([]byte(h)); err == nil {
			t.Errorf("header %q accepted", h)
		}
	}
	for _, line := range []string{
		"noSpaces",
		"a 1",
		" 1 2:3",
		"a 1 2",
		"a 1 2:3:4",
		"a 1 2:3:0:0",
		"a -1 2:3",
		"a 1 +2:3",
		"a 1 2:-3",
		"a 1 18446744073709551616:3",
		"a 1 2:3\r",
		"a 1 2:3 ",
		".a 1 2:3",
		"a/b 1 2:3",
		"a\x01 1 2:3",
		"\xff 1 2:3",
		strings.Repeat("a", maxSizelistLine) + " 1 2:3",
	} {
		l, err := parseSizelist([]byte("/3 4 5\n" + line + "\nok 1 2:3:0\n"))
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if l.bad != 1 || l.badLine != 2 || len(l.byUnique) != 1 {
			t.Errorf("%q: %+v", line, l)
		}
	}
	// The same message twice: neither record is believed. An unfinished
	// last line is not read.
	l, err := parseSizelist([]byte("/3 4 5\na:2,S 1 1:5:0\nb 1 2:5:0\na,S=3:2, 1 3:5:0\nc 1 4:5"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := l.lookup("a"); ok || l.bad != 3 || len(l.byUnique) != 1 {
		t.Errorf("%+v", l)
	}
}

func TestCourierUIDLs(t *testing.T) {
	s, dir, logs := takeoverStore(t, Options{CourierUIDLs: true}, courierFiles)
	// Courier ran again on the Maildir without its list (new UIDs,
	// another UIDVALIDITY, the fourth message listed): what postie
	// answered stays.
	list := "/3 5 99\n1600000000.M3P3.host:2,S 17 1:99:0\n1700000000.M1P1.host:2, 21 2:99:0\n1700000001.M2P2.host,S=19:2, 22 3:99:0\n1700000005.M5P5.host:2, 16 4:99:0\n"
	checkTakeover(t, s, dir, logs, courierWant, sizelistName, list, 0)
	if strings.Contains(logs.String(), "level=WARN") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("complaints:\n%s", logs)
	}
}

// TestCourierUIDLsRenamed: a message postie renamed for its true sizes
// (",S=" and ",W=" added) is still found by its unique part.
func TestCourierUIDLsRenamed(t *testing.T) {
	files := map[string]string{}
	for k, v := range courierFiles {
		files[k] = v
	}
	delete(files, "cur/1700000000.M1P1.host:2,")
	files["cur/1700000000.M1P1.host,S=18,W=21:2,S"] = "Subject: a\n\nhello\n"
	s, _, logs := takeoverStore(t, Options{CourierUIDLs: true}, files)
	if got := uidls(t, s); !slicesEqual(got, courierWant) {
		t.Fatalf("%v, want %v\n%s", got, courierWant, logs)
	}
}

func TestCourierUIDLsDisabled(t *testing.T) {
	s, dir, _ := takeoverStore(t, Options{}, courierFiles)
	got := uidls(t, s)
	if got[0].UID != "1600000000.M3P3.host" || got[3].UID != "1700000005.M5P5.host" {
		t.Errorf("%v", got)
	}
	if fileExists(filepath.Join(dir, uidlsName)) {
		t.Error("postie-uidls written")
	}
}

// TestCourierUIDLsWithDovecot: with both servers' files, a message
// dovecot-uidlist lists gets Dovecot's UIDL, one only Courier listed
// Courier's.
func TestCourierUIDLsWithDovecot(t *testing.T) {
	files := map[string]string{}
	for k, v := range courierFiles {
		files[k] = v
	}
	files[uidlistName] = "3 V7 N3\n1 :1600000000.M3P3.host\n2 :1700000005.M5P5.host\n"
	s, _, logs := takeoverStore(t, Options{CourierUIDLs: true, DovecotUIDLFormat: "%v.%u"}, files)
	want := []store.MessageInfo{{UID: "7.1", Size: 17}, courierWant[1], courierWant[2], {UID: "7.2", Size: 16}}
	if got := uidls(t, s); !slicesEqual(got, want) {
		t.Fatalf("%v, want %v\n%s", got, want, logs)
	}
}

// TestCourierUIDLsHostile: a courierpop3dsizelist that is damaged, a
// symbolic link, a FIFO, too big or a directory is logged and not used,
// and nothing is recorded until it is repaired; lines that cannot be read
// give their messages postie's own UIDL.
func TestCourierUIDLsHostile(t *testing.T) {
	// "damaged": an unknown header.
	damaged := "/9 1 2\n1600000000.M3P3.host:2,S 17 1:1796616186:0\n"
	checkHostile(t, Options{CourierUIDLs: true}, courierFiles, sizelistName, damaged, maxSizelist, "1600000000.M3P3.host", courierWant)

	// Bad lines, and two records claiming one UID for two messages.
	files := map[string]string{}
	for k, v := range courierFiles {
		files[k] = v
	}
	files[sizelistName] = "/3 4 5\n1600000000.M3P3.host:2,S 17 1:5:0\n1700000000.M1P1.host:2, 21 1:5:0\n1700000001.M2P2.host,S=19:2, 22 3:5:0:junk\n"
	s, _, logs := takeoverStore(t, Options{CourierUIDLs: true}, files)
	got := uidls(t, s)
	if got[0].UID != "UID1-5" || got[1].UID == "UID1-5" || !validUID(got[1].UID) || got[2].UID != "1700000001.M2P2.host" {
		t.Errorf("%v", got)
	}
	if !strings.Contains(logs.String(), "courierpop3dsizelist lines skipped") {
		t.Errorf("not logged:\n%s", logs)
	}
}

// FuzzParseSizelist: any input parses without panicking, and what is
// accepted is read exactly: each record under its name's unique part,
// each UIDL valid.
func FuzzParseSizelist(f *testing.F) {
	f.Add([]byte(courierFiles[sizelistName]))
	f.Add([]byte("/2 9\n17 a b:2,S 5 7:0\n18.x+'\" 5 0:4\n"))
	f.Add([]byte("/3 4 5\na 1 2:3\na 1 2:3\nb"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := parseSizelist(data)
		if err != nil {
			return
		}
		lines := strings.Count(string(data), "\n") - 1
		if !strings.HasSuffix(string(data), "\n") {
			lines++
		}
		if len(l.byUnique)+l.bad != lines {
			t.Fatalf("%d records and %d refused of %d lines", len(l.byUnique), l.bad, lines)
		}
		for u, r := range l.byUnique {
			// The key is a name's unique part as parseName gives it for a
			// file (not always a fixed point: "0,," gives "0,", which
			// gives "0"): something a file in cur/ or new/ can have.
			if _, ok := parseName(u); !ok || u[0] == '.' || strings.ContainsAny(u, "/:") {
				t.Fatalf("record under %q", u)
			}
			if got := r.uidl(u); !validUID(got) {
				t.Fatalf("invalid UIDL %q", got)
			}
		}
	})
}

// BenchmarkParseSizelist measures reading a courierpop3dsizelist of
// 100,000 messages, what the first login after a takeover adds (later
// logins read postie-uidls, as for Dovecot):
//
//	go test -bench ParseSizelist -run '^$' ./store/maildir
func BenchmarkParseSizelist(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("/3 100001 1796616186\n")
	for i := range 100_000 {
		fmt.Fprintf(&sb, "%d.M%06dP%dV000000000000FD01I%08X.courier.example.org,S=%d:2,S %d %d:1796616186:0\n", 1700000000+i/1000, i%1000, 4242, i, 1000+i%5000, 1020+i%5000, i+1)
	}
	data := []byte(sb.String())
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		l, err := parseSizelist(data)
		if err != nil || len(l.byUnique) != 100_000 {
			b.Fatal(err, l.bad)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}
