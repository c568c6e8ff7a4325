package testenv

import "syscall"

// SetDeathSignal has the kernel kill the child when the test process
// dies without its cleanups (a test timeout, a crash).
func SetDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
