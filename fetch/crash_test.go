package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3server"
)

// crashCorpus has its big message third, so that a kill in the middle of
// its retrieval leaves part of it in an mbox.
var crashCorpus = []string{corpus[0], corpus[1], corpus[3], corpus[2], corpus[4], "Subject: six\n\nFrom the end\n"}

// TestCrashMatrix kills `fetch` with SIGKILL at each point of a run where a
// crash could lose or duplicate mail — in the middle of a RETR (and of the
// write to the destination), after the write before its record, after the
// record before DELE, between DELE and QUIT — then runs it again: every
// message must be in the destination exactly once (Maildir, mbox; at least
// once for an MDA) and the server must end with the right messages.
//
// The fetch runs in a child process, the test binary itself (see
// TestMain), against postie's POP3 server in this process.
func TestCrashMatrix(t *testing.T) {
	p := startPostie(t, nil)
	type tc struct {
		dest    string // maildir, mbox, mda
		point   string
		keep    bool
		foreign bool // another program appends to the mbox after the crash
	}
	cases := []tc{
		{dest: "maildir", point: "retr:1"},
		{dest: "maildir", point: "retr:3"},
		{dest: "maildir", point: "after-write:1"},
		{dest: "maildir", point: "after-write:3"},
		{dest: "maildir", point: "after-record:1"},
		{dest: "maildir", point: "after-record:4"},
		{dest: "maildir", point: "after-dele:0"},
		{dest: "maildir", point: "after-write:3", keep: true},
		{dest: "maildir", point: "after-record:2", keep: true},
		{dest: "mbox", point: "retr:3"},
		{dest: "mbox", point: "retr:3", foreign: true},
		{dest: "mbox", point: "after-write:2"},
		{dest: "mbox", point: "after-write:2", foreign: true},
		{dest: "mbox", point: "after-record:2"},
		{dest: "mbox", point: "after-dele:0"},
		{dest: "mda", point: "after-write:2"},
	}
	for i, c := range cases {
		name := c.dest + "/" + c.point
		if c.keep {
			name += "/keep"
		}
		if c.foreign {
			name += "/foreign"
		}
		user := fmt.Sprintf("user%d", i+1)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p.deliver(t, user, crashCorpus...)
			dir := t.TempDir()
			dest := filepath.Join(dir, "dest")
			var destKey string
			switch c.dest {
			case "maildir":
				destKey = fmt.Sprintf("maildir = %q", dest)
			case "mbox":
				destKey = fmt.Sprintf("mbox = %q", dest)
			case "mda":
				os.Mkdir(dest, 0o700)
				destKey = fmt.Sprintf("mda = %q", "cat > "+dest+"/$(date +%s%N).$$")
			}
			pass := filepath.Join(dir, "pass")
			os.WriteFile(pass, []byte("pass"+user[4:]+"\n"), 0o600)
			cfg := fmt.Sprintf("state_dir = %q\n", filepath.Join(dir, "state")) +
				account("crash", p.addr, fmt.Sprintf("user = %q", user), "password_env =", fmt.Sprintf("password_file = %q", pass), destKey, fmt.Sprintf("keep = %v", c.keep))
			cfgPath := filepath.Join(dir, "fetch.toml")
			os.WriteFile(cfgPath, []byte(cfg), 0o600)

			// The crashing run.
			out, killed := runChild(t, cfgPath, c.point)
			if !killed {
				t.Fatalf("the child was not killed at %s:\n%s", c.point, out)
			}
			foreign := "Subject: foreign\n\nappended by someone else\n"
			if c.foreign {
				f, err := os.OpenFile(dest, os.O_WRONLY|os.O_APPEND, 0)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString("From other@example.org Thu Jan  1 00:00:00 2026\n" + foreign + "\n")
				f.Close()
			}
			// Runs until one succeeds (the server may hold the dead
			// session's lock a moment: [IN-USE], exit 75).
			finish(t, cfgPath)

			want := wantLF(crashCorpus)
			if c.foreign {
				want = append(want, foreign)
			}
			var got []string
			switch c.dest {
			case "maildir":
				got = maildirContents(t, dest)
				if ents, _ := os.ReadDir(filepath.Join(dest, "tmp")); len(ents) != 0 {
					t.Errorf("%d files left in tmp/", len(ents))
				}
			case "mbox":
				data, _ := os.ReadFile(dest)
				got = parseMboxrd(t, data)
			case "mda":
				got = mdaContents(dest)
			}
			slices.Sort(got)
			slices.Sort(want)
			if c.dest == "mda" {
				// At least once: every message, and no more than the
				// one being delivered at the crash twice.
				if extra := subtract(got, want); len(extra) > 1 || len(subtract(want, got)) > 0 {
					t.Errorf("MDA got %d messages (%d extra), want each of %d at least once", len(got), len(extra), len(want))
				}
			} else if !slices.Equal(got, want) {
				t.Errorf("destination holds %d messages, want each of %d exactly once\nextra: %q\nmissing: %q",
					len(got), len(want), subtract(got, want), subtract(want, got))
			}
			wantLeft := 0
			if c.keep {
				wantLeft = len(crashCorpus)
			}
			if n := p.count(t, user); n != wantLeft {
				t.Errorf("server has %d messages, want %d", n, wantLeft)
			}
			// And a further run has nothing to do.
			if out := finish(t, cfgPath); !strings.Contains(out, "fetched 0 (0 B), deleted 0") {
				t.Errorf("a further run did something: %s", out)
			}
		})
	}
}

