package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/fetch"
	"github.com/postie-mail/postie/internal/testenv"
)

// TestListenLMTPFlag: --listen-lmtp moves the LMTP listener of serve
// --dev (which stayed on 127.0.0.1:2424 with --listen on a fixed port):
// here to a unix socket, which takes mail.
func TestListenLMTPFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "alice pw")
	sock := filepath.Join(dir, "lmtp.sock")
	s := testenv.StartPostie(t, testenv.PostieOptions{Dev: true, Dir: dir, Args: []string{"--listen-lmtp", "unix:" + sock}})
	if got := s.LMTP; got != "unix:"+sock {
		t.Errorf("LMTP listens on %s, want unix:%s", got, sock)
	}
	if n := strings.Count(s.Log(), "proto=lmtp"); n != 1 {
		t.Errorf("%d LMTP listeners, want 1", n)
	}
	lmtpDeliver(t, "unix:"+sock, "alice@localhost", "Subject: hi\r\n\r\nhello\r\n")
	s.Stop(t, syscall.SIGTERM, time.Minute)

	for _, bad := range []string{"nonsense", "127.0.0.1:99999", "unix:"} {
		r := mustPostie(t, 64, "", dev(dir, "serve", "--listen", "127.0.0.1:0", "--listen-lmtp", bad)...)
		if !strings.HasPrefix(r.stderr, "postie: --listen-lmtp: config: lmtp.listen: ") {
			t.Errorf("--listen-lmtp %q: stderr %q", bad, r.stderr)
		}
	}
}

// TestFetchDebugLevel: the protocol trace of fetch --debug is logged at
// level TRACE, not slog's DEBUG-4; the password never appears.
func TestFetchDebugLevel(t *testing.T) {
	t.Parallel()
	p := startPOP(t)
	dir := t.TempDir()
	cfg := fetchConfig(t, dir, p.addr)
	r := mustPostie(t, 0, "", "fetch", "--once", "--debug", "--config", cfg)
	if !strings.Contains(r.stderr, `level=TRACE msg="pop3 `) {
		t.Errorf("no TRACE protocol lines in:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "DEBUG-4") || strings.Contains(r.stderr, "pass1") {
		t.Errorf("DEBUG-4 or the password in:\n%s", r.stderr)
	}
}

// TestHelpAndReadme holds the README and the help text to the tool: the
// README's command list names every command, its PostgreSQL keys exist,
// and fetch's --config help names the variable fetch reads.
func TestHelpAndReadme(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../../examples/postie.toml")
	if err != nil {
		t.Fatal(err)
	}
	help := mustPostie(t, 0, "", "--help").stdout
	_, cmds, ok := strings.Cut(help, "Available Commands:\n")
	if !ok {
		t.Fatalf("no command list in:\n%s", help)
	}
	cmds, _, _ = strings.Cut(cmds, "\n\n")
	for _, l := range strings.Split(cmds, "\n") {
		name := strings.Fields(l)[0]
		if name != "help" && !regexp.MustCompile(`(?m)^postie `+name+`\b`).Match(readme) {
			t.Errorf("README's command list lacks postie %s", name)
		}
	}
	for _, key := range regexp.MustCompile("`((?:postgres|postie)_(?:dsn|dsn_file|max_conns|lease|timeout))`").FindAllStringSubmatch(string(readme), -1) {
		if !regexp.MustCompile(`(?m)^` + key[1] + ` = `).Match(example) {
			t.Errorf("README names %s, which is no key of examples/postie.toml", key[1])
		}
	}
	if strings.Contains(string(readme), "work with every command") {
		t.Error("README says --dev works with every command; fetch refuses it")
	}
	r := mustPostie(t, 64, "", "fetch", "--dev", "--once")
	if !strings.Contains(r.stderr, "--dev and --data-dir do not apply to fetch") {
		t.Errorf("fetch --dev: %q", r.stderr)
	}
	// bench --help and its commands' help say what is true now: postie
	// serve has TLS (the help once said "until postie serve has TLS
	// settings", of a bench serve that is gone), and the README names
	// the scenarios bench has.
	bh := mustPostie(t, 0, "", "bench", "--help").stdout
	_, scen, _ := strings.Cut(bh, "Scenarios:\n")
	scen, _, _ = strings.Cut(scen, "\n\n")
	var names []string
	for _, l := range strings.Split(scen, "\n") {
		if strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "   ") {
			names = append(names, strings.Fields(l)[0])
		}
	}
	if want := "postie bench SCENARIO [flags]   (" + strings.Join(names, ", ") + ": see postie bench --help)"; len(names) < 5 || !strings.Contains(string(readme), want) {
		t.Errorf("README lacks %q", want)
	}
	for _, sub := range append([]string{""}, append(names, "corpus", "raw-sender", "report")...) {
		args := []string{"bench", "--help"}
		if sub != "" {
			args = []string{"bench", sub, "--help"}
		}
		h := mustPostie(t, 0, "", args...).stdout
		for _, stale := range []string{"TLS settings", "bench serve", "has no TLS"} {
			if strings.Contains(h, stale) {
				t.Errorf("postie %s says %q:\n%s", strings.Join(args, " "), stale, h)
			}
		}
	}
	if !strings.Contains(bh, "postie serve as it\nruns for users") {
		t.Errorf("bench --help does not say that the TLS scenarios measure postie serve:\n%s", bh)
	}
	fh := mustPostie(t, 0, "", "fetch", "--help").stdout
	for _, l := range strings.Split(fh, "\n") {
		if strings.Contains(l, "--config string") && !strings.Contains(l, "$POSTIE_FETCH_CONFIG") {
			t.Errorf("fetch --help: %q does not name $POSTIE_FETCH_CONFIG", l)
		}
	}
}

