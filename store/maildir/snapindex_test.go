package maildir

import (
	"bytes"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

// The snapshot index must never show a session what the directories no
// longer say, and must be used when they still say it. These tests build a
// maildrop of indexMin messages, "restart" postie (a new Store on the same
// root, its snapshot cache empty) and check which snapshot the first login
// gets.

// indexedStore returns a store whose clock runs an hour ahead (every
// snapshot is trusted), the Maildir of alice filled with n messages by
// makeMaildir (names with sizes, or without, the sizes in postie-sizes),
// and the snapshot of a first login, which wrote the index when n is big
// enough.
func indexedStore(t *testing.T, n int, bare bool) (*Store, string, []store.MessageInfo) {
	t.Helper()
	s, _ := newTestStore(t, "h")
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	dir, _ := s.Path("alice")
	if err := ensure(dir); err != nil {
		t.Fatal(err)
	}
	makeMaildir(t, dir, n, bare)
	return s, dir, login(t, s)
}

// restart returns a new Store on s's root, with s's clock and the given
// directory stamps (nil: the real ones), and its log.
func restart(t *testing.T, s *Store, stat func(*mdir, string) (dirStamp, error)) (*Store, *bytes.Buffer) {
	t.Helper()
	r, logs := newTestStore(t, "h")
	r.root, r.now = s.root, s.now
	if stat != nil {
		r.statDir = stat
	}
	return r, logs
}

// frozenStamps returns a statDir that gives the stamps new/ and cur/ of dir
// have now, whatever happens to them later: a file system whose timestamps
// did not move.
func frozenStamps(t *testing.T, dir string) func(*mdir, string) (dirStamp, error) {
	t.Helper()
	stamps := map[string]dirStamp{}
	for _, sub := range []string{dirNew, dirCur} {
		st, err := statDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		stamps[filepath.Join(dir, sub)] = st
	}
	return func(d *mdir, sub string) (dirStamp, error) {
		if st, ok := stamps[filepath.Join(d.path, sub)]; ok {
			return st, nil
		}
		return statDirAt(d.fd, sub)
	}
}

// addExternally puts a message into new/ as another program would.
func addExternally(t *testing.T, dir string) store.MessageInfo {
	t.Helper()
	writeFile(t, filepath.Join(dir, "new", "1600000000.P1Q1.mx"), "external\n")
	return store.MessageInfo{UID: "1600000000.P1Q1.mx", Size: wireSizeOf("external\n")}
}

func TestSnapshotIndexRestart(t *testing.T) {
	for _, bare := range []bool{false, true} {
		s, dir, want := indexedStore(t, indexMin, bare)
		if len(want) != indexMin {
			t.Fatalf("%d messages listed, want %d", len(want), indexMin)
		}
		if !fileExists(filepath.Join(dir, indexName)) {
			t.Fatalf("no %s after a trusted login to %d messages", indexName, indexMin)
		}
		// After a restart, the first login gets the same snapshot.
		r, _ := restart(t, s, nil)
		if got := login(t, r); !slices.Equal(got, want) {
			t.Fatalf("bare %v: after a restart: %d messages, want %d (first differences %v)", bare, len(got), len(want), firstDiff(got, want))
		}
		// From the index, not the directories: with the stamps frozen,
		// a message added meanwhile stays unseen...
		frozen := frozenStamps(t, dir)
		added := addExternally(t, dir)
		r, _ = restart(t, s, frozen)
		if got := login(t, r); !slices.Equal(got, want) {
			t.Fatalf("bare %v: the index was not used: %d messages, want %d", bare, len(got), len(want))
		}
		// ...and with the real stamps, it is listed (first: oldest).
		r, _ = restart(t, s, nil)
		if got, want := login(t, r), append([]store.MessageInfo{added}, want...); !slices.Equal(got, want) {
			t.Fatalf("bare %v: after an external delivery: %d messages, want %d", bare, len(got), len(want))
		}
		// Each of those logins kept the messages of the directories.
		md := mustOpen(t, r, "alice")
		if got, err := readMsg(t, md, 1); err != nil || got != "012345678\n" {
			t.Fatalf("bare %v: message 2 = %q, %v", bare, got, err)
		}
		md.Close()
	}
}

// firstDiff returns the first few positions where a and b differ.
func firstDiff(a, b []store.MessageInfo) []int {
	var d []int
	for i := 0; i < max(len(a), len(b)) && len(d) < 3; i++ {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			d = append(d, i)
		}
	}
	return d
}

