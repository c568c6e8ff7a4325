package testenv

import "syscall"

// setDeathSignal has the kernel kill the child when the test process
// dies without its cleanups (a test timeout, a crash).
func setDeathSignal(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGKILL }
