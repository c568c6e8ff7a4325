package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// names lists dir's entries.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, tc := range []struct {
		data string
		opts WriteOptions
		mode fs.FileMode
	}{
		{"first\n", WriteOptions{}, 0o600},                      // a new file, the default mode
		{"second, longer\n", WriteOptions{Perm: 0o640}, 0o640},  // replaced, mode given
		{"", WriteOptions{Perm: 0o600, KeepOwner: true}, 0o600}, // replaced by nothing, our own file
	} {
		if err := WriteFileAtomic(path, []byte(tc.data), tc.opts); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != tc.data {
			t.Errorf("after writing %q: %q, %v", tc.data, got, err)
		}
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != tc.mode {
			t.Errorf("after writing %q: mode %v, %v; want %v", tc.data, fi.Mode().Perm(), err, tc.mode)
		}
		if n := names(t, dir); len(n) != 1 || n[0] != "state" {
			t.Errorf("after writing %q the directory holds %q, want only state", tc.data, n)
		}
	}
}

// A failed write leaves the old file and no temporary file.
func TestWriteFileAtomicFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "passwd")
	if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The rename fails: path's name is taken by a directory that is not empty.
	blocked := filepath.Join(dir, "blocked")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(blocked, []byte("new\n"), WriteOptions{}); err == nil {
		t.Fatal("rename over a directory succeeded")
	}
	if n := names(t, dir); len(n) != 2 || n[0] != "blocked" || n[1] != "passwd" {
		t.Errorf("after a failed rename the directory holds %q", n)
	}
	// No such directory: the error names the path tried.
	err := WriteFileAtomic(filepath.Join(dir, "missing", "f"), []byte("x"), WriteOptions{})
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write into a missing directory: %v, want ErrNotExist", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old\n" {
		t.Errorf("the untouched file now holds %q", got)
	}
}

func TestSyncDir(t *testing.T) {
	if err := SyncDir(t.TempDir()); err != nil {
		t.Errorf("SyncDir: %v", err)
	}
	if err := SyncDir(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SyncDir of a missing directory: %v, want ErrNotExist", err)
	}
}
