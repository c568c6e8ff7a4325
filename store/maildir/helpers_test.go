package maildir

import (
	"errors"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// statDir returns the stamp of the directory at path.
func statDir(path string) (dirStamp, error) { return statDirAt(unix.AT_FDCWD, path) }

// fileExists reports whether path exists (as far as lstat(2) can tell).
func fileExists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, os.ErrNotExist)
}

// mustMdir opens the Maildir dir for the length of the test.
func mustMdir(t testing.TB, dir string) *mdir {
	t.Helper()
	d, err := openMdir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}
