package testenv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// Freeze stops the server and every process it forked (SIGSTOP): sockets
// stay open and connects still succeed, but nothing answers, as when the
// database host hangs. Thaw undoes it; the test's cleanup thaws a server
// left frozen. Use a Postgres of the test's own: every test of the binary
// shares the package's one.
func (p *Postgres) Freeze(t testing.TB) {
	t.Helper()
	p.SocketDir(t)
	pid := p.cmd.Process.Pid
	// The postmaster first, so that it forks nothing while its children
	// are stopped; each child is a process group of its own (postgres
	// calls setsid), so a group signal would miss them.
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP postgres: %v", err)
	}
	for _, c := range childPIDs(pid) {
		syscall.Kill(c, syscall.SIGSTOP)
	}
	p.frozen.Store(true)
	t.Cleanup(func() { p.thaw() })
}

// Thaw continues a server stopped by Freeze.
func (p *Postgres) Thaw(t testing.TB) {
	t.Helper()
	p.thaw()
}

func (p *Postgres) thaw() {
	if !p.frozen.Swap(false) {
		return
	}
	pid := p.cmd.Process.Pid
	for _, c := range childPIDs(pid) {
		syscall.Kill(c, syscall.SIGCONT)
	}
	syscall.Kill(pid, syscall.SIGCONT)
}

// childPIDs lists the processes whose parent is pid, from /proc.
func childPIDs(pid int) []int {
	ents, _ := os.ReadDir("/proc")
	var kids []int
	for _, e := range ents {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, n)
		}
	}
	return kids
}