// TestSnapshotIndexNotWritten: no index for a maildrop smaller than
// indexMin, nor for a snapshot read too soon after the directories changed
// to be trusted.
func TestSnapshotIndexNotWritten(t *testing.T) {
	_, dir, _ := indexedStore(t, indexMin-1, false)
	if fileExists(filepath.Join(dir, indexName)) {
		t.Fatalf("%s written for %d messages", indexName, indexMin-1)
	}

	s, _ := newTestStore(t, "h")
	dir, _ = s.Path("alice")
	if err := ensure(dir); err != nil {
		t.Fatal(err)
	}
	makeMaildir(t, dir, indexMin, false)
	login(t, s) // the real clock: the directories have just changed
	if fileExists(filepath.Join(dir, indexName)) {
		t.Fatalf("%s written from directories changed just now", indexName)
	}
}

// TestSnapshotIndexClockBack: an index read at a time the clock has not
// reached (set back since) is not used.
func TestSnapshotIndexClockBack(t *testing.T) {
	s, dir, want := indexedStore(t, indexMin, false)
	frozen := frozenStamps(t, dir)
	added := addExternally(t, dir)
	r, _ := restart(t, s, frozen)
	r.now = time.Now // an hour behind the clock that wrote the index
	if got, want := login(t, r), append([]store.MessageInfo{added}, want...); !slices.Equal(got, want) {
		t.Fatalf("an index from the future was used: %d messages, want %d", len(got), len(want))
	}
}

// TestSnapshotIndexDamaged: a damaged index is ignored, with a warning,
// and replaced; the login reads the directories.
func TestSnapshotIndexDamaged(t *testing.T) {
	s, dir, want := indexedStore(t, indexMin, false)
	path := filepath.Join(dir, indexName)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mid := len(good) / 2
	flipped := slices.Clone(good)
	flipped[mid] ^= 0x01
	// A size changed in a line: still parses, caught by the checksum.
	resized := bytes.Replace(good, []byte("\nn 11 10 "), []byte("\nn 12 10 "), 1)
	if bytes.Equal(resized, good) {
		t.Fatal("no line to change")
	}
	for _, tt := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only", []byte(indexHeader)},
		{"truncated", good[:mid]},
		{"no last line end", good[:len(good)-1]},
		{"a bit flipped", flipped},
		{"a size changed", resized},
		{"other version", append([]byte("postie-index 2\n"), good[len(indexHeader):]...)},
		{"garbage", bytes.Repeat([]byte{0xff, '\n', 0}, 1000)},
	} {
		if err := os.WriteFile(path, tt.data, 0o600); err != nil {
			t.Fatal(err)
		}
		// Frozen stamps: only the index's own checks stand between
		// the damage and the session.
		r, logs := restart(t, s, frozenStamps(t, dir))
		if got := login(t, r); !slices.Equal(got, want) {
			t.Fatalf("%s: %d messages listed, want %d (first differences %v)", tt.name, len(got), len(want), firstDiff(got, want))
		}
		if !strings.Contains(logs.String(), "ignoring the snapshot index") {
			t.Errorf("%s: no warning logged:\n%s", tt.name, logs)
		}
		// Rewritten: the same but for the time of reading (and its
		// checksum).
		now, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(messageLines(now), messageLines(good)) {
			t.Fatalf("%s: the index was not rewritten: %v", tt.name, err)
		}
		st := frozenStampsOf(t, dir)
		if snap, err := loadIndex(mustMdir(t, dir), st[0], st[1], time.Now().Add(time.Hour).UnixNano(), int64(snapMargin)); snap == nil || err != nil {
			t.Fatalf("%s: the rewritten index is not usable: %v", tt.name, err)
		}
	}
}

