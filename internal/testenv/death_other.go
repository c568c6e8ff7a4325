//go:build !linux

package testenv

import "syscall"

func setDeathSignal(*syscall.SysProcAttr) {}
