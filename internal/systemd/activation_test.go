package systemd

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestListeners passes two TCP listeners and a unix one to a child (this
// test binary again) as systemd does, at descriptors 3, 4 and 5 with
// LISTEN_FDNAMES, and connects to each: the child answers with the name
// it found the listener under.
func TestListeners(t *testing.T) {
	if os.Getenv("SYSTEMD_TEST_CHILD") == "1" {
		activationChild()
		return
	}
	var files []*os.File
	var addrs []string
	for _, network := range []string{"tcp", "tcp", "unix"} {
		addr := "127.0.0.1:0"
		if network == "unix" {
			addr = t.TempDir() + "/lmtp"
		}
		ln, err := net.Listen(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		f, err := ln.(interface{ File() (*os.File, error) }).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		files = append(files, f)
		addrs = append(addrs, network+" "+ln.Addr().String())
	}
	out := runChild(t, files, "LISTEN_FDS=3", "LISTEN_FDNAMES=pop3:pop3:lmtp")
	got := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"lmtp 1", "pop3 2"}
	if !slices.Equal(got[:2], want) {
		t.Fatalf("child found %q, want %q first", got, want)
	}
	// The child now serves: each listener answers with its name.
	for i, a := range addrs {
		network, addr, _ := strings.Cut(a, " ")
		c, err := net.Dial(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(time.Minute))
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if wantName := []string{"pop3\n", "pop3\n", "lmtp\n"}[i]; line != wantName {
			t.Errorf("listener %d (%s) answered %q, %v; want %q", i, a, line, err, wantName)
		}
	}
}

// runChild starts the child with files at descriptors 3..., waits for
// its first line... and returns what it printed before serving.
func runChild(t *testing.T, files []*os.File, env ...string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestListeners$")
	cmd.Env = append(os.Environ(), append(env, "SYSTEMD_TEST_CHILD=1")...)
	cmd.ExtraFiles = files
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	br := bufio.NewReader(stdout)
	var b strings.Builder
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v after %q", err, b.String())
		}
		if l == "serving\n" {
			return b.String()
		}
		b.WriteString(l)
	}
}

// activationChild is the activated process: LISTEN_PID is its own pid (a
// real service manager sets it between fork and exec).
func activationChild() {
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	lns, err := Listeners()
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, ok := os.LookupEnv(k); ok {
			fmt.Printf("%s=%s left in the environment\n", k, v)
		}
	}
	var names []string
	for name, l := range lns {
		names = append(names, fmt.Sprintf("%s %d", name, len(l)))
	}
	sort.Strings(names)
	fmt.Println(strings.Join(names, "\n"))
	fmt.Println("serving")
	for name, l := range lns {
		for _, ln := range l {
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					fmt.Fprintln(c, name)
					c.Close()
				}
			}()
		}
	}
	select {}
}

func TestListenersBadEnvironment(t *testing.T) {
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct{ pid, fds, names, want string }{
		{"", "", "", ""},
		{"1", "2", "", ""},           // another process's
		{pid, "x", "", "LISTEN_FDS"}, // not a number
		{pid, "-1", "", "LISTEN_FDS"},
		{pid, "2", "pop3", "2 descriptors"}, // names do not match
	} {
		t.Setenv("LISTEN_PID", tc.pid)
		t.Setenv("LISTEN_FDS", tc.fds)
		t.Setenv("LISTEN_FDNAMES", tc.names)
		lns, err := Listeners()
		switch {
		case tc.want == "" && (err != nil || lns != nil):
			t.Errorf("%+v: %v, %v; want nothing", tc, lns, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v; want one naming %q", tc, err, tc.want)
		}
	}
	// A descriptor that is not a listening socket: a pipe at 3.
	if os.Getenv("SYSTEMD_TEST_CHILD") == "" {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		defer w.Close()
		cmd := exec.Command(os.Args[0], "-test.run=^TestListenersNotSocket$")
		cmd.Env = append(os.Environ(), "SYSTEMD_TEST_CHILD=1", "LISTEN_FDS=1", "LISTEN_FDNAMES=pop3")
		cmd.ExtraFiles = []*os.File{r}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "descriptor 3 (pop3) is not a listening stream socket") {
			t.Errorf("child with a pipe at 3: %v\n%s", err, out)
		}
	}
}

func TestListenersNotSocket(t *testing.T) {
	if os.Getenv("SYSTEMD_TEST_CHILD") != "1" {
		t.Skip("run by TestListenersBadEnvironment")
	}
	os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	_, err := Listeners()
	fmt.Println(err)
}