// TestSnapshotIndexResize: a message whose file another program rewrote
// with a different size changes neither new/ nor cur/; when a session finds
// out, the size is corrected (in the name, or in postie-sizes) and the
// index must go, or the next login would list the old size again.
func TestSnapshotIndexResize(t *testing.T) {
	for _, bare := range []bool{false, true} {
		s, dir, want := indexedStore(t, indexMin, bare)
		// The newest message: its file, where a login found it.
		md := mustOpen(t, s, "alice")
		last := len(want) - 1
		p := md.(*maildrop).where(md.(*maildrop).pos[last])
		path := filepath.Join(dir, p.sub, p.name)
		writeFile(t, path, "rewritten, longer\n")
		r, err := md.Open(t.Context(), last)
		if err == nil {
			io.Copy(io.Discard, r)
			r.Close()
		}
		md.Close()
		if fileExists(filepath.Join(dir, indexName)) {
			t.Fatalf("bare %v: the index outlived a size correction", bare)
		}
		r2, _ := restart(t, s, nil)
		got := login(t, r2)
		want[last].Size = wireSizeOf("rewritten, longer\n")
		if !slices.Equal(got, want) {
			t.Fatalf("bare %v: after the correction: differences at %v: %v", bare, firstDiff(got, want), got[last])
		}
	}
}

// messageLines returns the message lines of an index.
func messageLines(index []byte) []byte {
	_, rest, _ := bytes.Cut(index, []byte{'\n'})
	_, rest, _ = bytes.Cut(rest, []byte{'\n'})
	if i := bytes.LastIndex(rest, []byte("end ")); i >= 0 {
		rest = rest[:i]
	}
	return rest
}

