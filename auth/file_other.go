//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auth

import "errors"

// lockFile is not implemented here: edits refuse rather than risk losing
// a concurrent one.
func lockFile(path string) (unlock func(), err error) {
	return nil, errors.ErrUnsupported
}
