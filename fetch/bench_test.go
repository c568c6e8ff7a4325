package fetch

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// benchCorpus is 1,000 messages of 1 to 64 KiB (about 10 MB), the same on
// every run: header fields, then lines of text, some starting with a dot
// or "From ".
func benchCorpus() []string {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while postie fetches mail from every server it knows .dot From")
	msgs := make([]string, 1000)
	for i := range msgs {
		var b strings.Builder
		fmt.Fprintf(&b, "From: sender%d@example.org\nTo: user1@example.net\nSubject: benchmark message %d\nMessage-ID: <bench%d@example.org>\nDate: Mon, 2 Mar 2026 10:%02d:%02d +0000\n\n", i%13, i, i, i/60%60, i%60)
		size := 1024 + int(rng.ExpFloat64()*8192)
		size = min(size, 64<<10)
		for b.Len() < size {
			n := 5 + rng.IntN(12)
			for j := range n {
				if j > 0 {
					b.WriteByte(' ')
				}
				b.WriteString(words[rng.IntN(len(words))])
			}
			b.WriteByte('\n')
		}
		msgs[i] = b.String()
	}
	return msgs
}

// BenchmarkFetch fetches the same 1,000-message corpus from the same
// Dovecot (plain POP3 on loopback, leaving the mail on the server) into a
// fresh Maildir, with postie fetch, fetchmail (delivering through
// procmail, its usual MDA), getmail6 and mpop (both with their own Maildir
// delivery), in one run:
//
//	go test -run '^$' -bench Fetch -benchtime 3x ./fetch
//
// Each reports messages/s and MB/s (of wire octets).
func BenchmarkFetch(b *testing.B) {
	d := testenv.StartDovecot(b, 1)
	corpus := benchCorpus()
	var octets int64
	for _, m := range corpus {
		d.Deliver(b, "user1", []byte(m))
		octets += int64(len(wireForm(m)))
	}
	host, port := "127.0.0.1", d.Addr[strings.LastIndexByte(d.Addr, ':')+1:]
	b.Logf("corpus: %d messages, %.1f MB on the wire", len(corpus), float64(octets)/1e6)

	run := func(b *testing.B, fetchOnce func(b *testing.B, dir string) error) {
		b.SetBytes(octets)
		var total time.Duration
		for b.Loop() {
			b.StopTimer()
			var dir, md string
			for attempt := 1; ; attempt++ {
				dir = b.TempDir()
				md = filepath.Join(dir, "Maildir")
				for _, s := range []string{"tmp", "new", "cur"} {
					os.MkdirAll(filepath.Join(md, s), 0o700)
				}
				b.StartTimer()
				start := time.Now()
				err := fetchOnce(b, dir)
				elapsed := time.Since(start)
				b.StopTimer()
				if err == nil {
					total += elapsed
					break
				}
				if attempt == 10 {
					b.Fatal(err)
				}
				b.Logf("attempt %d failed, not counted, trying again: %v", attempt, err)
			}
			if n := len(maildirContents(b, md)); n != len(corpus) {
				b.Fatalf("%d messages delivered, want %d", n, len(corpus))
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(len(corpus)*b.N)/total.Seconds(), "msgs/s")
	}

	b.Run("postie", func(b *testing.B) {
		run(b, func(b *testing.B, dir string) error {
			c := config(b, fmt.Sprintf("state_dir = %q\n", filepath.Join(dir, "state"))+
				account("bench", d.Addr, fmt.Sprintf("maildir = %q", filepath.Join(dir, "Maildir")), "keep = true", `password_command = "echo pass1"`, "password_env ="))
			if res := runOnce(b, c, Options{Logger: quiet()})[0]; res.Fetched != len(corpus) {
				b.Fatalf("%s", res.Summary())
			}
			return nil
		})
	})
	b.Run("fetchmail", func(b *testing.B) {
		testenv.LookPath(b, "fetchmail")
		procmail := testenv.LookPath(b, "procmail")
		run(b, func(b *testing.B, dir string) error {
			rc := filepath.Join(dir, "procmailrc")
			os.WriteFile(rc, []byte("DEFAULT="+filepath.Join(dir, "Maildir")+"/\nLOGFILE=/dev/null\n"), 0o600)
			fmrc := filepath.Join(dir, "fetchmailrc")
			os.WriteFile(fmrc, []byte(fmt.Sprintf("set no syslog\npoll %s port %s protocol pop3 uidl auth password user \"user1\" password \"pass1\" is root here keep fetchall sslproto '' mda \"%s -m %s\"\n",
				host, port, procmail, rc)), 0o600)
			return peer(dir, "fetchmail", "-f", fmrc, "-i", filepath.Join(dir, "fetchids"), "--pidfile", filepath.Join(dir, "fetchmail.pid"), "--nodetach", "--silent")
		})
	})
	b.Run("getmail6", func(b *testing.B) {
		testenv.LookPath(b, "getmail")
		run(b, func(b *testing.B, dir string) error {
			rc := filepath.Join(dir, "getmailrc")
			os.WriteFile(rc, []byte(fmt.Sprintf(`[retriever]
type = SimplePOP3Retriever
server = %s
port = %s
username = user1
password = pass1
# getmail forks a delivery process per message and installs its SIGCHLD
# handler after the fork: a child that exits first is waited for until
# this timeout (default 180s), and the run fails. Such attempts are
# retried, not timed.
timeout = 20

[destination]
type = Maildir
path = %s/

user = vmail

[options]
verbose = 0
read_all = true
delete = false
`, host, port, filepath.Join(dir, "Maildir"))), 0o600)
			// getmail refuses to deliver as root: its delivery process
			// runs as vmail (Dovecot's user, made by testenv).
			for p := dir; p != "/" && p != os.TempDir(); p = filepath.Dir(p) {
				os.Chmod(p, 0o755)
			}
			exec.Command("chown", "-R", "vmail", filepath.Join(dir, "Maildir")).Run()
			// On one CPU the parent, which runs first after fork(2),
			// installs its handler before the child can exit: that
			// avoids most of the failures described above.
			args := []string{"getmail", "--rcfile", rc, "--getmaildir", dir}
			if taskset, err := exec.LookPath("taskset"); err == nil {
				args = append([]string{taskset, "-c", "0"}, args...)
			}
			return peer(dir, args[0], args[1:]...)
		})
	})
	b.Run("mpop", func(b *testing.B) {
		testenv.LookPath(b, "mpop")
		run(b, func(b *testing.B, dir string) error {
			return peer(dir, "mpop", "--host="+host, "--port="+port, "--user=user1", "--passwordeval=echo pass1",
				"--tls=off", "--auth=user", "--keep=on", "--only-new=off", "--uidls-file="+filepath.Join(dir, "uidls"),
				"--delivery=maildir,"+filepath.Join(dir, "Maildir"), "--quiet")
		})
	})
}

// peer runs a retriever to completion in dir.
func peer(dir, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v\n%s", name, err, out.String())
	}
	return nil
}
