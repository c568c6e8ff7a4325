package maildir

// Maildirs their users made hostile (issue 13, finding 1), over the real
// store. The POP3 side is in hostile_pop3_test.go.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

// symlink makes path a symbolic link to target, replacing what was there.
func symlink(t *testing.T, target, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

// heapGuard stops the test binary, rather than the machine, when the heap
// passes limit octets: a store that reads /dev/zero to its end would
// otherwise take all the memory there is. It checks the heap every
// millisecond until the test ends.
func heapGuard(t *testing.T, limit uint64) {
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	name := t.Name()
	go func() {
		defer close(done)
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > limit {
				panic(fmt.Sprintf("%s: the heap passed %d octets: a file was read without bound", name, limit))
			}
		}
	}()
}

// allocated returns the octets allocated so far by the process.
func allocated() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestFolderSymlinksRefused: a Maildir whose new/ or cur/ is a symbolic
// link (to /etc, say) is refused at login, with an error that says so; no
// file of the other directory is listed. Usage refuses it as well. postie
// at 05cd549 listed the other directory's files as messages.
func TestFolderSymlinksRefused(t *testing.T) {
	for _, sub := range []string{dirNew, dirCur} {
		t.Run(sub, func(t *testing.T) {
			s, _ := newTestStore(t, "h")
			mustDeliver(t, s, "alice", "x\n")
			dir, _ := s.Path("alice")
			outside := t.TempDir()
			writeFile(t, filepath.Join(outside, "shadow"), "root:SECRET\n")
			if sub == dirNew {
				// Keep the message: only the link is hostile.
				if err := os.Rename(filepath.Join(dir, dirNew), filepath.Join(dir, "new.real")); err != nil {
					t.Fatal(err)
				}
			}
			symlink(t, outside, filepath.Join(dir, sub))
			md, err := s.Open(t.Context(), "alice")
			if err == nil {
				got := infos(md)
				md.Close()
				t.Fatalf("Open with %s/ a symbolic link listed %v", sub, got)
			}
			if !errors.Is(err, errUnsafe) || !strings.Contains(err.Error(), "symbolic link") {
				t.Errorf("Open: %v; want an error wrapping errUnsafe that names the symbolic link", err)
			}
			if n, _, err := s.Usage(t.Context(), "alice"); !errors.Is(err, errUnsafe) {
				t.Errorf("Usage = %d, %v; want an error wrapping errUnsafe", n, err)
			}
			// The lock went with the refusal: the owner's repair is
			// enough.
			if err := os.Remove(filepath.Join(dir, sub)); err != nil {
				t.Fatal(err)
			}
			if sub == dirNew {
				if err := os.Rename(filepath.Join(dir, "new.real"), filepath.Join(dir, dirNew)); err != nil {
					t.Fatal(err)
				}
			}
			md = mustOpen(t, s, "alice")
			defer md.Close()
			if n := len(md.Messages()); n != 1 {
				t.Errorf("after the repair: %d messages, want 1", n)
			}
		})
	}
}

// TestMaildropSymlinkRefused: a user directory under Root that is a
// symbolic link is refused by Open, Deliver and Usage, and nothing is
// written where it points. Root itself may be one (the administrator's
// choice).
func TestMaildropSymlinkRefused(t *testing.T) {
	real := t.TempDir()
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Root: link, Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	mustDeliver(t, s, "alice", "x\n") // through the root's link: fine
	md := mustOpen(t, s, "alice")
	if n := len(md.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	md.Close()

	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(real, "bob")); err != nil {
		t.Fatal(err)
	}
	if md, err := s.Open(t.Context(), "bob"); !errors.Is(err, errUnsafe) {
		if err == nil {
			md.Close()
		}
		t.Errorf("Open of a maildrop that is a symbolic link: %v; want errUnsafe", err)
	}
	if _, err := s.Deliver(t.Context(), "bob", strings.NewReader("x\n")); !errors.Is(err, errUnsafe) {
		t.Errorf("Deliver to a maildrop that is a symbolic link: %v; want errUnsafe", err)
	}
	if _, _, err := s.Usage(t.Context(), "bob"); !errors.Is(err, errUnsafe) {
		t.Errorf("Usage of a maildrop that is a symbolic link: %v; want errUnsafe", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("written through the link: %v", ents)
	}
}

// TestFolderSwappedDuringSession: cur/ replaced by a symbolic link to
// another directory during a session, with a file of the message's name
// and size there. An idle session holds no descriptor of its folders
// (TestIdleDescriptors), so Open(i) and Commit reopen cur/, never through
// the link: Open(0) fails saying why, Commit removes nothing there and
// reports it, the other file is untouched and the message is still in the
// folder renamed away; the message in new/ is removed. postie at 05cd549
// read and removed the other file.
func TestFolderSwappedDuringSession(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	const name = "1700000000.M1P1.host,S=6,W=7:2,S"
	writeFile(t, filepath.Join(dir, dirCur, name), "hello\n")
	writeFile(t, filepath.Join(dir, dirNew, "1700000001.M2P1.host,S=6,W=7"), "other\n")
	md := mustOpen(t, s, "alice")
	defer md.Close()
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, name), "OTHER\n")
	if err := os.Rename(filepath.Join(dir, dirCur), filepath.Join(dir, "cur.real")); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(dir, dirCur))
	if got, err := readMsg(t, md, 0); !errors.Is(err, errUnsafe) {
		t.Errorf("Open(0) = %q, %v; want an error wrapping errUnsafe", got, err)
	}
	if err := md.Commit(t.Context(), []int{0, 1}); !errors.Is(err, errUnsafe) {
		t.Errorf("Commit: %v; want an error wrapping errUnsafe", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, name)); err != nil || string(b) != "OTHER\n" {
		t.Errorf("Commit removed or changed the file outside: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "cur.real", name)); err != nil || string(b) != "hello\n" {
		t.Errorf("the message is lost: %q, %v", b, err)
	}
	if ents, err := os.ReadDir(filepath.Join(dir, dirNew)); err != nil || len(ents) != 0 {
		t.Errorf("new/ after Commit: %v, %v; want the message removed", ents, err)
	}
}