// runChild runs one fetch in a child process with the crash point set; it
// reports whether the child died of SIGKILL.
func runChild(t *testing.T, cfgPath, point string) (string, bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "POSTIE_FETCH_TEST_CHILD=1", "POSTIE_FETCH_TEST_CONFIG="+cfgPath,
		"POSTIE_FETCH_CRASHPOINT="+point, "POSTIE_FETCH_TEST_BATCH=2")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return out.String(), true
		}
		return out.String() + fmt.Sprintf("(exit %d)", ee.ExitCode()), false
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.String(), false
}

// finish runs fetch in a child until it exits 0, retrying while it exits
// 75 (temporary failure).
func finish(t *testing.T, cfgPath string) string {
	t.Helper()
	for range 100 {
		out, killed := runChild(t, cfgPath, "")
		switch {
		case killed:
			t.Fatalf("killed without a crash point:\n%s", out)
		case strings.Contains(out, "(exit 75)"):
			time.Sleep(50 * time.Millisecond)
			continue
		case strings.Contains(out, "(exit "):
			t.Fatalf("fetch failed:\n%s", out)
		}
		return out
	}
	t.Fatal("fetch kept failing with temporary errors")
	return ""
}

// parseMboxrd splits an mboxrd file into its messages, unquoted.
func parseMboxrd(t *testing.T, data []byte) []string {
	t.Helper()
	var msgs []string
	var cur *strings.Builder
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, "From ") {
			if cur != nil {
				msgs = append(msgs, cur.String())
			}
			cur = &strings.Builder{}
			continue
		}
		if cur == nil {
			t.Fatalf("mbox does not start with a From_ line: %q", line)
		}
		if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
			line = line[1:]
		}
		cur.WriteString(line)
	}
	if cur != nil {
		msgs = append(msgs, cur.String())
	}
	for i, m := range msgs {
		if !strings.HasSuffix(m, "\n\n") {
			t.Errorf("mbox message %d does not end with a blank line: %q", i+1, m)
			continue
		}
		msgs[i] = m[:len(m)-1]
	}
	return msgs
}

