package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// startCluster runs examples/cluster/cluster.sh start in a new directory,
// with the users of passwd (name → password), and returns its
// cluster.env. The cluster is stopped when the test ends.
func startCluster(t *testing.T, users map[string]string, env ...string) map[string]string {
	t.Helper()
	if _, err := exec.LookPath("haproxy"); err != nil {
		testenv.Missing(t, "haproxy (Debian package haproxy)")
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres"); len(m) == 0 && os.Getenv("PG_BINDIR") == "" {
		testenv.Missing(t, "PostgreSQL server programs (Debian package postgresql)")
	}
	if _, err := exec.LookPath("python3"); err != nil {
		testenv.Missing(t, "python3")
	}
	script, err := filepath.Abs("../../examples/cluster/cluster.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := testenv.PostieBinaryNoRace(t)
	cfg := filepath.Join(dir, "users.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("data_dir = %q\n[auth]\npasswd_file = %q\n", dir, filepath.Join(dir, "passwd"))), 0o600); err != nil {
		t.Fatal(err)
	}
	for u, pw := range users {
		mustPostie(t, 0, pw+"\n", "user", "add", "--config", cfg, "--password-stdin", "--scheme", "SHA512-CRYPT", u)
	}
	run := func(args ...string) []byte {
		cmd := exec.Command(script, args...)
		cmd.Env = append(os.Environ(), append([]string{"POSTIE=" + bin}, env...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("cluster.sh %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"node1/log", "node2/log", "haproxy.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, b[max(0, len(b)-8<<10):])
			}
		}
		run("stop", dir)
	})
	out := run("start", dir)
	vars := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("cluster.sh start printed %q", l)
		}
		vars[k] = strings.Trim(v, "'")
	}
	for _, k := range []string{"POP3", "LMTP", "NODE1_PID", "NODE2_PID", "NODE2_POP3"} {
		if vars[k] == "" {
			t.Fatalf("cluster.env lacks %s:\n%s", k, out)
		}
	}
	return vars
}

// clusterConn is a POP3 client that reports errors instead of failing
// the test: its node may be killed under it.
type clusterConn struct {
	c    net.Conn
	br   *bufio.Reader
	node string // from the greeting: "node1" or "node2"
}

func dialCluster(addr string) (*clusterConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	p := &clusterConn{c: c, br: bufio.NewReader(c)}
	g, err := p.line()
	if err != nil {
		c.Close()
		return nil, err
	}
	if _, rest, ok := strings.Cut(g, "+OK "); ok {
		p.node, _, _ = strings.Cut(rest, " ")
		return p, nil
	}
	c.Close()
	return nil, fmt.Errorf("greeting %q", g)
}

func (p *clusterConn) line() (string, error) {
	l, err := p.br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(l, "\r\n"), nil
}

// cmd sends line and returns the reply, an error for -ERR.
func (p *clusterConn) cmd(line string) (string, error) {
	if _, err := p.c.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	r, err := p.line()
	if err == nil && !strings.HasPrefix(r, "+OK") {
		err = fmt.Errorf("%s: %s", strings.Fields(line)[0], r)
	}
	return r, err
}

// multi sends line and returns the lines of its multi-line reply.
func (p *clusterConn) multi(line string) ([]string, error) {
	if _, err := p.cmd(line); err != nil {
		return nil, err
	}
	var ls []string
	for {
		l, err := p.line()
		if err != nil {
			return nil, err
		}
		if l == "." {
			return ls, nil
		}
		ls = append(ls, strings.TrimPrefix(l, "."))
	}
}

func (p *clusterConn) login(user, pw string) error {
	if _, err := p.cmd("USER " + user); err != nil {
		return err
	}
	_, err := p.cmd("PASS " + pw)
	return err
}

// uidls returns the UIDLs of the maildrop, by message number from 1.
func (p *clusterConn) uidls() ([]string, error) {
	ls, err := p.multi("UIDL")
	if err != nil {
		return nil, err
	}
	var u []string
	for _, l := range ls {
		f := strings.Fields(l)
		if len(f) != 2 {
			return nil, fmt.Errorf("UIDL line %q", l)
		}
		u = append(u, f[1])
	}
	return u, nil
}

