//go:build !unix

package privdrop

import "errors"

var errUnsupported = errors.New("not supported on this system")

func setgroups([]int) error { return errUnsupported }
func setgid(int) error      { return errUnsupported }
func setuid(int) error      { return errUnsupported }