// TestTmpSymlinkNotCleaned: with tmp/ a symbolic link to another
// directory, the tmp/ cleanup of Open and Deliver removes nothing there,
// however old its files, and says why; a delivery is refused (nothing is
// written there either). postie at 05cd549 removed that directory's old
// files.
func TestTmpSymlinkNotCleaned(t *testing.T) {
	s, logs := newTestStore(t, "h")
	mustDeliver(t, s, "alice", "x\n")
	dir, _ := s.Path("alice")
	outside := t.TempDir()
	old := filepath.Join(outside, "precious")
	writeFile(t, old, "kept\n")
	then := time.Now().Add(-100 * time.Hour)
	if err := os.Chtimes(old, then, then); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(dir, dirTmp))
	// The next cleanup is due: pretend the last was long ago.
	s.cleanMu.Lock()
	clear(s.cleaned)
	s.cleanMu.Unlock()
	md := mustOpen(t, s, "alice")
	if n := len(md.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
	md.Close()
	s.cleanMu.Lock()
	clear(s.cleaned)
	s.cleanMu.Unlock()
	if _, err := s.Deliver(t.Context(), "alice", strings.NewReader("y\n")); !errors.Is(err, errUnsafe) {
		t.Errorf("Deliver with tmp/ a symbolic link: %v; want errUnsafe", err)
	}
	if b, err := os.ReadFile(old); err != nil || string(b) != "kept\n" {
		t.Errorf("the old file where tmp/ points: %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("files where tmp/ points: %v; want precious only", ents)
	}
	if !strings.Contains(logs.String(), "cannot clean tmp/") || !strings.Contains(logs.String(), "symbolic link") {
		t.Errorf("not logged:\n%s", logs)
	}
}

// TestNewSymlinkNoDelivery: with new/ a symbolic link to another
// directory, a delivery fails (the sender keeps the message and retries)
// and writes nothing there, and leaves nothing in tmp/. postie at 05cd549
// delivered into that directory.
func TestNewSymlinkNoDelivery(t *testing.T) {
	s, _ := newTestStore(t, "h")
	mustDeliver(t, s, "alice", "x\n")
	dir, _ := s.Path("alice")
	outside := t.TempDir()
	symlink(t, outside, filepath.Join(dir, dirNew))
	if _, err := s.Deliver(t.Context(), "alice", strings.NewReader("y\n")); !errors.Is(err, errUnsafe) {
		t.Errorf("Deliver with new/ a symbolic link: %v; want errUnsafe", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("delivered through the link: %v", ents)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, dirTmp)); len(ents) != 0 {
		t.Errorf("left in tmp/: %v", ents)
	}
}

// TestStateFilesBounded: postie-sizes, postie-update and postie-index as
// symbolic links to /dev/zero, or as big sparse files, cost a login (and
// Usage) no more memory than a few MiB: a link is not followed, and no
// state file is read beyond what the maildrop could need. The messages
// are listed with their true sizes, and the next login is as usual.
// postie at 05cd549 read /dev/zero until the memory ran out (here the
// heap guard stops the test binary first).
func TestStateFilesBounded(t *testing.T) {
	if _, err := os.Stat("/dev/zero"); err != nil {
		t.Skip(err)
	}
	const limit = 16 << 20
	heapGuard(t, 256<<20)
	for _, file := range []string{cacheName, journalName, indexName} {
		for _, kind := range []string{"zero", "sparse"} {
			t.Run(file+"/"+kind, func(t *testing.T) {
				s, logs := newTestStore(t, "h")
				dir, _ := s.Path("alice")
				mustDeliver(t, s, "alice", "x\n")
				// No W=: postie-sizes is read.
				writeFile(t, filepath.Join(dir, dirNew, "1700000000.M1P1.mx"), "yy\n")
				path := filepath.Join(dir, file)
				if kind == "zero" {
					symlink(t, "/dev/zero", path)
				} else {
					head := map[string]string{cacheName: cacheHeader, journalName: journalHeader, indexName: strings.TrimSuffix(indexHeader, "\n")}[file]
					writeFile(t, path, head+"\n")
					if err := os.Truncate(path, 600<<20); err != nil {
						t.Fatal(err)
					}
				}
				before := allocated()
				md, err := s.Open(t.Context(), "alice")
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				got := infos(md)
				md.Close()
				if n, b, err := s.Usage(t.Context(), "alice"); err != nil || n != 2 || b != 5 {
					t.Errorf("Usage = %d, %d, %v; want 2, 5", n, b, err)
				}
				if a := allocated() - before; a > limit {
					t.Errorf("Open and Usage allocated %d octets, bound %d", a, limit)
				}
				want := []store.MessageInfo{{UID: "1700000000.M1P1.mx", Size: 4}, got[1]}
				if len(got) != 2 || got[0] != want[0] || got[1].Size != 3 {
					t.Errorf("snapshot %v, want %v and a message of 3 octets", got, want[0])
				}
				if !strings.Contains(logs.String(), "ignoring") {
					t.Errorf("not logged:\n%s", logs)
				}
				md = mustOpen(t, s, "alice")
				if n := len(md.Messages()); n != 2 {
					t.Errorf("next login: %d messages, want 2", n)
				}
				md.Close()
			})
		}
	}
}

// TestStateFileSymlinkNotFollowed: postie-sizes as a symbolic link to a
// well-formed file elsewhere is not believed (its sizes would be listed)
// and is replaced by a file of postie's own, the other file unchanged.
func TestStateFileSymlinkNotFollowed(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	writeFile(t, filepath.Join(dir, dirNew, "1700000000.M1P1.mx"), "yy\n")
	forged := filepath.Join(t.TempDir(), "sizes")
	content := cacheHeader + "\n1700000000.M1P1.mx 999 3\n"
	writeFile(t, forged, content)
	symlink(t, forged, filepath.Join(dir, cacheName))
	md := mustOpen(t, s, "alice")
	got := infos(md)
	md.Close()
	if len(got) != 1 || got[0].Size != 4 {
		t.Errorf("snapshot %v: the linked size file was believed", got)
	}
	if b, _ := os.ReadFile(forged); string(b) != content {
		t.Errorf("the linked file was changed: %q", b)
	}
	if fi, err := os.Lstat(filepath.Join(dir, cacheName)); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("postie-sizes not replaced by a regular file: %v, %v", fi, err)
	}
}

