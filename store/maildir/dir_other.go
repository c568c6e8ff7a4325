//go:build !linux

package maildir

import (
	"errors"
	"os"
)

// readDirFD calls fn for every entry of the open directory fd, with its
// name and whether it is a regular file (without following a symbolic
// link).
func readDirFD(fd int, fn func(name []byte, regular bool)) error {
	// A descriptor of its own, read from the start, for os.File to own.
	dfd, err := openat(fd, ".", dirFlags, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: ".", Err: err}
	}
	d := os.NewFile(uintptr(dfd), ".")
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return err
	}
	for _, e := range ents {
		fn([]byte(e.Name()), e.Type().IsRegular())
	}
	return nil
}

// errNoStamp disables the snapshot cache where directory stamps are not
// implemented.
var errNoStamp = errors.New("maildir: directory stamps not implemented on this system")

// statDirAt is not implemented here: every login reads the directories
// (opened without following a symbolic link, which refuses one).
func statDirAt(dirfd int, name string) (dirStamp, error) { return dirStamp{}, errNoStamp }
