package main

import (
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// proc is a process the privilege and socket-activation tests start
// themselves: postie under systemd-socket-activate, or as root with its
// own config file, which testenv.Postie does not cover.
type proc struct {
	cmd    *exec.Cmd
	stderr lockedBuf
	done   chan struct{}
	err    error // of Wait, once done is closed
}

// lockedBuf is testenv.SyncBuffer under this package's old name.
type lockedBuf = testenv.SyncBuffer

// startProc starts name with args (stdout and stderr both logged); it is
// killed when the test ends.
func startProc(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(name, args...)
	p.cmd.Env = testenv.PostieEnv()
	p.cmd.Stdout, p.cmd.Stderr = &p.stderr, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// waitFor polls the output until re matches and returns the submatches.
func (p *proc) waitFor(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for {
		if m := rx.FindStringSubmatch(p.stderr.String()); m != nil {
			return m
		}
		select {
		case <-p.done:
			if m := rx.FindStringSubmatch(p.stderr.String()); m != nil {
				return m
			}
			t.Fatalf("the process exited (%v) before printing %q", p.err, re)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop sends sig and wants exit 0.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	<-p.done
	if p.err != nil {
		t.Errorf("exited with %v after %v, want exit 0", p.err, sig)
	}
}
