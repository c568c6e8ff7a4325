// Package fsutil owns the durable file operations postie's packages share:
// making a directory's entries durable (SyncDir) and replacing a small file
// whole (WriteFileAtomic). It imports only the standard library.
package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// SyncDir makes the entries of directory dir durable: fsync(2) on the
// directory, as a rename or a new file needs before it can be relied on.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// WriteOptions are the properties of the file WriteFileAtomic makes.
type WriteOptions struct {
	// Perm is the mode of the new file (0600 when zero).
	Perm fs.FileMode
	// KeepOwner gives the new file the owner and group of the file it
	// replaces, so that a command run as root does not leave a server
	// running as its own user unable to read the file. Only root may give
	// a file away: anyone else replacing a file of another owner gets the
	// error of chown(2). Ignored where files have no numeric owners.
	KeepOwner bool
	// KeepPerm, when not zero, gives the new file the permission bits of
	// the file it replaces that are in KeepPerm (Perm when there is none):
	// with 0660, a file root:postie 0640 that a server reads through its
	// group stays so, and bits for other users are never carried over.
	KeepPerm fs.FileMode
}

// WriteFileAtomic replaces path with data: a temporary file in the same
// directory (".<name>.tmp…"), fsync, rename over path, fsync of the
// directory. A crash leaves either the old file or the new one, never a
// mix, and no error leaves the temporary file behind. An error after the
// rename (the directory's fsync) means the new file may or may not survive
// a crash. Errors are those of the os package, naming the file.
func WriteFileAtomic(path string, data []byte, opts WriteOptions) error {
	perm := opts.Perm
	if perm == 0 {
		perm = 0o600
	}
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return err
	}
	err = fill(tmp, path, data, perm, opts)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return SyncDir(dir)
}

// fill gives tmp its mode, owner and contents, and makes them durable.
func fill(tmp *os.File, path string, data []byte, perm fs.FileMode, opts WriteOptions) error {
	var old fs.FileInfo
	if opts.KeepOwner || opts.KeepPerm != 0 {
		fi, err := os.Stat(path)
		switch {
		case err == nil:
			old = fi
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
	}
	if old != nil && opts.KeepPerm != 0 {
		perm = old.Mode().Perm() & opts.KeepPerm
	}
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if old != nil && opts.KeepOwner {
		if err := chownLike(tmp, old); err != nil {
			return err
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	return tmp.Sync()
}
