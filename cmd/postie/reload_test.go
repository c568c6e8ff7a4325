package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadLostPasswd: after the passwd-file is removed or emptied, SIGHUP
// logs an error and keeps the users, so LMTP still accepts their mail
// (rather than answering 550 5.1.1, which an MTA turns into bounces) and
// they can still log in.
func TestReloadLostPasswd(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "alice pw")
	s := startServe(t, dir)
	addr, lmtpAddr := s.POP3, s.LMTP
	passwd := filepath.Join(dir, "passwd")
	saved, err := os.ReadFile(passwd)
	if err != nil {
		t.Fatal(err)
	}

	for i, lose := range []func() error{
		func() error { return os.Remove(passwd) },
		func() error { return os.WriteFile(passwd, nil, 0o600) },
	} {
		if err := lose(); err != nil {
			t.Fatal(err)
		}
		s.Signal(t, syscall.SIGHUP)
		want := []string{"does not exist", "holds no user"}[i]
		s.WaitLog(t, `level=ERROR msg="reloading users failed; keeping the previous ones" err=".*`+want+`; keeping the users loaded before \(1; restart to serve none\)`)
		lmtpDeliver(t, lmtpAddr, "alice@localhost", "Subject: still here\r\n\r\nhello\r\n")
		p := dialPOP3(t, addr)
		p.login("alice", "alice pw")
		p.cmd("+OK", "QUIT")
	}
	if strings.Contains(s.Log(), "users reloaded users=0") {
		t.Error("the users were reloaded as none")
	}
	// The file back: the reload works again.
	if err := os.WriteFile(passwd, saved, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Signal(t, syscall.SIGHUP)
	s.WaitLog(t, `msg="users reloaded" users=1`)
	s.Stop(t, syscall.SIGTERM, time.Minute)
}