// TestFolderSwappedCachedSession: as TestFolderSwappedDuringSession, for a
// session whose snapshot came from the cache, which opens its folders
// only when it first needs one (RETR, DELE): the folder that is now a
// symbolic link is refused then, so the file outside is neither read nor
// removed, and the message stays for the next session.
func TestFolderSwappedCachedSession(t *testing.T) {
	s, dir := trustingStore(t)
	cachedLogin(t, s)
	h := hits(s)
	md := mustOpen(t, s, "alice")
	defer md.Close()
	if hits(s) != h+1 {
		t.Fatal("the login did not use the snapshot cache")
	}
	name := names(t, filepath.Join(dir, dirNew))[0]
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, name), "ONE\n") // same size as "one\n"
	if err := os.Rename(filepath.Join(dir, dirNew), filepath.Join(dir, "new.real")); err != nil {
		t.Fatal(err)
	}
	symlink(t, outside, filepath.Join(dir, dirNew))
	if got, err := readMsg(t, md, 0); err == nil || !errors.Is(err, errUnsafe) {
		t.Errorf("Open(0) = %q, %v; want an error wrapping errUnsafe", got, err)
	}
	if err := md.Commit(t.Context(), []int{0}); !errors.Is(err, errUnsafe) {
		t.Errorf("Commit: %v; want an error wrapping errUnsafe", err)
	}
	if b, err := os.ReadFile(filepath.Join(outside, name)); err != nil || string(b) != "ONE\n" {
		t.Errorf("the file outside: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "new.real", name)); err != nil || string(b) != "one\n" {
		t.Errorf("the message: %q, %v", b, err)
	}
}
