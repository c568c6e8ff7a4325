package testenv

// The real postie binary, for end-to-end tests: built once per test
// binary, started as `postie serve` with a config in a temporary
// directory, waited for by its log, and always stopped at cleanup.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// waitLimit bounds every wait for the server (its start, a log line, its
// exit). It is a guard against hangs, not a speed requirement: a loaded
// machine with the race detector can be slow.
const waitLimit = 2 * time.Minute

// mainRan is set by Run: only then are the built binaries removed.
var mainRan atomic.Bool

// builds holds the binaries built so far, by race detector on or off.
var builds struct {
	sync.Mutex
	m map[bool]*postieBuild
}

type postieBuild struct {
	once     sync.Once
	bin, dir string
	err      error
}

// Run is the body of TestMain for packages whose tests run the postie
// binary: it runs the tests and then removes the binaries they built.
// A TestMain with nothing else to do is
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
func Run(m *testing.M) int {
	mainRan.Store(true)
	code := m.Run()
	builds.Lock()
	defer builds.Unlock()
	for _, b := range builds.m {
		if b.dir != "" {
			os.RemoveAll(b.dir)
		}
	}
	return code
}

// Main is a TestMain that only calls Run.
func Main(m *testing.M) { os.Exit(Run(m)) }

// PostieBinary returns the postie command, built on first use for this
// test binary, with the race detector when the tests run with it.
func PostieBinary(t testing.TB) string {
	t.Helper()
	return postieBinary(t, raceEnabled)
}

// PostieBinaryNoRace is PostieBinary without the race detector even under
// -race, for tests the race runtime would distort: its limit of 8128 live
// goroutines, its memory, or its speed where a test times kills.
func PostieBinaryNoRace(t testing.TB) string {
	t.Helper()
	return postieBinary(t, false)
}