// subtract returns the elements of a (sorted) not matched in b (sorted),
// counting duplicates.
func subtract(a, b []string) []string {
	var out []string
	i, j := 0, 0
	for i < len(a) {
		switch {
		case j >= len(b) || a[i] < b[j]:
			out = append(out, a[i])
			i++
		case a[i] > b[j]:
			j++
		default:
			i++
			j++
		}
	}
	return out
}

// TestCrashExpireZeroCleanup: a postie POP3 server with EXPIRE 0 and an
// MDA that refuses the message "two" for good (exit 1). The run that
// retrieved it ends that session without QUIT and deletes the messages
// it delivered in a second session. fetch is killed (SIGKILL) between the
// two sessions, or in the second between DELE and QUIT, or not at all;
// after one more run, the server holds "two" only, the MDA got each other
// message exactly once, and a further run delivers and deletes nothing.
func TestCrashExpireZeroCleanup(t *testing.T) {
	zero := 0
	p := startPostie(t, func(o *pop3server.Options) { o.Limits.Expire = &zero })
	for i, point := range []string{"", "between-sessions:0", "after-cleanup-dele:0"} {
		user := fmt.Sprintf("user%d", i+1)
		t.Run("kill="+point, func(t *testing.T) {
			t.Parallel()
			p.deliver(t, user, crashCorpus...)
			dir := t.TempDir()
			dest := filepath.Join(dir, "dest")
			os.Mkdir(dest, 0o700)
			mda := fmt.Sprintf(`f=%[1]s/msg.$$; cat > "$f" || exit 75; if grep -q "^Subject: two" "$f"; then rm "$f"; exit 1; fi; mv "$f" %[2]s/$(date +%%s%%N).$$`, dir, dest)
			pass := filepath.Join(dir, "pass")
			os.WriteFile(pass, []byte("pass"+user[4:]+"\n"), 0o600)
			cfg := fmt.Sprintf("state_dir = %q\n", filepath.Join(dir, "state")) +
				account("exp", p.addr, fmt.Sprintf("user = %q", user), "password_env =", fmt.Sprintf("password_file = %q", pass), fmt.Sprintf("mda = %q", mda))
			cfgPath := filepath.Join(dir, "fetch.toml")
			os.WriteFile(cfgPath, []byte(cfg), 0o600)

			if point != "" {
				out, killed := runChild(t, cfgPath, point)
				if !killed {
					t.Fatalf("the child was not killed at %s:\n%s", point, out)
				}
				if n := p.count(t, user); n != len(crashCorpus) {
					t.Errorf("after the kill the server has %d messages, want all %d", n, len(crashCorpus))
				}
			}
			finish(t, cfgPath)

			var want []string
			for _, m := range wantLF(crashCorpus) {
				if !strings.Contains(m, "Subject: two\n") {
					want = append(want, m)
				}
			}
			check := func(when string) {
				t.Helper()
				got := mdaContents(dest)
				slices.Sort(got)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Errorf("%s: the MDA got %d messages, want each of %d exactly once\nextra: %q\nmissing: %q",
						when, len(got), len(want), subtract(got, want), subtract(want, got))
				}
				var left []string
				for _, m := range maildirContents(t, filepath.Join(p.root, user)) {
					_, subj, _ := strings.Cut(m, "Subject: ")
					subj, _, _ = strings.Cut(subj, "\n")
					left = append(left, strings.TrimSuffix(subj, "\r"))
				}
				if !slices.Equal(left, []string{"two"}) {
					t.Errorf("%s: the server has the messages %q, want [\"two\"]", when, left)
				}
			}
			check("after the run")
			if out := finish(t, cfgPath); !strings.Contains(out, "exp: fetched 0 (0 B), deleted 0, skipped 0, errors 1\n") {
				t.Errorf("a further run: %s", out)
			}
			check("after a further run")
		})
	}
}

// mdaContents is every message the test MDA wrote into dir, one file
// each, in no order.
func mdaContents(dir string) []string {
	var got []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got = append(got, string(b))
	}
	return got
}