// recordConn records what the server sends, for reading its TLS records.
type recordConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (r *recordConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.got = append(r.got, p[:n]...)
	r.mu.Unlock()
	return n, err
}

// tlsRecordTypes splits b into TLS records and returns their content
// types (TLS 1.2 sends alerts as type 21 even when encrypted).
func tlsRecordTypes(t *testing.T, b []byte) []byte {
	var types []byte
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("%d bytes after the last whole record", len(b))
		}
		n := 5 + int(b[3])<<8 + int(b[4])
		if len(b) < n {
			t.Fatalf("record of %d bytes cut at %d", n, len(b))
		}
		types = append(types, b[0])
		b = b[n:]
	}
	return types
}

// TestSTLSCloseNotify: a session upgraded with STLS ends, after QUIT, with
// a TLS close_notify alert (openssl s_client reported "unexpected eof"
// since the TCP connection was closed under TLS), as implicit TLS does.
func TestSTLSCloseNotify(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	addr := s.POP3
	roots := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(dir, devCertFile))
	if err != nil || !roots.AppendCertsFromPEM(pem) {
		t.Fatalf("dev certificate: %v", err)
	}
	p := dialPOP3(t, addr)
	p.cmd("+OK", "STLS")
	rc := &recordConn{Conn: p.c}
	tc := tls.Client(rc, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	rc.mu.Lock()
	rc.got = nil // the handshake's records
	rc.mu.Unlock()
	if _, err := tc.Write([]byte("QUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	reply, err := io.ReadAll(tc)
	if !strings.HasPrefix(string(reply), "+OK ") {
		t.Errorf("QUIT: %q", reply)
	}
	if err != nil {
		t.Errorf("reading to the end: %v; want a clean close_notify", err)
	}
	rc.mu.Lock()
	types := tlsRecordTypes(t, rc.got)
	rc.mu.Unlock()
	if len(types) != 2 || types[0] != 23 || types[1] != 21 {
		t.Errorf("records after the handshake: types %v, want [23 21] (the reply, then the close_notify alert)", types)
	}
}

// TestDeliverEmpty: an empty stdin is no message: exit 65 with a 5.6.0
// status for the MTA, and nothing in the maildrop.
func TestDeliverEmpty(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	addUser(t, dir, "alice", "alice pw")
	r := mustPostie(t, 65, "", dev(dir, "deliver", "alice")...)
	if want := "5.6.0 postie: deliver: the message on stdin is empty; nothing delivered\n"; r.stderr != want {
		t.Errorf("stderr %q, want %q", r.stderr, want)
	}
	if files := maildirFiles(t, filepath.Join(dir, "mail", "alice")); len(files) != 0 {
		t.Errorf("maildrop holds %v", files)
	}
	// One empty line is a message (an empty header and body).
	mustPostie(t, 0, "\n", dev(dir, "deliver", "alice")...)
}

// TestDeliverStatusLines: every failure of deliver starts its line with an
// RFC 3463 status that agrees with the exit code (Postfix's pipe(8) lets
// the status decide between bounce and retry): usage errors 5.3.0,
// configuration errors 4.3.5, a user database or store that fails 4.3.0.
func TestDeliverStatusLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	empty := filepath.Join(dir, "empty")
	for _, f := range []string{file, empty} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	config := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("data_dir = \""+filepath.Join(dir, "state")+"\"\n"+body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badDB := config("baddb.toml", "[auth]\npasswd_file = \""+filepath.Join(file, "passwd")+"\"\n")
	badStore := config("badstore.toml", "[storage]\nbackend = \"postgres\"\npostgres_dsn_file = \""+empty+"\"\n")
	missing := filepath.Join(dir, "missing.toml")
	const usage = "Run 'postie deliver --help' for usage.\n"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{dev(dir, "deliver"), 64, "5.3.0 postie: deliver: want exactly one USER or ADDRESS argument, got 0\n" + usage},
		{dev(dir, "deliver", "alice", "bob"), 64, "5.3.0 postie: deliver: want exactly one USER or ADDRESS argument, got 2\n" + usage},
		{dev(dir, "deliver", "--bogus", "alice"), 64, "5.3.0 postie: unknown flag: --bogus\n" + usage},
		{[]string{"deliver", "--dev", "--config", badDB, "alice"}, 64, "5.3.0 postie: --dev and --config cannot be used together\n" + usage},
		{[]string{"deliver", "--config", missing, "alice"}, 78, "4.3.5 postie: config: open " + missing + ": no such file or directory\n"},
		{[]string{"deliver", "--config", badDB, "alice"}, 75, "4.3.0 postie: deliver: user database: mkdir " + file + ": not a directory\n"},
		{[]string{"deliver", "--config", badStore, "alice"}, 75, "4.3.0 postie: deliver: storage.postgres_dsn_file: " + empty + " is empty\n"},
	} {
		r := postie(t, []string{"POSTIE_CONFIG="}, "Subject: x\n\nx\n", tc.args...)
		if r.code != tc.code || r.stderr != tc.want {
			t.Errorf("postie %s: exit %d, stderr %q; want exit %d, %q", strings.Join(tc.args, " "), r.code, r.stderr, tc.code, tc.want)
		}
	}
}

// TestFetchSCRAMRefusedRemembered: postie fetch with auth = "auto" against
// a default postie serve, for a user whose password is stored as ARGON2ID
// (no SCRAM keys). The first run tries SCRAM-SHA-256, is refused (after
// the failed-login delay), and logs in with PLAIN in the same session; the
// runs after it go straight to PLAIN, so the server logs no more failed
// logins. Once the remembered refusal is older than 30 days, SCRAM gets
// one more try.
func TestFetchSCRAMRefusedRemembered(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The default scheme, as postie user add writes it.
	mustPostie(t, 0, "alice pw\n", dev(dir, "user", "add", "--password-stdin", "alice")...)
	s := startServe(t, dir)
	host, port, _ := net.SplitHostPort(s.POP3S)
	cfg := filepath.Join(dir, "fetch.toml")
	if err := os.WriteFile(cfg, []byte(`state_dir = "state"
[[account]]
name = "acct"
server = "`+host+`"
port = `+port+`
tls = "implicit"
ca_file = "`+filepath.Join(dir, devCertFile)+`"
user = "alice"
password_file = "pass"
maildir = "Maildir"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pass"), []byte("alice pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const scram, plain = `msg="pop3 C: AUTH SCRAM-SHA-256 ***"`, `msg="pop3 C: AUTH PLAIN ***"`
	failures := 0
	var r result
	run := func(n int, wantSCRAM bool) {
		t.Helper()
		mustPostie(t, 0, "Subject: "+strconv.Itoa(n)+"\n\nx\n", dev(dir, "deliver", "alice")...)
		r = mustPostie(t, 0, "", "fetch", "--once", "--debug", "--config", cfg)
		if got := strings.Contains(r.stderr, scram); got != wantSCRAM {
			t.Errorf("run %d: tried SCRAM %v, want %v:\n%s", n, got, wantSCRAM, r.stderr)
		}
		if !strings.Contains(r.stderr, plain) || !strings.Contains(r.stdout, "acct: fetched 1 ") {
			t.Errorf("run %d: no PLAIN login or not one message fetched:\nstdout: %s\nstderr: %s", n, r.stdout, r.stderr)
		}
		if wantSCRAM {
			failures++
			if !strings.Contains(r.stderr, `msg="SCRAM-SHA-256 was refused and PLAIN worked: the runs of the next 30 days use PLAIN (set auth = \"plain\" for this account to make it for good)" account=acct`) {
				t.Errorf("run %d: no warning about the refusal:\n%s", n, r.stderr)
			}
		}
		// The server logs a failed login for each SCRAM attempt, none
		// for the others.
		s.WaitLog(t, `msg="session end" session=`+strconv.Itoa(n)+` `)
		if got := strings.Count(s.Log(), `msg="authentication failed"`); got != failures {
			t.Errorf("run %d: the server logged %d failed logins, want %d", n, got, failures)
		}
	}
	status := filepath.Join(dir, "state", "acct.status")
	// postie fetch status says what is remembered, and until when: its
	// line is the run's summary, then the SASL note, read from the
	// status file (only how long ago is not known in advance).
	checkStatus := func(when string, wantSASL bool) {
		t.Helper()
		data, err := os.ReadFile(status)
		if err != nil {
			t.Fatal(err)
		}
		var st fetch.Status
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatal(err)
		}
		fetched := strings.TrimSuffix(strings.TrimPrefix(r.stdout, "acct: "), ", errors 0\n")
		want := `acct: last run ` + regexp.QuoteMeta(st.Time.Local().Format(time.DateTime)) + ` \(\S+ ago\): ` + regexp.QuoteMeta(fetched)
		if wantSASL {
			want += regexp.QuoteMeta("; SASL: SCRAM refused on " + st.SCRAMRefused.Local().Format(time.DateTime) +
				", using PLAIN until " + st.SCRAMRefused.Add(30*24*time.Hour).Local().Format(time.DateTime))
		}
		out := mustPostie(t, 0, "", "fetch", "status", "--config", cfg).stdout
		if !regexp.MustCompile(`^` + want + `\n$`).MatchString(out) {
			t.Errorf("%s: postie fetch status printed\n%q\nwant (regexp)\n%q", when, out, want)
		}
	}
	run(1, true)
	checkStatus("after run 1", true)
	run(2, false)
	run(3, false)
	checkStatus("after run 3", true)
	// A refusal 31 days old is forgotten.
	data, err := os.ReadFile(status)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-31 * 24 * time.Hour).UTC().Format(time.RFC3339)
	data = regexp.MustCompile(`"scram_refused":"[^"]*"`).ReplaceAll(data, []byte(`"scram_refused":"`+old+`"`))
	if err := os.WriteFile(status, data, 0o600); err != nil {
		t.Fatal(err)
	}
	checkStatus("with a refusal 31 days old", false)
	run(4, true)
	run(5, false)
	checkStatus("after run 5", true)
}

// TestServeUTF8Strict: pop3.utf8_strict reaches the server. A message
// with UTF-8 in its header is refused with [UTF8] to a client that did
// not send UTF8, and sent to one that did (RFC 6856 §2.1, §5).
func TestServeUTF8Strict(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := testenv.StartPostie(t, testenv.PostieOptions{Dir: dir, Config: `[pop3]
listen = ["127.0.0.1:0"]
allow_cleartext = true
utf8_strict = true
[lmtp]
listen = ["127.0.0.1:0"]
`, Files: map[string]string{"passwd": "alice:{PLAIN}pw\n"}})
	lmtpDeliver(t, s.LMTP, "alice@localhost", "Subject: \xc3\xa9t\xc3\xa9\r\n\r\nhi\r\n")
	p := dialPOP3(t, s.POP3)
	p.cmd("+OK", "USER alice")
	p.cmd("+OK", "PASS pw")
	if got, want := p.cmd("-ERR", "RETR 1"), "-ERR [UTF8] message has UTF-8 header fields; log in again and send UTF8 before USER or AUTH"; got != want {
		t.Errorf("RETR outside UTF-8 mode: %q, want %q", got, want)
	}
	p.cmd("+OK", "QUIT")
	p = dialPOP3(t, s.POP3)
	p.cmd("+OK", "UTF8")
	p.cmd("+OK", "USER alice")
	p.cmd("+OK", "PASS pw")
	p.cmd("+OK", "RETR 1")
}
