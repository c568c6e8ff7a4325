package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// fileMode is the mode of the passwd-file postie writes: it holds hashes
// (or worse) and is read only by the server.
const fileMode = 0o600

// writeAtomic replaces path with data: a temporary file in the same
// directory, fsync, rename over path, fsync of the directory. A crash
// leaves either the old file or the new one, never a mix.
func writeAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("auth: %w", err)
	}
	renamed := false
	defer func() {
		if err != nil {
			if !renamed {
				tmp.Close()
				os.Remove(tmp.Name())
			}
			err = fmt.Errorf("auth: write %s: %w", path, err)
		}
	}()
	if err = tmp.Chmod(fileMode); err != nil {
		return err
	}
	if old, statErr := os.Stat(path); statErr == nil {
		if err = keepOwner(tmp, old); err != nil {
			return err
		}
	} else if !errors.Is(statErr, fs.ErrNotExist) {
		return statErr
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	renamed = true
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