func postieBinary(t testing.TB, race bool) string {
	t.Helper()
	if !mainRan.Load() {
		t.Fatal("testenv: the package's TestMain must call testenv.Run (or be testenv.Main), which removes the postie binary it builds")
	}
	builds.Lock()
	if builds.m == nil {
		builds.m = map[bool]*postieBuild{}
	}
	b := builds.m[race]
	if b == nil {
		b = &postieBuild{}
		builds.m[race] = b
	}
	builds.Unlock()
	b.once.Do(func() {
		var flags []string
		if race {
			flags = append(flags, "-race")
		}
		b.bin, b.dir, b.err = buildPostie(flags...)
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.bin
}

// buildPostie builds the postie command (go build, plus flags such as
// "-race") into a new temporary directory that every user can reach: a
// server may run as another user.
func buildPostie(flags ...string) (bin, dir string, err error) {
	dir, err = os.MkdirTemp("", "postie-bin-")
	if err != nil {
		return "", "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", "", err
	}
	bin = filepath.Join(dir, "postie")
	args := append(append([]string{"build", "-o", bin}, flags...), "github.com/postie-mail/postie/cmd/postie")
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, dir, nil
}

// PostieEnv is the environment of every postie the tests run: the test's
// without POSTIE_CONFIG (a developer's own config must not leak in), plus
// extra.
func PostieEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "POSTIE_CONFIG=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// PostieCommand is exec.Command for the postie binary (PostieBinary) with
// PostieEnv, for the commands a test runs to completion or manages itself.
// The process is killed if the test binary dies first (Linux).
func PostieCommand(t testing.TB, args ...string) *exec.Cmd {
	t.Helper()
	return postieCommand(PostieBinary(t), args...)
}

func postieCommand(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = PostieEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	SetDeathSignal(cmd.SysProcAttr)
	return cmd
}

// PostieResult is the outcome of a postie command run to completion.
type PostieResult struct {
	Stdout, Stderr string
	Code           int // the exit code; -1 when a signal ended it
}

// RunPostieCommand runs cmd (from PostieCommand or Postie.Command) with
// stdin and returns its output and exit code. It fails the test when the
// command cannot run or does not end within a few minutes.
func RunPostieCommand(t testing.TB, cmd *exec.Cmd, stdin string) PostieResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("postie %s: %v", strings.Join(cmd.Args[1:], " "), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	go func() {
		<-ctx.Done()
		if ctx.Err() == context.DeadlineExceeded {
			cmd.Process.Kill()
		}
	}()
	err := cmd.Wait()
	r := PostieResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("postie %s: still running after %v\nstderr: %s", strings.Join(cmd.Args[1:], " "), waitLimit, r.Stderr)
	case err == nil:
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	default:
		t.Fatalf("postie %s: %v\nstderr: %s", strings.Join(cmd.Args[1:], " "), err, r.Stderr)
	}
	return r
}

// PostieOptions say how to run `postie serve`.
type PostieOptions struct {
	// Config is the configuration file: TOML text (a string or []byte),
	// or a value the TOML encoder takes (a config.Config, a map). Without
	// data_dir the state is kept in Dir. Every listener it names must be
	// on port 0 (or a Unix socket): a fixed port is shared with whatever
	// else runs on the machine, and fails the test. pop3.listen and
	// lmtp.listen must be given, as their defaults are fixed ports.
	// Without a [server] table, server.user = "root" is added when the
	// tests run as root (serve refuses root without server.user).
	Config any
	// Dev runs `postie serve --dev` with its state in Dir and every
	// listener on 127.0.0.1:0, instead of a config file.
	Dev bool
	// Dir is the directory of the config file, the Files and (by
	// default) the state; a new t.TempDir when empty.
	Dir string
	// Files are written into Dir (mode 0600) before the server starts:
	// certificates, a passwd file.
	Files map[string]string
	// Args are more arguments of `postie serve`.
	Args []string
	// Env is added to the server's environment.
	Env []string
	// NoRace runs the binary built without the race detector (see
	// PostieBinaryNoRace).
	NoRace bool
	// Credential runs the server as another user; the config file is
	// then readable by all.
	Credential *syscall.Credential
}

// Postie is the real `postie serve`, started by StartPostie (or NewPostie
// and Start). Its process is always stopped when the test ends; when the
// test failed, the end of each run's output goes to the test log.
type Postie struct {
	Dir    string // see PostieOptions.Dir
	Config string // the config file; "" with Dev
	Bin    string // the binary

	// Credential runs the server as another user from the next Start
	// (PostieOptions.Credential at first).
	Credential *syscall.Credential

	// The first address of each kind of listener of the current run
	// ("host:port", or "unix:/path" for LMTP), "" when there is none.
	POP3, POP3S, LMTP, SMTP, Admin, Web string

	opts PostieOptions
	runs []*postieRun // the last is the current one
}

// postieRun is one process of a Postie.
type postieRun struct {
	cmd            *exec.Cmd
	stdout, stderr logBuffer
	done           chan struct{} // closed when the process has exited and its output is read
	err            error         // of Wait, once done is closed
	ready          chan struct{} // closed at "postie started"
	mu             sync.Mutex
	listeners      map[string][]string // proto → addresses, in the order logged
}

var (
	listeningRE = regexp.MustCompile(`msg=listening proto=(\S+) addr=(\S+)`)
	startedRE   = regexp.MustCompile(`msg="postie started"`)
)

// StartPostie writes the config, starts `postie serve` and waits until it
// is ready (see Start). The caller then reads the
// addresses from its fields.
func StartPostie(t testing.TB, o PostieOptions) *Postie {
	t.Helper()
	p := NewPostie(t, o)
	p.Start(t)
	return p
}

// NewPostie prepares a server without starting it: the config and Files
// are written, so that the test can add users (Run) or mail first.
func NewPostie(t testing.TB, o PostieOptions) *Postie {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	p := &Postie{Dir: o.Dir, opts: o, Credential: o.Credential}
	if o.NoRace {
		p.Bin = PostieBinaryNoRace(t)
	} else {
		p.Bin = PostieBinary(t)
	}
	for name, data := range o.Files {
		if err := os.WriteFile(filepath.Join(o.Dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if !o.Dev {
		text := configText(t, o.Config, o.Dir)
		p.Config = filepath.Join(o.Dir, "postie.toml")
		mode := os.FileMode(0o600) // it may hold a DSN with a password
		if o.Credential != nil {
			mode = 0o644 // the server's user must read it
		}
		if err := os.WriteFile(p.Config, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	} else if o.Config != nil {
		t.Fatal("testenv: PostieOptions: Dev and Config both set")
	}
	t.Cleanup(func() {
		if r := p.current(); r != nil && !r.exited() {
			r.cmd.Process.Kill()
			<-r.done
		}
		if t.Failed() {
			for i, r := range p.runs {
				t.Logf("postie serve, run %d of %d (%v): stdout:\n%s\nstderr:\n%s", i+1, len(p.runs), r.err,
					tail(r.stdout.String(), 8<<10), tail(r.stderr.String(), 32<<10))
			}
		}
	})
	return p
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// configText turns PostieOptions.Config into the file's text, checked for
// fixed ports, with data_dir set to dir when it has none.
func configText(t testing.TB, cfg any, dir string) string {
	t.Helper()
	var text string
	switch c := cfg.(type) {
	case nil:
	case string:
		text = c
	case []byte:
		text = string(c)
	default:
		b, err := toml.Marshal(c)
		if err != nil {
			t.Fatalf("testenv: encoding the config: %v", err)
		}
		text = string(b)
	}
	var m map[string]any
	if _, err := toml.Decode(text, &m); err != nil {
		t.Fatalf("testenv: the config is not TOML: %v\n%s", err, text)
	}
	if os.Geteuid() == 0 {
		// serve refuses root without server.user; the tests' state
		// belongs to root, so they keep it (a non-root run ignores this).
		switch srv, ok := m["server"].(map[string]any); {
		case !ok:
			text += "\n[server]\nuser = \"root\"\n"
		case srv["user"] == nil || srv["user"] == "":
			srv["user"] = "root"
			b, err := toml.Marshal(m)
			if err != nil {
				t.Fatalf("testenv: encoding the config: %v", err)
			}
			text = string(b)
		}
	}
	if _, ok := m["data_dir"]; !ok {
		text = fmt.Sprintf("data_dir = %q\n", dir) + text
	}
	table := func(name string) map[string]any {
		v, _ := m[name].(map[string]any)
		return v
	}
	if l, _ := table("log")["level"].(string); l == "warn" || l == "error" {
		t.Fatalf("testenv: log.level %q hides the listening lines the harness waits for: use info or debug", l)
	}
	if f, _ := table("log")["format"].(string); f != "" && f != "text" {
		t.Fatalf("testenv: log.format %q: the harness reads the text format", f)
	}
	for _, key := range []string{"pop3.listen", "pop3.listen_tls", "lmtp.listen", "smtp.listen", "admin.listen", "web.listen"} {
		tab, k, _ := strings.Cut(key, ".")
		v, ok := table(tab)[k]
		if !ok {
			if key == "pop3.listen" || key == "lmtp.listen" {
				t.Fatalf("testenv: the config must set %s: its default is a fixed port", key)
			}
			continue
		}
		var addrs []any
		switch v := v.(type) {
		case []any:
			addrs = v
		default:
			addrs = []any{v}
		}
		for _, a := range addrs {
			s, _ := a.(string)
			if s != "" && !strings.HasPrefix(s, "unix:") && !strings.HasSuffix(s, ":0") {
				t.Fatalf("testenv: %s = %q is a fixed port: use 127.0.0.1:0, the harness learns the real one from the log", key, s)
			}
		}
	}
	return text
}

func (p *Postie) current() *postieRun {
	if len(p.runs) == 0 {
		return nil
	}
	return p.runs[len(p.runs)-1]
}

// Start runs `postie serve` and waits until it is ready: it logged every
// listener and "postie started" (and with Dev printed its banner). It fails the test if the process exits
// first. A Postie may be started again once its process has ended (Kill,
// Stop): the state in Dir is kept, the addresses are new.
func (p *Postie) Start(t testing.TB) {
	t.Helper()
	if r := p.current(); r != nil && !r.exited() {
		t.Fatal("testenv: Postie.Start: already running")
	}
	args := []string{"serve"}
	if p.opts.Dev {
		args = append(args, "--dev", "--data-dir", p.Dir, "--listen", "127.0.0.1:0")
	} else {
		args = append(args, "--config", p.Config)
	}
	r := &postieRun{done: make(chan struct{}), ready: make(chan struct{}), listeners: map[string][]string{}}
	r.cmd = postieCommand(p.Bin, append(args, p.opts.Args...)...)
	r.cmd.Env = append(r.cmd.Env, p.opts.Env...)
	r.cmd.Dir = p.Dir
	r.cmd.SysProcAttr.Credential = p.Credential
	r.cmd.Stdout = &r.stdout
	r.cmd.Stderr = &r.stderr
	r.stderr.onLine = r.logLine
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting postie serve: %v", err)
	}
	p.runs = append(p.runs, r)
	go func() { r.err = r.cmd.Wait(); close(r.done) }()
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	select {
	case <-r.ready:
	case <-r.done:
		select {
		case <-r.ready: // ready, then gone: the caller will see it
		default:
			t.Fatalf("postie serve exited (%v) before it was ready:\n%s", r.err, r.stderr.String())
		}
	case <-timer.C:
		t.Fatalf("postie serve not ready after %v:\n%s", waitLimit, r.stderr.String())
	}
	if p.opts.Dev {
		// --dev prints its banner after the start was logged.
		r.stdout.wait(t, `Stop with Ctrl-C`, r, "print")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	first := func(proto string) string {
		if a := r.listeners[proto]; len(a) > 0 {
			return a[0]
		}
		return ""
	}
	p.POP3, p.POP3S, p.LMTP, p.SMTP, p.Admin, p.Web = first("pop3"), first("pop3s"), first("lmtp"), first("smtp"), first("admin"), first("web")
}

// logLine reads the listeners and the start from the server's log.
func (r *postieRun) logLine(line string) {
	if m := listeningRE.FindStringSubmatch(line); m != nil {
		r.mu.Lock()
		r.listeners[m[1]] = append(r.listeners[m[1]], m[2])
		r.mu.Unlock()
	}
	if startedRE.MatchString(line) {
		select {
		case <-r.ready:
		default:
			close(r.ready)
		}
	}
}

func (r *postieRun) exited() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Addrs returns every address of the current run's listeners of proto
// ("pop3", "pop3s", "lmtp", "smtp", "admin"), in the order they were
// logged.
func (p *Postie) Addrs(proto string) []string {
	r := p.current()
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.listeners[proto]...)
}

// Pid is the process id of the current run.
func (p *Postie) Pid() int { return p.current().cmd.Process.Pid }

// Done is closed when the current run's process has exited.
func (p *Postie) Done() <-chan struct{} { return p.current().done }

// Log returns what the current (or last) run wrote to stderr, its log,
// so far; "" before the first start.
func (p *Postie) Log() string {
	if r := p.current(); r != nil {
		return r.stderr.String()
	}
	return ""
}

// Stdout is Log for stdout (the --dev banner).
func (p *Postie) Stdout() string {
	if r := p.current(); r != nil {
		return r.stdout.String()
	}
	return ""
}

// WaitLog waits until the current run's log matches re and returns the
// submatches. It fails the test if the process exits without it.
func (p *Postie) WaitLog(t testing.TB, re string) []string {
	t.Helper()
	r := p.current()
	return r.stderr.wait(t, re, r, "log")
}

// WaitStdout is WaitLog for stdout.
func (p *Postie) WaitStdout(t testing.TB, re string) []string {
	t.Helper()
	r := p.current()
	return r.stdout.wait(t, re, r, "print")
}

// Signal sends sig to the current run.
func (p *Postie) Signal(t testing.TB, sig os.Signal) {
	t.Helper()
	if err := p.current().cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to postie serve: %v", sig, err)
	}
}

// Wait waits for the current run to exit and returns the error of its
// exit (nil: exit code 0). It fails the test if the process is still
// running after limit.
func (p *Postie) Wait(t testing.TB, limit time.Duration) error {
	t.Helper()
	r := p.current()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-r.done:
		return r.err
	case <-timer.C:
		t.Fatalf("postie serve still running %v later", limit)
		return nil
	}
}

// Stop sends sig (SIGTERM, SIGINT) and waits for the exit, which must be
// a clean one (code 0) within limit.
func (p *Postie) Stop(t testing.TB, sig os.Signal, limit time.Duration) {
	t.Helper()
	start := time.Now()
	p.Signal(t, sig)
	if err := p.Wait(t, limit); err != nil {
		t.Errorf("postie serve exited with %v after %v, want exit 0", err, sig)
	}
	t.Logf("postie serve stopped by %v in %v", sig, time.Since(start).Round(time.Millisecond))
}

// Kill ends the current run with SIGKILL and waits for it; the test fails
// if the process had ended before.
func (p *Postie) Kill(t testing.TB) {
	t.Helper()
	r := p.current()
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.done
	if ws, ok := r.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Errorf("postie serve ended with %v before the SIGKILL", r.cmd.ProcessState)
	}
}

// Command is PostieCommand for this server's binary, with its config
// (--config, or --dev --data-dir) after args: `p.Command("user", "add",
// "--password-stdin", "alice")`.
func (p *Postie) Command(args ...string) *exec.Cmd {
	if p.opts.Dev {
		args = append(args, "--dev", "--data-dir", p.Dir)
	} else {
		args = append(args, "--config", p.Config)
	}
	cmd := postieCommand(p.Bin, args...)
	cmd.Env = append(cmd.Env, p.opts.Env...)
	cmd.Dir = p.Dir
	return cmd
}

// Run runs Command(args...) to completion with stdin.
func (p *Postie) Run(t testing.TB, stdin string, args ...string) PostieResult {
	t.Helper()
	return RunPostieCommand(t, p.Command(args...), stdin)
}

// MustRun is Run that fails the test unless the command exits 0.
func (p *Postie) MustRun(t testing.TB, stdin string, args ...string) PostieResult {
	t.Helper()
	r := p.Run(t, stdin, args...)
	if r.Code != 0 {
		t.Fatalf("postie %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.Code, r.Stdout, r.Stderr)
	}
	return r
}

// logBuffer collects a child's output; waiters are woken by every write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced at every write
	partial []byte        // the unfinished last line, for onLine
	onLine  func(string)  // called with each complete line
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	b.buf.Write(p)
	var lines []string
	if b.onLine != nil {
		b.partial = append(b.partial, p...)
		for {
			i := bytes.IndexByte(b.partial, '\n')
			if i < 0 {
				break
			}
			lines = append(lines, string(b.partial[:i]))
			b.partial = b.partial[i+1:]
		}
	}
	if b.changed != nil {
		close(b.changed)
		b.changed = nil
	}
	b.mu.Unlock()
	for _, l := range lines {
		b.onLine(l)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// snapshot returns the text and a channel closed at the next write.
func (b *logBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed == nil {
		b.changed = make(chan struct{})
	}
	return b.buf.String(), b.changed
}

func (b *logBuffer) wait(t testing.TB, re string, r *postieRun, what string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timer := time.NewTimer(waitLimit)
	defer timer.Stop()
	for {
		text, changed := b.snapshot()
		if m := rx.FindStringSubmatch(text); m != nil {
			return m
		}
		select {
		case <-changed:
		case <-r.done:
			// The output is complete once the process is waited for.
			if m := rx.FindStringSubmatch(b.String()); m != nil {
				return m
			}
			t.Fatalf("postie serve exited (%v) before it would %s %q", r.err, what, re)
		case <-timer.C:
			t.Fatalf("postie serve did not %s %q within %v", what, re, waitLimit)
		}
	}
}
