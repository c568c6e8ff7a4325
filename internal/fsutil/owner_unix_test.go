//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package fsutil

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// KeepOwner gives the new file the owner of the old one (root only: only
// root may give a file away); without it, the new file is the process's.
func TestWriteFileAtomicKeepOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root may give a file away")
	}
	owner := func(path string) (uid, gid uint32) {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return st.Uid, st.Gid
	}
	path := filepath.Join(t.TempDir(), "passwd")
	for _, keep := range []bool{true, false} {
		if err := os.WriteFile(path, []byte("old\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, 4321, 8765); err != nil {
			t.Fatal(err)
		}
		if err := WriteFileAtomic(path, []byte("new\n"), WriteOptions{KeepOwner: keep}); err != nil {
			t.Fatal(err)
		}
		uid, gid := owner(path)
		want := [2]uint32{4321, 8765}
		if !keep {
			want = [2]uint32{uint32(os.Geteuid()), uint32(os.Getegid())}
		}
		if [2]uint32{uid, gid} != want {
			t.Errorf("KeepOwner %v: owner %d:%d, want %d:%d", keep, uid, gid, want[0], want[1])
		}
	}
}
