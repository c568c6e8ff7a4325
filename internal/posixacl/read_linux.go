package posixacl

import (
	"errors"
	"fmt"
	"syscall"
)

// Read returns the access ACL of the file at path (following symbolic
// links), nil when it has none: no extended entries, or a file system
// without ACLs.
func Read(path string) (ACL, error) {
	buf := make([]byte, 4+8*16)
	for {
		n, err := syscall.Getxattr(path, Attr, buf)
		switch {
		case errors.Is(err, syscall.ENODATA), errors.Is(err, syscall.ENOTSUP), errors.Is(err, syscall.EOPNOTSUPP):
			return nil, nil
		case errors.Is(err, syscall.ERANGE):
			size, err := syscall.Getxattr(path, Attr, nil)
			if err != nil {
				return nil, fmt.Errorf("posixacl: %s: %w", path, err)
			}
			if size > 1<<20 {
				return nil, fmt.Errorf("posixacl: %s: an ACL of %d bytes", path, size)
			}
			buf = make([]byte, size+8)
			continue
		case err != nil:
			return nil, fmt.Errorf("posixacl: %s: %w", path, err)
		}
		acl, err := Parse(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("%w (%s)", err, path)
		}
		return acl, nil
	}
}