// frozenStampsOf returns the stamps of new/ and cur/ of dir.
func frozenStampsOf(t testing.TB, dir string) [2]dirStamp {
	t.Helper()
	var st [2]dirStamp
	for i, sub := range []string{dirNew, dirCur} {
		var err error
		if st[i], err = statDir(filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// TestSnapshotIndexUnusable: an index that cannot be read, replaced or
// written (a directory or a symbolic link in its place, its temporary
// file's name taken by a directory) costs a warning, never the login.
func TestSnapshotIndexUnusable(t *testing.T) {
	s, dir, want := indexedStore(t, indexMin, false)
	path := filepath.Join(dir, indexName)
	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secret, indexHeader+"not for sessions\n")
	for _, tt := range []struct {
		name  string
		setup func()
		warn  string
	}{
		{"a directory in its place", func() {
			os.Remove(path)
			writeFile(t, filepath.Join(path, "x"), "x")
		}, "cannot remove the snapshot index"},
		{"a symbolic link in its place", func() {
			os.RemoveAll(path)
			if err := os.Symlink(secret, path); err != nil {
				t.Fatal(err)
			}
		}, "ignoring the snapshot index"},
		{"its temporary name taken", func() {
			os.RemoveAll(path)
			writeFile(t, filepath.Join(path+".tmp", "x"), "x")
		}, "cannot save the snapshot index"},
	} {
		tt.setup()
		r, logs := restart(t, s, nil)
		if got := login(t, r); !slices.Equal(got, want) {
			t.Fatalf("%s: %d messages listed, want %d", tt.name, len(got), len(want))
		}
		if !strings.Contains(logs.String(), tt.warn) {
			t.Errorf("%s: no %q in the log:\n%s", tt.name, tt.warn, logs)
		}
		if b, err := os.ReadFile(secret); err != nil || string(b) != indexHeader+"not for sessions\n" {
			t.Fatalf("%s: the link's target changed: %q, %v", tt.name, b, err)
		}
		os.RemoveAll(path)
		os.RemoveAll(path + ".tmp")
	}
}

// forgeIndex writes an index of the given message lines for the Maildir
// dir as it is now, trusted by a clock an hour ahead, with a right
// checksum: what a user who can write to their Maildir could make.
func forgeIndex(t testing.TB, dir string, lines string) {
	t.Helper()
	st := frozenStampsOf(t, dir)
	began := time.Now().Add(30 * time.Minute).UnixNano()
	b := []byte(indexHeader)
	b = append(b, indexStamps(st[0], st[1], began, strings.Count(lines, "\n"))...)
	b = append(b, lines...)
	b = append(b, "end "...)
	b = appendHex32(b, crc32.Checksum(b[:len(b)-len("end ")], castagnoli))
	b = append(b, '\n')
	if err := os.WriteFile(filepath.Join(dir, indexName), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotIndexForged: an index with a right checksum and the right
// stamps, but listing what no directory read could give (a name leading
// out of the Maildir, a UID twice, names out of order) is refused, and
// the directories read instead. A well-formed forged one is used: that is
// the control showing that the checks, not the checksum, refused the
// others.
func TestSnapshotIndexForged(t *testing.T) {
	s, _ := newTestStore(t, "h")
	s.now = func() time.Time { return time.Now().Add(time.Hour) }
	dir, _ := s.Path("alice")
	if err := ensure(dir); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "new", "1700000000.A.host,S=4,W=5"), "abc\n")
	writeFile(t, filepath.Join(t.TempDir(), "secret"), "not yours\n")
	real := []store.MessageInfo{{UID: "1700000000.A.host", Size: 5}}
	for _, tt := range []struct {
		name, lines string
		want        []store.MessageInfo
	}{
		{"well formed", "n 5 4 1700000000.A.host,S=4,W=5\nn 9 9 1700000001.B.host\n",
			[]store.MessageInfo{{UID: "1700000000.A.host", Size: 5}, {UID: "1700000001.B.host", Size: 9}}},
		{"a name leading out", "n 11 10 ../../../../../../../../tmp/secret\n", real},
		{"a slash inside", "c 11 10 1700000001.B/x\n", real},
		{"a dot-file", "n 11 10 .hidden\n", real},
		{"a UID twice", "n 5 4 1700000000.A.host,S=4,W=5\nc 5 4 1700000000.A.host,S=4,W=5:2,S\n", real},
		{"out of order", "n 9 9 1700000001.B.host\nn 5 4 1700000000.A.host,S=4,W=5\n", real},
		{"a control octet", "n 5 4 1700000000.A\x01host\n", real},
		{"a negative size", "n -5 4 1700000000.A.host\n", real},
		{"a count that lies", "n 5 4 1700000000.A.host,S=4,W=5\n\n", real},
	} {
		forgeIndex(t, dir, tt.lines)
		r, _ := restart(t, s, nil)
		if got := login(t, r); !slices.Equal(got, tt.want) {
			t.Errorf("%s: listed %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzLoadIndex feeds loadIndex message lines under a right header and
// checksum: it must not panic, and what it accepts must be what a
// directory read could give.
func FuzzLoadIndex(f *testing.F) {
	f.Add("n 5 4 1700000000.A.host,S=4,W=5\nc 9 9 1700000001.B.host:2,S\n")
	f.Add("n 11 10 ../x\n")
	f.Add("c 1 -1 1.a\nc 1 -1 1.a\n")
	f.Add("")
	dir := f.TempDir()
	if err := ensure(dir); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, lines string) {
		forgeIndex(t, dir, lines)
		st := frozenStampsOf(t, dir)
		snap, err := loadIndex(mustMdir(t, dir), st[0], st[1], time.Now().Add(time.Hour).UnixNano(), int64(snapMargin))
		if snap == nil {
			if err == nil {
				t.Fatalf("%q: neither a snapshot nor an error", lines)
			}
			return
		}
		if len(snap.pos) != len(snap.infos) || len(snap.files) != len(snap.infos) {
			t.Fatalf("%q: %d files, %d positions, %d infos", lines, len(snap.files), len(snap.pos), len(snap.infos))
		}
		uids := map[string]bool{}
		for i, k := range snap.pos {
			m := snap.files[k]
			if strings.ContainsAny(m.name, "/\x00") || m.name[0] == '.' || m.sub != dirNew && m.sub != dirCur {
				t.Fatalf("%q: accepted %s/%q", lines, m.sub, m.name)
			}
			if uids[snap.infos[i].UID] || snap.infos[i].Size < 0 {
				t.Fatalf("%q: accepted %+v", lines, snap.infos[i])
			}
			uids[snap.infos[i].UID] = true
		}
	})
}
