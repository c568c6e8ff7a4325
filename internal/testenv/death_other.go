//go:build !linux

package testenv

import "syscall"

// SetDeathSignal does nothing where the kernel has no parent-death signal.
func SetDeathSignal(*syscall.SysProcAttr) {}
