//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/postie-mail/postie/internal/testenv"
)

// runOnPTY runs a full-screen program on a new pseudo-terminal (it is
// the session leader and the terminal is its controlling one) and returns
// what it drew, once it has exited.
func runOnPTY(t *testing.T, env []string, name string, args ...string) []byte {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer master.Close()
	mfd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(mfd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(mfd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pseudo-terminal number: %v", err)
	}
	tty, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80}); err != nil {
		t.Fatal(err)
	}
	// Bounded only so that a program stuck at a prompt cannot hang the
	// test binary; a run takes well under a second.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		tty.Close()
		t.Fatal(err)
	}
	tty.Close()
	var screen bytes.Buffer
	drawn := make(chan struct{})
	go func() {
		// Drained all along, or the program blocks writing; ends with
		// EIO once the program and its terminal are gone.
		io.Copy(&screen, master)
		close(drawn)
	}()
	err = cmd.Wait()
	master.Close()
	<-drawn
	if err != nil {
		t.Fatalf("%s: %v\nscreen:\n%q", filepath.Base(name), err, screen.Bytes())
	}
	return screen.Bytes()
}

// mboxFromLine is the separator line NeoMutt writes before each message
// of an mbox: "From " sender date.
var mboxFromLine = regexp.MustCompile(`^From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\n`)

// neomuttMbox is how NeoMutt stores a message retrieved as wire (after
// its From_ line): LF line ends, the header section followed by the
// Status, Content-Length and Lines fields it adds, the body unchanged
// (no >From quoting: Content-Length delimits it), a blank line.
func neomuttMbox(wire string) string {
	header, body, _ := strings.Cut(lfForm(wire), "\n\n")
	return fmt.Sprintf("%s\nStatus: O\nContent-Length: %d\nLines: %d\n\n%s\n",
		header, len(body), strings.Count(body, "\n"), body)
}

// NeoMutt, as a new user runs it: default settings, the password in
// pop_host, <fetch-mail> into an mbox, over POP3S and over STLS. NeoMutt
// 20220429 (GNU SASL) picks SCRAM-SHA-256-PLUS whenever it is offered and
// cannot do it over TLS 1.3; this test fails if postie's default offers
// -PLUS again (docs/clients.md).
func TestNeoMuttTLS(t *testing.T) {
	t.Parallel()
	neomutt := testenv.LookPath(t, "neomutt")
	s := startTLSConfig(t, tlsConfig{passwd: "alice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n"})
	want := map[string]string{
		"alice": s.deliver(t, "alice", testMessage),
		"bob":   s.deliver(t, "bob", "Subject: for bob\n\nFrom the start of a line\n"),
	}
	for _, tc := range []struct{ name, user, popHost, extra string }{
		{"pops", "alice", "pops://alice:alicepw@" + s.POP3S, ""},
		{"STLS", "bob", "pop://bob:bobpw@" + s.POP3, "set ssl_starttls=yes\nset ssl_force_tls=yes\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			home := filepath.Join(dir, "home")
			spool := filepath.Join(dir, "spool")
			if err := os.Mkdir(home, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(spool, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			rc := filepath.Join(dir, "muttrc")
			// Beyond the server and the CA: where to put the mail, and
			// pop_delete=no, the answer to the "Delete messages from
			// server?" prompt (default ask-no) that a push cannot give.
			conf := fmt.Sprintf("set pop_host=%q\nset ssl_ca_certificates_file=%q\nset spoolfile=%q\nset folder=%q\nset pop_delete=no\n%s",
				tc.popHost, s.caFile, spool, dir, tc.extra)
			if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
				t.Fatal(err)
			}
			env := []string{"HOME=" + home, "TERM=xterm", "PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8"}
			screen := runOnPTY(t, env, neomutt, "-n", "-F", rc, "-e", "push <fetch-mail><quit>")

			got, err := os.ReadFile(spool)
			if err != nil {
				t.Fatal(err)
			}
			from := mboxFromLine.Find(got)
			if wantMbox := neomuttMbox(want[tc.user]); from == nil || string(got[len(from):]) != wantMbox {
				t.Fatalf("NeoMutt wrote to its mbox\n%q\nwant a From_ line and\n%q\nscreen:\n%q", got, wantMbox, screen)
			}
			login := s.WaitLog(t, `msg=login session=\d+ remote=127\.0\.0\.1 user=`+tc.user+` method=(\S+) tls=(\S+)`)
			if login[1] != "SCRAM-SHA-256" || login[2] != "true" {
				t.Errorf("NeoMutt logged in with %s, tls=%s; want SCRAM-SHA-256 over TLS", login[1], login[2])
			}
		})
	}
}
