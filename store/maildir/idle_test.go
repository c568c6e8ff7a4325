//go:build linux

package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

// openDescriptors returns what the process's descriptors refer to, by
// descriptor, from /proc/self/fd.
func openDescriptors(t *testing.T) map[int]string {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	fds := map[int]string{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// The descriptor ReadDir used is closed by now: it reads as
		// gone, and is left out.
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil {
			fds[fd] = target
		}
	}
	return fds
}

// newDescriptors returns the targets of the descriptors open now that were
// not in before (or were, to something else), sorted.
func newDescriptors(t *testing.T, before map[int]string) []string {
	t.Helper()
	var added []string
	for fd, target := range openDescriptors(t) {
		if before[fd] != target {
			added = append(added, target)
		}
	}
	slices.Sort(added)
	return added
}

// TestIdleDescriptors: an open maildrop holds one descriptor between
// calls, its lock file's: not the Maildir's nor its folders' (10,000 idle
// sessions would otherwise need 60,000 with their sockets), after Open,
// after a RETR and after a message whose listed size was wrong. postie at
// 3b4195d held the Maildir, new/, cur/ and tmp/ open as well.
func TestIdleDescriptors(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	mustDeliver(t, s, "alice", "one\n")
	writeFile(t, filepath.Join(dir, dirCur, "1700000000.M1P1.host,S=4,W=9:2,S"), "two\n") // W= wrong: resized when read
	// Another user's session first, so that what the runtime opens once
	// (its poller) is open before the count.
	mustDeliver(t, s, "bob", "warm\n")
	warm := mustOpen(t, s, "bob")
	if _, err := readMsg(t, warm, 0); err != nil {
		t.Fatal(err)
	}
	warm.Close()

	before := openDescriptors(t)
	lock := []string{filepath.Join(dir, lockName)}
	md := mustOpen(t, s, "alice")
	defer md.Close()
	if got := newDescriptors(t, before); !slices.Equal(got, lock) {
		t.Errorf("after Open: %q open; want the lock file's only", got)
	}
	if n := len(md.Messages()); n != 2 {
		t.Fatalf("%d messages; want 2", n)
	}
	for i := range 2 {
		r, err := md.Open(t.Context(), i)
		if err != nil {
			t.Fatalf("Open(%d): %v", i, err)
		}
		buf := make([]byte, 64)
		for err == nil {
			_, err = r.Read(buf)
		}
		r.Close()
		if got := newDescriptors(t, before); !slices.Equal(got, lock) {
			t.Errorf("after RETR %d: %q open; want the lock file's only", i+1, got)
		}
	}
	if err := md.Commit(t.Context(), []int{0}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := newDescriptors(t, before); !slices.Equal(got, lock) {
		t.Errorf("after Commit: %q open; want the lock file's only", got)
	}
	md.Close()
	if got := newDescriptors(t, before); len(got) != 0 {
		t.Errorf("after Close: %q open; want none", got)
	}
	if n := len(mustReadDir(t, filepath.Join(dir, dirNew))) + len(mustReadDir(t, filepath.Join(dir, dirCur))); n != 1 {
		t.Errorf("%d messages left; want 1", n)
	}
}

func mustReadDir(t *testing.T, dir string) []os.DirEntry {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return ents
}

// TestMaildropReplacedDuringSession: the Maildir moved away during a
// session and another put in its place, a directory holding a message of
// the same name or a symbolic link to one: the session, which reopens the
// Maildir by its path for each call, reads and removes nothing there (the
// directory is not the one it locked, the link is not followed), says why,
// and the messages of both stay.
func TestMaildropReplacedDuringSession(t *testing.T) {
	for _, link := range []bool{false, true} {
		t.Run(map[bool]string{false: "directory", true: "symlink"}[link], func(t *testing.T) {
			s, _ := newTestStore(t, "h")
			dir, _ := s.Path("alice")
			const name = "1700000000.M1P1.host,S=6,W=7"
			writeFile(t, filepath.Join(dir, dirNew, name), "hello\n")
			md := mustOpen(t, s, "alice")
			defer md.Close()
			other := filepath.Join(t.TempDir(), "other")
			writeFile(t, filepath.Join(other, dirNew, name), "OTHER\n")
			if err := os.MkdirAll(filepath.Join(other, dirCur), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(dir, dir+".away"); err != nil {
				t.Fatal(err)
			}
			want := errReplaced
			if link {
				symlink(t, other, dir)
				want = errUnsafe
			} else if err := os.Rename(other, dir); err != nil {
				t.Fatal(err)
			} else {
				other = dir
			}
			if got, err := readMsg(t, md, 0); !errors.Is(err, want) {
				t.Errorf("Open(0) = %q, %v; want an error wrapping %v", got, err, want)
			}
			if err := md.Commit(t.Context(), []int{0}); !errors.Is(err, want) {
				t.Errorf("Commit: %v; want an error wrapping %v", err, want)
			}
			for _, p := range []string{filepath.Join(other, dirNew, name), filepath.Join(dir+".away", dirNew, name)} {
				if !fileExists(p) {
					t.Errorf("%s removed", p)
				}
			}
		})
	}
}
