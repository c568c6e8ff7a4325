//go:build !linux

package maildir

import (
	"errors"
	"os"
)

// readDir calls fn for every entry of directory path, with its name and
// whether it is a regular file.
func readDir(path string, fn func(name []byte, regular bool)) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
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

// statDir is not implemented here: every login reads the directories.
func statDir(path string) (dirStamp, error) { return dirStamp{}, errNoStamp }