// TestClusterExample runs examples/cluster: PostgreSQL, two nodes and
// HAProxy sending PROXY v2 headers. Mail delivered through HAProxy's LMTP
// is read through its POP3; one node is killed (SIGKILL) in the middle of sessions on
// both. The sessions on the other node finish and their deletions hold;
// the clients of the dead node get in through the other one once their
// maildrop's lease has expired, find the messages they had marked
// deleted still there (no QUIT, no deletion), and finish. In the end
// every message was deleted by exactly one session that ended with QUIT,
// and nothing is left.
func TestClusterExample(t *testing.T) {
	t.Parallel()
	const lease = 2 * time.Second
	users := map[string]string{}
	var names []string
	for i := range 6 {
		u := fmt.Sprintf("user%d", i+1)
		users[u] = "pw-" + u
		names = append(names, u)
	}
	// HAProxy sends PROXY v2 headers: the nodes take connections from
	// loopback only through it.
	env := startCluster(t, users, "POSTIE_LEASE="+lease.String(), "POSTIE_TIMEOUT=5s", "PROXY_PROTOCOL=1")

	// A connection straight to a node, without a header, is refused.
	if p, err := dialCluster(env["NODE2_POP3"]); err == nil {
		p.c.Close()
		t.Fatalf("node 2 greeted a connection from a trusted proxy's address without a PROXY header")
	}

	// Three messages each, through HAProxy's LMTP (round-robin).
	body := func(u string, i int) string {
		return fmt.Sprintf("Subject: %s %d\r\n\r\nmessage %d of %s\r\n", u, i, i, u)
	}
	for i := range 3 {
		for _, u := range names {
			lmtpDeliver(t, env["LMTP"], u+"@example.org", body(u, i))
		}
	}

	// deleted counts the deletions of sessions that ended with +OK to
	// QUIT, by UIDL.
	deleted := map[string]int{}
	all := map[string]bool{}

	// One session per user through HAProxy: list, retrieve and delete
	// the first message, and stay.
	type session struct {
		user  string
		p     *clusterConn
		uidls []string
	}
	var open []*session
	nodes := map[string]int{}
	for _, u := range names {
		p, err := dialCluster(env["POP3"])
		if err != nil {
			t.Fatal(err)
		}
		defer p.c.Close()
		if err := p.login(u, users[u]); err != nil {
			t.Fatalf("%s on %s: %v", u, p.node, err)
		}
		uidls, err := p.uidls()
		if err != nil || len(uidls) != 3 {
			t.Fatalf("%s: UIDL %v, %v; want 3 messages", u, uidls, err)
		}
		for _, id := range uidls {
			all[id] = true
		}
		if _, err := p.multi("RETR 1"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.cmd("DELE 1"); err != nil {
			t.Fatal(err)
		}
		nodes[p.node]++
		open = append(open, &session{u, p, uidls})
	}
	if nodes["node1"] == 0 || nodes["node2"] == 0 {
		t.Fatalf("HAProxy sent the sessions to %v, not round-robin to both nodes", nodes)
	}

	// Node 1 dies in the middle of its sessions.
	if err := syscall.Kill(atoiT(t, env["NODE1_PID"]), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Mail still comes in, through node 2, once HAProxy has taken the
	// dead node out: until then a connection it sends there is closed
	// before the greeting, and the MTA tries again.
	for _, u := range names {
		for try := 0; ; try++ {
			err := lmtpTry(env["LMTP"], u+"@example.org", body(u, 3))
			if err == nil {
				break
			}
			if try == 100 || !errors.Is(err, io.EOF) {
				t.Fatalf("LMTP through HAProxy after the kill, try %d: %v", try+1, err)
			}
			t.Logf("LMTP through HAProxy after the kill: %v; again", err)
			time.Sleep(100 * time.Millisecond)
		}
	}

	var orphans []*session
	for _, s := range open {
		if s.p.node == "node1" {
			// The connection is gone with its node.
			if _, err := s.p.cmd("NOOP"); err == nil {
				t.Fatalf("%s: NOOP answered on a killed node", s.user)
			}
			s.p.c.Close()
			orphans = append(orphans, s)
			continue
		}
		if _, err := s.p.cmd("DELE 2"); err != nil {
			t.Fatalf("%s on node2 after node1 died: %v", s.user, err)
		}
		if _, err := s.p.cmd("QUIT"); err != nil {
			t.Fatalf("%s: QUIT on node2: %v", s.user, err)
		}
		deleted[s.uidls[0]]++
		deleted[s.uidls[1]]++
		s.p.c.Close()
	}

	// The dead node's clients come back through HAProxy: refused while
	// the lease of their maildrop lives ([IN-USE]; or a connection still
	// sent to the dead node), then served by node 2, polling a bounded
	// number of times.
	for _, s := range orphans {
		var p *clusterConn
		var last error
		for try := 0; p == nil; try++ {
			if try == int(20*lease/(100*time.Millisecond)) {
				t.Fatalf("%s: not back in after %d tries (20 leases): %v", s.user, try, last)
			}
			q, err := dialCluster(env["POP3"])
			if err == nil {
				if err = q.login(s.user, users[s.user]); err == nil {
					p = q
					t.Logf("%s: in after %d refused tries", s.user, try)
					break
				}
				q.c.Close()
				if !strings.Contains(err.Error(), "[IN-USE]") {
					t.Fatalf("%s: %v", s.user, err)
				}
			}
			last = err
			time.Sleep(100 * time.Millisecond)
		}
		if p.node != "node2" {
			t.Fatalf("%s: served by %s, which was killed", s.user, p.node)
		}
		uidls, err := p.uidls()
		if err != nil {
			t.Fatal(err)
		}
		// Nothing was deleted without QUIT; the new message is there.
		if len(uidls) != 4 || !slices.Equal(uidls[:3], s.uidls) {
			t.Fatalf("%s after the kill: UIDLs %v, want %v and one more", s.user, uidls, s.uidls)
		}
		if _, err := p.cmd("QUIT"); err != nil {
			t.Fatal(err)
		}
		p.c.Close()
	}

	// Every client empties its maildrop, then finds it empty.
	for _, u := range names {
		p, err := loginCluster(env["POP3"], u, users[u])
		if err != nil {
			t.Fatal(err)
		}
		uidls, err := p.uidls()
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range uidls {
			all[id] = true
			if _, err := p.cmd(fmt.Sprintf("DELE %d", i+1)); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := p.cmd("QUIT"); err != nil {
			t.Fatalf("%s: QUIT: %v", u, err)
		}
		p.c.Close()
		for _, id := range uidls {
			deleted[id]++
		}
		p, err = loginCluster(env["POP3"], u, users[u])
		if err != nil {
			t.Fatal(err)
		}
		if r, err := p.cmd("STAT"); err != nil || r != "+OK 0 0" {
			t.Errorf("%s at the end: STAT %q, %v", u, r, err)
		}
		p.cmd("QUIT")
		p.c.Close()
	}
	if len(all) != len(names)*4 {
		t.Errorf("%d distinct messages seen, want %d", len(all), len(names)*4)
	}
	for id := range all {
		if deleted[id] != 1 {
			t.Errorf("message %s deleted by %d sessions, want 1", id, deleted[id])
		}
	}
}

// loginCluster logs in through addr, waiting (bounded) while the maildrop
// is still locked by a session that just ended.
func loginCluster(addr, user, pw string) (*clusterConn, error) {
	var err error
	for range 100 {
		var p *clusterConn
		if p, err = dialCluster(addr); err != nil {
			return nil, err
		}
		if err = p.login(user, pw); err == nil {
			return p, nil
		}
		p.c.Close()
		if !strings.Contains(err.Error(), "[IN-USE]") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, fmt.Errorf("%s: %w", user, err)
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}
