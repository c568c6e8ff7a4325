package testenv

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// courierPOP3dPath is where Debian's courier-pop puts Courier's POP3
// server, below the root it is installed or extracted in.
const courierPOP3dPath = "usr/lib/courier/courier/courierpop3d"

// CourierRootEnv names the directory Courier's packages were extracted in
// (dpkg -x of courier-pop, courier-base, courier-authlib and
// libcourier-unicode4), for machines where courier-pop cannot be
// installed: it conflicts with Dovecot's POP3 server. test.sh sets it.
const CourierRootEnv = "POSTIE_COURIER_ROOT"

// Courier is Courier's own POP3 server, courierpop3d (Debian's courier-pop),
// serving Maildirs on a loopback port, one process per connection. The
// AUTHORIZATION state is played by the launcher, as courierpop3login plays
// it in front of courierpop3d: a greeting, CAPA, USER and PASS against
// the users it was given; after a good PASS, courierpop3d is started on
// the connection with the user's Maildir, authenticated (as the
// Maildir's owner when the test runs as root), and its first line, "+OK
// logged in.", answers the PASS. Everything after that is Courier's.
type Courier struct {
	Addr string

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	procs map[*exec.Cmd]bool
	log   SyncBuffer
	once  sync.Once
}

// CourierUser is a user a Courier serves: the password its PASS takes
// and its Maildir.
type CourierUser struct {
	Password, Maildir string
}

// courierPOP3d finds courierpop3d and the environment it runs in, or
// calls Missing.
func courierPOP3d(t testing.TB) (bin string, env []string) {
	t.Helper()
	root := os.Getenv(CourierRootEnv)
	if root == "" {
		root = "/"
	}
	bin = filepath.Join(root, courierPOP3dPath)
	if fi, err := os.Stat(bin); err != nil || fi.Mode()&0o111 == 0 {
		Missing(t, "Courier's POP3 server %s (courier-pop; ./test.sh extracts it and sets %s)", bin, CourierRootEnv)
	}
	if os.Geteuid() == 0 {
		// As root, Courier runs as the Maildir's owner, who must reach it.
		for d := filepath.Dir(bin); ; d = filepath.Dir(d) {
			if fi, err := os.Stat(d); err != nil || fi.Mode()&0o001 == 0 {
				t.Fatalf("courierpop3d %s: %s cannot be entered by other users, as whom Courier runs (extract it elsewhere, e.g. under /var/cache)", bin, d)
			}
			if d == "/" || d == "." {
				break
			}
		}
	}
	env = []string{"PATH=/usr/bin:/bin", "TCPREMOTEIP=127.0.0.1"}
	if root != "/" {
		libs := []string{filepath.Join(root, "usr/lib")}
		arch, _ := filepath.Glob(filepath.Join(root, "usr/lib/*-linux-gnu"))
		env = append(env, "LD_LIBRARY_PATH="+strings.Join(append(libs, arch...), ":"))
	}
	return bin, env
}

// StartCourier starts a Courier on addr (a loopback address, e.g. from
// FreePort, so that postie can take the port over after Stop) serving
// users (name → user). It is stopped when the test ends.
func StartCourier(t testing.TB, addr string, users map[string]CourierUser) *Courier {
	t.Helper()
	bin, env := courierPOP3d(t)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &Courier{Addr: ln.Addr().String(), ln: ln, procs: map[*exec.Cmd]bool{}}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.wg.Add(1)
			go func() {
				defer c.wg.Done()
				c.serve(conn.(*net.TCPConn), bin, env, users)
			}()
		}
	}()
	t.Cleanup(func() {
		c.Stop()
		if t.Failed() {
			t.Logf("Courier's log:\n%s", c.Log())
		}
	})
	return c
}

// Log returns what courierpop3d wrote to its standard error (its
// LOGIN, LOGOUT and error lines).
func (c *Courier) Log() string { return c.log.String() }

// Stop closes the listener and waits for every session to end; sessions
// still running after 10 seconds are killed.
func (c *Courier) Stop() {
	c.once.Do(func() {
		c.ln.Close()
		done := make(chan struct{})
		go func() { c.wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.mu.Lock()
			for cmd := range c.procs {
				cmd.Process.Kill()
			}
			c.mu.Unlock()
			<-done
		}
	})
}

// serve plays courierpop3login on conn, then hands it to courierpop3d.
func (c *Courier) serve(conn *net.TCPConn, bin string, env []string, users map[string]CourierUser) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Minute))
	br := bufio.NewReaderSize(conn, 512)
	reply := func(s string) bool {
		_, err := conn.Write([]byte(s + "\r\n"))
		return err == nil
	}
	if !reply("+OK Hello there.") {
		return
	}
	user := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil || len(line) > 255 {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "CAPA":
			if !reply("+OK Here's what I can do:\r\nTOP\r\nUSER\r\nUIDL\r\nIMPLEMENTATION Courier Mail Server\r\n.") {
				return
			}
		case "USER":
			user = arg
			if !reply("+OK Password required.") {
				return
			}
		case "PASS":
			u, ok := users[user]
			if !ok || user == "" || arg != u.Password {
				user = ""
				if !reply("-ERR Login failed.") {
					return
				}
				continue
			}
			if br.Buffered() > 0 {
				// Pipelined past PASS: courierpop3d would not see it.
				reply("-ERR Login failed.")
				return
			}
			c.pop3d(conn, bin, env, user, u.Maildir)
			return
		case "QUIT":
			reply("+OK Bye-bye.")
			return
		default:
			if !reply("-ERR Invalid command.") {
				return
			}
		}
	}
}

// pop3d runs courierpop3d on conn for user, authenticated, until it exits.
func (c *Courier) pop3d(conn *net.TCPConn, bin string, env []string, user, maildir string) {
	conn.SetDeadline(time.Time{})
	f, err := conn.File()
	if err != nil {
		c.log.Write([]byte("testenv: " + err.Error() + "\n"))
		return
	}
	defer f.Close()
	cmd := exec.Command(bin, maildir)
	cmd.Env = slices.Concat(env, []string{"AUTHENTICATED=" + user})
	cmd.Dir = maildir
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, &c.log
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	SetDeathSignal(cmd.SysProcAttr)
	// As courierpop3login would: the Maildir owner's user and group.
	var st syscall.Stat_t
	if os.Geteuid() == 0 && syscall.Stat(maildir, &st) == nil && st.Uid != 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: st.Uid, Gid: st.Gid}
	}
	c.mu.Lock()
	if err := cmd.Start(); err != nil {
		c.mu.Unlock()
		c.log.Write([]byte("testenv: starting courierpop3d: " + err.Error() + "\n"))
		return
	}
	c.procs[cmd] = true
	c.mu.Unlock()
	cmd.Wait()
	c.mu.Lock()
	delete(c.procs, cmd)
	c.mu.Unlock()
}
