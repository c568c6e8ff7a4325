package testenv

import (
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startDovecot runs the Dovecot master `bin -F -c conf` of the instance
// in root (its log/ holds stdout.log, appended to, and dovecot.log) in a
// process group of its own that dies with the test binary, and waits
// until every one of addrs accepts connections. It fails the test with
// Dovecot's output if the master exits first. The returned stop ends the
// master and every child in its group (pop3 processes with a client
// attached outlive the master otherwise) and waits for the master.
func startDovecot(t testing.TB, bin, root, conf string, addrs ...string) (stop func()) {
	t.Helper()
	cmd := exec.Command(bin, "-F", "-c", conf)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	SetDeathSignal(cmd.SysProcAttr)
	out, err := os.OpenFile(filepath.Join(root, "log/stdout.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("starting dovecot: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		out.Close()
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, addr := range addrs {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-exited:
				log, _ := os.ReadFile(filepath.Join(root, "log/dovecot.log"))
				so, _ := os.ReadFile(filepath.Join(root, "log/stdout.log"))
				stop()
				t.Fatalf("dovecot exited at start:\n%s\n%s", so, log)
			default:
			}
			if time.Now().After(deadline) {
				stop()
				t.Fatalf("dovecot did not listen on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return stop
}

// vmailMu serialises the creation of the vmail user between the tests of
// one binary (two useradd at once: one fails).
var vmailMu sync.Mutex

// newDovecotRoot checks for root (Dovecot switches to its mail user),
// finds or creates the vmail user, and makes the instance's directory
// with its etc, run, mail and log, reachable by Dovecot's unprivileged
// processes (TempDir's parents are 0700).
func newDovecotRoot(t testing.TB) (root string, uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "Dovecot tests need root (mail user switch)")
	}
	uid, gid = VmailUser(t)
	root = OpenTempDir(t)
	for _, sub := range []string{"etc", "run", "mail", "log"} {
		if err := os.MkdirAll(filepath.Join(root, sub), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return root, uid, gid
}

// VmailUser finds or creates (as root) the unprivileged user "vmail" that
// mail servers under test run as, and returns its uid and gid.
func VmailUser(t testing.TB) (uid, gid int) {
	t.Helper()
	vmailMu.Lock()
	vm, err := user.Lookup("vmail")
	if err != nil {
		out, err := exec.Command("useradd", "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", "vmail").CombinedOutput()
		if vm, _ = user.Lookup("vmail"); vm == nil { // another test binary may have made it
			vmailMu.Unlock()
			t.Fatalf("useradd vmail: %v: %s", err, out)
		}
	}
	vmailMu.Unlock()
	uid, _ = strconv.Atoi(vm.Uid)
	gid, _ = strconv.Atoi(vm.Gid)
	return uid, gid
}

// OpenTempDir is t.TempDir made reachable by other users (its parents are
// 0700), for processes that run as another user than the test.
func OpenTempDir(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	for p := root; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	return root
}
