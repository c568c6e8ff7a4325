package bench_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/bench"
	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3client"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/maildir"
)

// The smoke test proves every scenario runs and reports sensibly against
// an in-process postie. It checks the JSON line and the absence of errors,
// never a speed figure.

type env struct {
	plain, tls string
	caPool     *x509.CertPool
	root       string
	rawPlain   string
	rawTLS     string
}

func startEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	// user1..user4: small corpora; user5: one big message; user6: a
	// larger maildrop; user7..: empty, for idle sessions.
	for n := 1; n <= 4; n++ {
		corpus(t, bench.CorpusOptions{Dirs: []string{filepath.Join(root, "user"+strconv.Itoa(n))}, Count: 12, Seed: uint64(n)})
	}
	corpus(t, bench.CorpusOptions{Dirs: []string{filepath.Join(root, "user5")}, BigSize: 2 << 20, Seed: 5})
	corpus(t, bench.CorpusOptions{Dirs: []string{filepath.Join(root, "user6")}, Count: 1500, Profile: "small", Seed: 6})

	tcfg, certPEM := testenv.ServerTLSConfig(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := maildir.New(maildir.Options{Root: root, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := pop3server.New(pop3server.Options{
		Logger:    quiet,
		Store:     st,
		TLSConfig: tcfg,
		Authenticator: pop3server.AuthenticatorFunc(func(_ context.Context, user, pass string) (string, bool, error) {
			n, ok := strings.CutPrefix(user, "user")
			return user, ok && pass == "pass"+n, nil
		}),
		Limits: pop3server.Limits{AuthFailDelay: -1, MaxConnsPerIP: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{caPool: pool, root: root}
	e.plain = serve(t, srv.Serve, nil)
	e.tls = serve(t, srv.Serve, tcfg)
	t.Cleanup(func() { srv.Close() })

	rs, err := bench.NewRawSender(filepath.Join(root, "user5"))
	if err != nil {
		t.Fatal(err)
	}
	e.rawPlain = serve(t, rs.Serve, nil)
	e.rawTLS = serve(t, rs.Serve, tcfg)
	t.Cleanup(func() { rs.Close() })
	return e
}

func serve(t *testing.T, f func(net.Listener) error, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	go f(ln)
	return addr
}

func corpus(t *testing.T, o bench.CorpusOptions) bench.CorpusStats {
	t.Helper()
	st, err := bench.GenerateCorpus(o)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// run runs a scenario and checks its JSON line.
func run(t *testing.T, scenario string, o bench.Options) *bench.Result {
	t.Helper()
	if o.Duration == 0 {
		o.Duration = time.Second
	}
	if o.ServerPID == 0 {
		o.ServerPID = os.Getpid()
	}
	res, err := bench.Run(context.Background(), scenario, o)
	if err != nil {
		t.Fatalf("%s: %v", scenario, err)
	}
	var line bytes.Buffer
	if err := bench.WriteResult(&line, res); err != nil {
		t.Fatal(err)
	}
	var summary bytes.Buffer
	bench.WriteSummary(&summary, res)
	t.Logf("%s%s", summary.String(), line.String())
	if strings.Count(line.String(), "\n") != 1 {
		t.Fatalf("%s: result is not one line: %q", scenario, line.String())
	}
	var got struct {
		Scenario string  `json:"scenario"`
		Ops      int64   `json:"ops"`
		Errors   int64   `json:"errors"`
		OpsPerS  float64 `json:"ops_per_s"`
		Latency  *struct {
			P50, P90, P99 float64
		} `json:"latency_ms"`
	}
	if err := json.Unmarshal(line.Bytes(), &got); err != nil {
		t.Fatalf("%s: JSON line does not parse: %v", scenario, err)
	}
	if got.Scenario != scenario || got.Ops <= 0 || got.Errors != 0 || got.OpsPerS <= 0 || got.Latency == nil {
		t.Fatalf("%s: want ops > 0 and no errors, got %s", scenario, line.String())
	}
	return res
}

func TestScenariosSmoke(t *testing.T) {
	e := startEnv(t)
	users := func(first, n int) bench.Credentials {
		return bench.Credentials{User: "user%d", Pass: "pass%d", N: n, First: first}
	}
	tlsCfg := &tls.Config{RootCAs: e.caPool}
	var all []*bench.Result

	t.Run("sessions", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			mode   pop3client.TLSMode
			addr   string
			resume bool
		}{
			{"plain", pop3client.TLSNone, e.plain, false},
			{"stls", pop3client.TLSStartTLS, e.plain, false},
			{"tls", pop3client.TLSImplicit, e.tls, false},
			{"tls-resumed", pop3client.TLSImplicit, e.tls, true},
		} {
			res := run(t, "sessions", bench.Options{
				Addr: c.addr, TLS: c.mode, TLSConfig: tlsCfg, Resume: c.resume,
				Users: users(1, 4), Concurrency: 4, Name: "sessions-" + c.name, Label: "postie",
			})
			if c.resume && (res.ResumedRatio == nil || *res.ResumedRatio == 0) {
				t.Errorf("sessions %s: no handshake was resumed", c.name)
			}
			all = append(all, res)
		}
	})
	t.Run("retr", func(t *testing.T) {
		all = append(all, run(t, "retr", bench.Options{Addr: e.plain, Users: users(1, 4), Concurrency: 2, Name: "retr-corpus", Label: "postie"}))
	})
	t.Run("bigretr", func(t *testing.T) {
		for _, c := range []struct {
			name, label, addr string
			mode              pop3client.TLSMode
		}{
			{"bigretr-plain", "postie", e.plain, pop3client.TLSNone},
			{"bigretr-plain", "raw", e.rawPlain, pop3client.TLSNone},
			{"bigretr-tls", "postie", e.tls, pop3client.TLSImplicit},
			{"bigretr-tls", "raw", e.rawTLS, pop3client.TLSImplicit},
		} {
			res := run(t, "bigretr", bench.Options{Addr: c.addr, TLS: c.mode, TLSConfig: tlsCfg, Users: users(5, 1), Name: c.name, Label: c.label})
			if res.Bytes < 2<<20 {
				t.Errorf("%s %s: %d octets retrieved", c.name, c.label, res.Bytes)
			}
			all = append(all, res)
		}
	})
	t.Run("idle", func(t *testing.T) {
		res := run(t, "idle", bench.Options{Addr: e.plain, Users: users(7, 40), Sessions: 40, Hold: time.Second, Name: "idle", Label: "postie"})
		if res.Idle == nil || res.Idle.Open != 40 || res.Idle.AliveAfterHold != 40 {
			t.Errorf("idle: %+v", res.Idle)
		}
		if runtime.GOOS == "linux" && (res.Idle.RSSAfter == 0 || res.Idle.MemoryNote != "") {
			t.Errorf("idle: memory not read from /proc: %+v", res.Idle)
		}
		all = append(all, res)
	})
	t.Run("bigbox", func(t *testing.T) {
		res := run(t, "bigbox", bench.Options{Addr: e.plain, Users: users(6, 1), Rounds: 3, Name: "bigbox-warm", Label: "postie"})
		if res.BigBox == nil || res.BigBox.Messages != 1500 || len(res.BigBox.Rounds) != 3 {
			t.Errorf("bigbox: %+v", res.BigBox)
		}
		all = append(all, res)
	})

	var table bytes.Buffer
	bench.Report(&table, all)
	t.Logf("\n%s", table.String())
	for _, name := range []string{"sessions-tls-resumed", "retr-corpus", "bigretr-tls", "idle", "bigbox-warm"} {
		if !strings.Contains(table.String(), "| "+name+" |") {
			t.Errorf("report has no row for %s", name)
		}
	}
}

func TestListenerPID(t *testing.T) {
	if _, err := os.ReadFile("/proc/net/tcp"); err != nil {
		t.Skip("needs Linux's /proc:", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, err := bench.ListenerPID(ln.Addr().String())
	if err != nil || pid != os.Getpid() {
		t.Fatalf("ListenerPID = %d, %v; want %d", pid, err, os.Getpid())
	}
}

// TestCorpus checks the corpus is reproducible and its names carry the
// sizes a server will send.
func TestCorpus(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	st := corpus(t, bench.CorpusOptions{Dirs: []string{a, b}, Count: 60, Seed: 42, BigSize: 1 << 20})
	if st.Messages != 61 || st.CRLF == 0 || st.DotLines == 0 || st.Attachment == 0 {
		t.Errorf("corpus lacks variety: %+v", st)
	}
	again := t.TempDir()
	corpus(t, bench.CorpusOptions{Dirs: []string{again}, Count: 60, Seed: 42, BigSize: 1 << 20})
	ents, err := os.ReadDir(filepath.Join(a, "new"))
	if err != nil || len(ents) != 61 {
		t.Fatalf("%d files, %v", len(ents), err)
	}
	var wireTotal int64
	for _, e := range ents {
		x, _ := os.ReadFile(filepath.Join(a, "new", e.Name()))
		y, _ := os.ReadFile(filepath.Join(b, "new", e.Name()))
		z, err := os.ReadFile(filepath.Join(again, "new", e.Name()))
		if err != nil || !bytes.Equal(x, y) || !bytes.Equal(x, z) {
			t.Fatalf("%s differs between copies or runs (%v)", e.Name(), err)
		}
		ws, _ := wire.WireSize(bytes.NewReader(x))
		wireTotal += ws
		want := ",S=" + strconv.Itoa(len(x)) + ",W=" + strconv.FormatInt(ws, 10) + ",D="
		_, d, ok := strings.Cut(e.Name(), want)
		if !ok {
			t.Errorf("%s: want %s", e.Name(), want)
			continue
		}
		// D=: the lines beginning with '.', and where there are at
		// most four, where each one's '.' is.
		lines := bytes.Count(x, []byte("\n."))
		if len(x) > 0 && x[0] == '.' {
			lines++
		}
		fields := strings.Split(d, ".")
		if fields[0] != strconv.Itoa(lines) || lines <= 4 && len(fields) != lines+1 || lines > 4 && len(fields) != 1 {
			t.Errorf("%s: %d lines begin with a dot", e.Name(), lines)
		}
		for _, f := range fields[1:] {
			o, _ := strconv.Atoi(f)
			if o >= len(x) || x[o] != '.' || o > 0 && x[o-1] != '\n' {
				t.Errorf("%s: no line begins with a dot at %d", e.Name(), o)
			}
		}
	}
	if wireTotal != st.WireBytes {
		t.Errorf("wire total %d, stats say %d", wireTotal, st.WireBytes)
	}

	// BigCRLF: the big message in wire form, file size = wire size.
	c := t.TempDir()
	corpus(t, bench.CorpusOptions{Dirs: []string{c}, Count: 0, Seed: 42, BigSize: 1 << 20, BigCRLF: true})
	ents, err = os.ReadDir(filepath.Join(c, "new"))
	if err != nil || len(ents) != 1 {
		t.Fatalf("%d files, %v", len(ents), err)
	}
	x, _ := os.ReadFile(filepath.Join(c, "new", ents[0].Name()))
	if n := strconv.Itoa(len(x)); !strings.Contains(ents[0].Name(), ",S="+n+",W="+n+",D=") || bytes.Count(x, []byte("\n")) != bytes.Count(x, []byte("\r\n")) {
		t.Errorf("the big message with CRLF: %s", ents[0].Name())
	}
}

// TestCorpusOwners: Owners gives each Maildir its owner, and leaves the
// others the caller's: postie trusts the ",D=" field of a name only in a
// file of its own, so a postie layout given to Dovecot's user would be
// sent the slow way and the big RETR figures would not be postie's.
func TestCorpusOwners(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	mine, theirs := t.TempDir(), t.TempDir()
	other := &bench.Owner{UID: 4242, GID: 4243}
	corpus(t, bench.CorpusOptions{Dirs: []string{mine, theirs}, Owners: []*bench.Owner{nil, other}, Count: 3, Seed: 7, Profile: "small"})
	for _, c := range []struct {
		dir      string
		uid, gid int
	}{{mine, 0, 0}, {theirs, other.UID, other.GID}} {
		n := 0
		err := filepath.WalkDir(c.dir, func(p string, _ fs.DirEntry, err error) error {
			if err != nil || p == c.dir {
				return err
			}
			st, err := os.Lstat(p)
			if err != nil {
				return err
			}
			sys := st.Sys().(*syscall.Stat_t)
			if int(sys.Uid) != c.uid || int(sys.Gid) != c.gid {
				t.Errorf("%s: owner %d:%d, want %d:%d", p, sys.Uid, sys.Gid, c.uid, c.gid)
			}
			n++
			return nil
		})
		if err != nil || n != 3+3 { // cur, new, tmp and 3 messages
			t.Errorf("%s: %d entries, %v", c.dir, n, err)
		}
	}
}
