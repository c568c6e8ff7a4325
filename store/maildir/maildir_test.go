package maildir

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/store"
	"github.com/postie-mail/postie/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := newTestStore(t, "mail.example.org")
		return s
	})
}

// TestStoreLongHostname runs the suite with names whose UIDs must be hashed.
func TestStoreLongHostname(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, _ := newTestStore(t, strings.Repeat("very-long-host.", 8)+"example")
		return s
	})
}

// newTestStore returns a store in a fresh root and the buffer its log goes to.
func newTestStore(t *testing.T, host string) (*Store, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	s, err := New(Options{
		Root:     t.TempDir(),
		Hostname: host,
		Logger:   slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func mustDeliver(t *testing.T, s *Store, user, body string) store.DeliveryInfo {
	t.Helper()
	info, err := s.Deliver(t.Context(), user, strings.NewReader(body))
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	return info
}

func mustOpen(t *testing.T, s *Store, user string) store.Maildrop {
	t.Helper()
	md, err := s.Open(t.Context(), user)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return md
}

func readMsg(t *testing.T, md store.Maildrop, i int) (string, error) {
	t.Helper()
	r, err := md.Open(t.Context(), i)
	if err != nil {
		return "", err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %d: %v", i, err)
	}
	return string(b), nil
}

func infos(md store.Maildrop) []store.MessageInfo { return slices.Clone(md.Messages()) }

// writeFile creates a message file as another program would.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func wireSizeOf(s string) int64 {
	n, err := wire.WireSize(strings.NewReader(s))
	if err != nil {
		panic(err)
	}
	return n
}

func TestNew(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without Root succeeded")
	}
	if _, err := New(Options{Root: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("New with a missing Root succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	writeFile(t, f, "")
	if _, err := New(Options{Root: f}); err == nil {
		t.Error("New with a file as Root succeeded")
	}
	s, err := New(Options{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if s.host == "" || s.log == nil {
		t.Errorf("defaults not set: host %q log %v", s.host, s.log)
	}
}

func TestUserNames(t *testing.T) {
	s, _ := newTestStore(t, "h")
	bad := []string{"", ".", "..", "../x", "a/b", "/abs", `a\b`, "a\x00b", "a\nb", "a\tb", "a\x7fb", ".hidden", strings.Repeat("a", 256)}
	for _, u := range bad {
		if _, err := s.Path(u); !errors.Is(err, store.ErrBadUser) {
			t.Errorf("Path(%q): %v, want ErrBadUser", u, err)
		}
	}
	good := []string{"alice", "user@example.com", "a.b", "a..b", "ü", "x.", strings.Repeat("a", 255)}
	for _, u := range good {
		p, err := s.Path(u)
		if err != nil {
			t.Errorf("Path(%q): %v", u, err)
			continue
		}
		if p != filepath.Join(s.root, u) {
			t.Errorf("Path(%q) = %q", u, p)
		}
		mustDeliver(t, s, u, "x\n")
		md := mustOpen(t, s, u)
		if n := len(md.Messages()); n != 1 {
			t.Errorf("%q: %d messages", u, n)
		}
		md.Close()
	}
}

// TestDeliverLayout checks the names, modes and places Deliver uses.
func TestDeliverLayout(t *testing.T) {
	s, _ := newTestStore(t, "mx.example.org")
	body := ".Subject: hi\n\nline\n..x.\n. y\n"
	info := mustDeliver(t, s, "alice", body)
	dir, _ := s.Path("alice")
	for _, sub := range []string{"", "cur", "new", "tmp"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 || !fi.IsDir() {
			t.Errorf("%s: mode %v", sub, fi.Mode())
		}
	}
	if n := names(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ not empty: %q", n)
	}
	n := names(t, filepath.Join(dir, "new"))
	if len(n) != 1 {
		t.Fatalf("new/ = %q", n)
	}
	re := regexp.MustCompile(`^(\d{10,}\.M\d{6}P\d+Q\d+R[0-9a-f]{8}\.mx\.example\.org),S=(\d+),W=(\d+),D=([0-9.]+)$`)
	m := re.FindStringSubmatch(n[0])
	if m == nil {
		t.Fatalf("new/%s does not match %v", n[0], re)
	}
	if m[1] != info.UID {
		t.Errorf("UID %q, want the unique name %q", info.UID, m[1])
	}
	if m[2] != fmt.Sprint(len(body)) || m[3] != fmt.Sprint(wireSizeOf(body)) || m[4] != "3.0.19.24" || info.Size != wireSizeOf(body) {
		t.Errorf("name %s, size %d; body %d octets, wire %d", n[0], info.Size, len(body), wireSizeOf(body))
	}
	fi, err := os.Stat(filepath.Join(dir, "new", n[0]))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("message mode %v", fi.Mode())
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "new", n[0])); string(got) != body {
		t.Errorf("file holds %q", got)
	}
}

func TestHostnameEscaped(t *testing.T) {
	s, _ := newTestStore(t, "a/b:c,d e\\")
	info := mustDeliver(t, s, "alice", "x\n")
	if !strings.HasSuffix(info.UID, `.a\057b\072c\054d\040e\134`) {
		t.Errorf("UID %q does not end in the escaped host name", info.UID)
	}
	dir, _ := s.Path("alice")
	if n := names(t, filepath.Join(dir, "new")); len(n) != 1 || !strings.HasPrefix(n[0], info.UID+",S=2,W=3") {
		t.Errorf("new/ = %q", n)
	}
}

// TestDeliverDiskFull: a write error leaves nothing in tmp/, new/ or cur/.
func TestDeliverDiskFull(t *testing.T) {
	s, _ := newTestStore(t, "h")
	mustDeliver(t, s, "alice", "first\n")
	s.wrapTmp = func(w io.Writer) io.Writer { return &fullWriter{w: w, left: 100 << 10} }
	_, err := s.Deliver(t.Context(), "alice", strings.NewReader(strings.Repeat("line of text\n", 50000)))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Deliver on a full disk: %v, want ENOSPC", err)
	}
	dir, _ := s.Path("alice")
	if n := names(t, filepath.Join(dir, "tmp")); len(n) != 0 {
		t.Errorf("tmp/ = %q", n)
	}
	if n := names(t, filepath.Join(dir, "new")); len(n) != 1 {
		t.Errorf("new/ = %q", n)
	}
	if n := names(t, filepath.Join(dir, "cur")); len(n) != 0 {
		t.Errorf("cur/ = %q", n)
	}
}

// fullWriter fails with ENOSPC once left octets are written.
type fullWriter struct {
	w    io.Writer
	left int
}

func (f *fullWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n, _ := f.w.Write(p[:f.left])
		f.left = 0
		return n, &os.PathError{Op: "write", Path: "test", Err: syscall.ENOSPC}
	}
	f.left -= len(p)
	return f.w.Write(p)
}

// TestForeignFileSizeCached: a message without W= is read once; later
// logins take its size from postie-sizes without reading it.
func TestForeignFileSizeCached(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	body1 := "From: postfix\n\nbody\n"
	body2 := "only S=\r\nsecond\n"
	writeFile(t, filepath.Join(dir, "new", "1700000000.V801I1234M5678.mx"), body1)
	writeFile(t, filepath.Join(dir, "new", fmt.Sprintf("1700000001.V801I1235M5679.mx,S=%d", len(body2))), body2)

	md := mustOpen(t, s, "alice")
	want := []store.MessageInfo{
		{UID: "1700000000.V801I1234M5678.mx", Size: wireSizeOf(body1)},
		{UID: "1700000001.V801I1235M5679.mx", Size: wireSizeOf(body2)},
	}
	if got := infos(md); !slices.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	md.Close()
	cache, err := os.ReadFile(filepath.Join(dir, cacheName))
	if err != nil {
		t.Fatal(err)
	}
	wantCache := fmt.Sprintf("postie-sizes 1\n1700000000.V801I1234M5678.mx %d %d\n1700000001.V801I1235M5679.mx %d %d\n",
		wireSizeOf(body1), len(body1), wireSizeOf(body2), len(body2))
	if string(cache) != wantCache {
		t.Errorf("cache file\n%s\nwant\n%s", cache, wantCache)
	}
	before, _ := os.Stat(filepath.Join(dir, cacheName))

	// Change the first file behind our back (different length, same name):
	// the next snapshot must still show the remembered size, proving the
	// file was not read; opening it then sees the change.
	writeFile(t, filepath.Join(dir, "new", "1700000000.V801I1234M5678.mx"), "short\n\n\n\n")
	md = mustOpen(t, s, "alice")
	defer md.Close()
	if got := infos(md); !slices.Equal(got, want) {
		t.Errorf("warm snapshot %v, want %v", got, want)
	}
	after, _ := os.Stat(filepath.Join(dir, cacheName))
	if !os.SameFile(before, after) {
		t.Error("a warm login rewrote the size cache")
	}
	if _, err := readMsg(t, md, 0); !errors.Is(err, store.ErrMessageGone) {
		t.Errorf("Open of a changed message: %v, want ErrMessageGone", err)
	}
	if got, err := readMsg(t, md, 1); err != nil || got != body2 {
		t.Errorf("Open(1) = %q, %v", got, err)
	}
	// The change found is remembered for the next session.
	if cache, _ := os.ReadFile(filepath.Join(dir, cacheName)); !strings.Contains(string(cache), "\n1700000000.V801I1234M5678.mx 13 9\n") {
		t.Errorf("the size cache does not hold the new sizes:\n%s", cache)
	}
}

func TestCachePrunedAndCorrupt(t *testing.T) {
	s, logs := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	writeFile(t, filepath.Join(dir, "new", "1700000000.a.mx"), "a\n")
	writeFile(t, filepath.Join(dir, "new", "1700000001.b.mx"), "bb\n")
	writeFile(t, filepath.Join(dir, cacheName), "postie-sizes 1\nthis is not a cache line\x00\n")

	md := mustOpen(t, s, "alice")
	want := []store.MessageInfo{{UID: "1700000000.a.mx", Size: 3}, {UID: "1700000001.b.mx", Size: 4}}
	if got := infos(md); !slices.Equal(got, want) {
		t.Fatalf("snapshot %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "ignoring size cache") {
		t.Errorf("corrupt cache not logged: %s", logs)
	}
	if err := md.Commit(t.Context(), []int{0}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	md = mustOpen(t, s, "alice")
	md.Close()
	cache, _ := os.ReadFile(filepath.Join(dir, cacheName))
	if want := "postie-sizes 1\n1700000001.b.mx 4 3\n"; string(cache) != want {
		t.Errorf("cache %q, want %q", cache, want)
	}
	if n := names(t, dir); slices.Contains(n, cacheName+".tmp") {
		t.Errorf("temporary cache file left: %q", n)
	}
}

// TestRenamedByOtherProgram: moving new/→cur/ and changing flags keep the
// UIDs, and the session follows the files.
func TestRenamedByOtherProgram(t *testing.T) {
	s, _ := newTestStore(t, "h")
	a := mustDeliver(t, s, "alice", "message a\n")
	b := mustDeliver(t, s, "alice", "message b\n")
	c := mustDeliver(t, s, "alice", "message c\n")
	dir, _ := s.Path("alice")
	md := mustOpen(t, s, "alice")
	want := infos(md)
	md.Close()
	if want[0].UID != a.UID || want[1].UID != b.UID || want[2].UID != c.UID {
		t.Fatalf("snapshot %v", want)
	}

	// A mail reader sees them: new/ → cur/ with info.
	for _, n := range names(t, filepath.Join(dir, "new")) {
		if err := os.Rename(filepath.Join(dir, "new", n), filepath.Join(dir, "cur", n+":2,S")); err != nil {
			t.Fatal(err)
		}
	}
	md = mustOpen(t, s, "alice")
	defer md.Close()
	if got := infos(md); !slices.Equal(got, want) {
		t.Fatalf("after the move to cur/: %v, want %v", got, want)
	}
	// During the session: flags change, and one goes back to new/ (odd, but
	// allowed).
	for _, n := range names(t, filepath.Join(dir, "cur")) {
		to := filepath.Join(dir, "cur", strings.TrimSuffix(n, ":2,S")+":2,RS")
		if strings.HasPrefix(n, b.UID) {
			to = filepath.Join(dir, "new", strings.TrimSuffix(n, ":2,S"))
		}
		if err := os.Rename(filepath.Join(dir, "cur", n), to); err != nil {
			t.Fatal(err)
		}
	}
	for i, body := range []string{"message a\n", "message b\n", "message c\n"} {
		if got, err := readMsg(t, md, i); err != nil || got != body {
			t.Errorf("Open(%d) after rename = %q, %v", i, got, err)
		}
	}
	// Renamed yet again before Commit.
	for _, n := range names(t, filepath.Join(dir, "cur")) {
		if err := os.Rename(filepath.Join(dir, "cur", n), filepath.Join(dir, "cur", strings.TrimSuffix(n, "RS")+"FRS")); err != nil {
			t.Fatal(err)
		}
	}
	if err := md.Commit(t.Context(), []int{0, 1}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()
	md = mustOpen(t, s, "alice")
	if got := infos(md); !slices.Equal(got, want[2:]) {
		t.Errorf("after Commit: %v, want %v", got, want[2:])
	}
}

func TestExternalDeleteAndTruncate(t *testing.T) {
	s, _ := newTestStore(t, "h")
	mustDeliver(t, s, "alice", "will vanish\n")
	mustDeliver(t, s, "alice", "will be truncated\n")
	mustDeliver(t, s, "alice", "stays\n")
	dir, _ := s.Path("alice")
	md := mustOpen(t, s, "alice")
	defer md.Close()
	n := names(t, filepath.Join(dir, "new"))
	slices.Sort(n)
	if err := os.Remove(filepath.Join(dir, "new", n[0])); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, "new", n[1]), 4); err != nil {
		t.Fatal(err)
	}
	if _, err := readMsg(t, md, 0); !errors.Is(err, store.ErrMessageGone) {
		t.Errorf("Open of a deleted message: %v, want ErrMessageGone", err)
	}
	if _, err := readMsg(t, md, 1); !errors.Is(err, store.ErrMessageGone) {
		t.Errorf("Open of a truncated message: %v, want ErrMessageGone", err)
	}
	if got, err := readMsg(t, md, 2); err != nil || got != "stays\n" {
		t.Errorf("Open(2) = %q, %v", got, err)
	}
	// Deleting a message that is already gone is not an error.
	if err := md.Commit(t.Context(), []int{0}); err != nil {
		t.Errorf("Commit of a vanished message: %v", err)
	}
}

// TestCommitPartialFailure: a removal that fails does not stop the others,
// is reported, and leaves its entry alone.
func TestCommitPartialFailure(t *testing.T) {
	s, _ := newTestStore(t, "h")
	for i := range 3 {
		mustDeliver(t, s, "alice", fmt.Sprintf("message %d\n", i))
	}
	dir, _ := s.Path("alice")
	md := mustOpen(t, s, "alice")
	n := names(t, filepath.Join(dir, "new"))
	slices.Sort(n)
	// Message 1 becomes a non-empty directory of the same name: unlink fails.
	victim := filepath.Join(dir, "new", n[1])
	if err := os.Remove(victim); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(victim, "inside"), "keep me")
	err := md.Commit(t.Context(), []int{0, 1, 2})
	if err == nil {
		t.Fatal("Commit succeeded although a removal failed")
	}
	if !strings.Contains(err.Error(), md.Messages()[1].UID) {
		t.Errorf("error does not name the message: %v", err)
	}
	if got := names(t, filepath.Join(dir, "new")); !slices.Equal(got, []string{n[1]}) {
		t.Errorf("new/ = %q, want only %q", got, n[1])
	}
	if b, err := os.ReadFile(filepath.Join(victim, "inside")); err != nil || string(b) != "keep me" {
		t.Errorf("failed entry changed: %q, %v", b, err)
	}
	if err := md.Commit(t.Context(), nil); err == nil {
		t.Error("second Commit succeeded")
	}
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	md = mustOpen(t, s, "alice") // the lock was released
	md.Close()
}

const lockHelperEnv = "POSTIE_MAILDIR_LOCK_HELPER"

// TestLockHelperProcess is not a test: TestLockReleasedOnProcessDeath runs
// the test binary with it to hold a lock in another process.
func TestLockHelperProcess(t *testing.T) {
	root := os.Getenv(lockHelperEnv)
	if root == "" {
		t.Skip("helper process only")
	}
	s, err := New(Options{Root: root})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if _, err := s.Open(t.Context(), "alice"); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	time.Sleep(time.Minute)
	os.Exit(2)
}

func TestLockReleasedOnProcessDeath(t *testing.T) {
	s, _ := newTestStore(t, "h")
	mustDeliver(t, s, "alice", "x\n")
	cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+s.root)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	br := bufio.NewReader(out)
	for {
		line, err := br.ReadString('\n')
		if line == "locked\n" {
			break
		}
		if err != nil {
			t.Fatalf("helper said %q, %v", line, err)
		}
	}
	if md, err := s.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		if md != nil {
			md.Close()
		}
		t.Fatalf("Open while another process holds the lock: %v, want ErrInUse", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	md := mustOpen(t, s, "alice")
	defer md.Close()
	if n := len(md.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

// TestLongHostname: names too long for a UIDL give hashed UIDs, stable
// across sessions and renames.
func TestLongHostname(t *testing.T) {
	s, _ := newTestStore(t, strings.Repeat("x:", 150)+".example") // 750 octets escaped
	info := mustDeliver(t, s, "alice", "x\n")
	if !regexp.MustCompile(`^X[0-9a-f]{40}$`).MatchString(info.UID) {
		t.Fatalf("UID %q is not a hashed one", info.UID)
	}
	dir, _ := s.Path("alice")
	n := names(t, filepath.Join(dir, "new"))
	md := mustOpen(t, s, "alice")
	if got := infos(md); len(got) != 1 || got[0].UID != info.UID {
		t.Errorf("snapshot %v, want UID %q", got, info.UID)
	}
	md.Close()
	if err := os.Rename(filepath.Join(dir, "new", n[0]), filepath.Join(dir, "cur", n[0]+":2,RS")); err != nil {
		t.Fatal(err)
	}
	md = mustOpen(t, s, "alice")
	defer md.Close()
	if got := infos(md); len(got) != 1 || got[0].UID != info.UID || got[0].Size != 3 {
		t.Errorf("after rename: %v, want UID %q", got, info.UID)
	}
}

func TestGarbageNamesIgnored(t *testing.T) {
	s, logs := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	for _, n := range []string{"new/bad\x01name", "new/\xff\xfe", "new/:2,S", "cur/,S=5:2,", "new/tab\there"} {
		writeFile(t, filepath.Join(dir, n), "SECRET CONTENT\n")
	}
	writeFile(t, filepath.Join(dir, "new/.nfs000123"), "SECRET CONTENT\n")
	writeFile(t, filepath.Join(dir, "cur/1700000001.dir/x"), "SECRET CONTENT\n")
	if err := os.Symlink("/etc/passwd", filepath.Join(dir, "cur/1700000002.link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "new/1700000000.good.host"), "good\n")

	md := mustOpen(t, s, "alice")
	defer md.Close()
	if got, want := infos(md), []store.MessageInfo{{UID: "1700000000.good.host", Size: 6}}; !slices.Equal(got, want) {
		t.Errorf("snapshot %v, want %v", got, want)
	}
	warns := strings.Count(logs.String(), "level=WARN msg=\"maildir: ignoring garbage file name\"")
	if warns != 5 {
		t.Errorf("%d garbage warnings, want 5; log:\n%s", warns, logs)
	}
	if strings.Contains(logs.String(), "SECRET") {
		t.Errorf("log shows message content:\n%s", logs)
	}
}

// TestDovecotMaildir: a Maildir Dovecot and Postfix also use.
func TestDovecotMaildir(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	writeFile(t, filepath.Join(dir, "cur", "1700000000.M1P2.host,S=12,W=13:2,S"), "hello world\n")
	writeFile(t, filepath.Join(dir, "new", "1700000001.M5P6.host,S=4,Z=abc"), "abc\n")
	writeFile(t, filepath.Join(dir, "cur", "1700000002.M7P8.host,W=99:2,"), "W= is believed\n")
	writeFile(t, filepath.Join(dir, "new", "1700000003.M9P9.host,part,S=3"), "xy\n")
	writeFile(t, filepath.Join(dir, "dovecot-uidlist"), "3 V1700000000 N5\n1 1700000000.M1P2.host\n")
	writeFile(t, filepath.Join(dir, "dovecot.index"), "\x00\x01")
	writeFile(t, filepath.Join(dir, "dovecot.index.log"), "\x00\x01")
	writeFile(t, filepath.Join(dir, "dovecot-keywords"), "0 $Junk\n")
	writeFile(t, filepath.Join(dir, "maildirfolder"), "")
	writeFile(t, filepath.Join(dir, ".Sent", "cur", "1700000009.M1P1.host:2,S"), "sent\n")
	writeFile(t, filepath.Join(dir, ".Sent", "maildirfolder"), "")

	md := mustOpen(t, s, "alice")
	defer md.Close()
	want := []store.MessageInfo{
		{UID: "1700000000.M1P2.host", Size: 13},
		{UID: "1700000001.M5P6.host", Size: 5},
		{UID: "1700000002.M7P8.host", Size: 99},
		{UID: "1700000003.M9P9.host,part", Size: 4},
	}
	if got := infos(md); !slices.Equal(got, want) {
		t.Errorf("snapshot\n got %v\nwant %v", got, want)
	}
	for i, body := range []string{"hello world\n", "abc\n", "", "xy\n"} {
		if i == 2 {
			continue
		}
		if got, err := readMsg(t, md, i); err != nil || got != body {
			t.Errorf("Open(%d) = %q, %v", i, got, err)
		}
	}
	// W= is believed for the listing, but reading finds the truth: the
	// end of the file is an error rather than a message of the wrong
	// size, and the name is corrected for the next session.
	r, err := md.Open(t.Context(), 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, store.ErrMessageGone) || string(b) != "W= is believed\n" {
		t.Errorf("reading a message whose W= is wrong: %q, %v; want its bytes and ErrMessageGone", b, err)
	}
	md.Close()
	if _, err := os.Stat(filepath.Join(dir, "cur", "1700000002.M7P8.host,W=16,S=15:2,")); err != nil {
		t.Errorf("the name was not corrected: %v", err)
	}
	md = mustOpen(t, s, "alice")
	want[2].Size = 16
	if got := infos(md); !slices.Equal(got, want) {
		t.Errorf("snapshot after the correction\n got %v\nwant %v", got, want)
	}
	if got, err := readMsg(t, md, 2); err != nil || got != "W= is believed\n" {
		t.Errorf("Open(2) after the correction = %q, %v", got, err)
	}
}

// TestSizeChangedIsRelisted: a message whose file another program
// rewrote with a different size, whether its sizes come from its name or
// from postie-sizes, is refused in the session that finds out (never sent
// short), and listed with its new size, under the same UIDL, in the next.
func TestSizeChangedIsRelisted(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	named := filepath.Join(dir, "new", "1700000000.M1P1.host,S=6,W=7")
	bare := filepath.Join(dir, "new", "1700000001.M1P1.host")
	writeFile(t, named, "hello\n")
	writeFile(t, bare, "world\n")
	md := mustOpen(t, s, "alice")
	before := infos(md)
	writeFile(t, named, "hello again\n")
	writeFile(t, bare, "w\n")
	for i := range 2 {
		if _, err := md.Open(t.Context(), i); !errors.Is(err, store.ErrMessageGone) {
			t.Errorf("Open(%d) of a rewritten message: %v, want ErrMessageGone", i, err)
		}
	}
	md.Close()
	md = mustOpen(t, s, "alice")
	defer md.Close()
	want := []store.MessageInfo{{UID: before[0].UID, Size: 13}, {UID: before[1].UID, Size: 3}}
	if got := infos(md); !slices.Equal(got, want) {
		t.Errorf("next snapshot\n got %v\nwant %v", got, want)
	}
	for i, body := range []string{"hello again\n", "w\n"} {
		if got, err := readMsg(t, md, i); err != nil || got != body {
			t.Errorf("Open(%d) = %q, %v", i, got, err)
		}
	}
}

func TestOrderByTimestamp(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	for _, n := range []string{"new/1000000000.b", "cur/999999999.z:2,S", "new/20.c", "new/1000000000.a", "cur/nodigits", "new/99999999999999999999999.big"} {
		writeFile(t, filepath.Join(dir, n), "x\n")
	}
	md := mustOpen(t, s, "alice")
	defer md.Close()
	var got []string
	for _, m := range md.Messages() {
		got = append(got, m.UID)
	}
	want := []string{"nodigits", "20.c", "999999999.z", "1000000000.a", "1000000000.b", "99999999999999999999999.big"}
	if !slices.Equal(got, want) {
		t.Errorf("order %q, want %q", got, want)
	}
}

// TestSameMessageTwice: a message seen in new/ and cur/ (a move caught
// mid-way, or a copy) is listed once; names that only share a UID are
// logged.
func TestSameMessageTwice(t *testing.T) {
	s, logs := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	writeFile(t, filepath.Join(dir, "new/1700000000.x"), "x\n")
	writeFile(t, filepath.Join(dir, "cur/1700000000.x:2,S"), "x\n")
	writeFile(t, filepath.Join(dir, "cur/1700000001.y,S=2:2,S"), "y\n")
	writeFile(t, filepath.Join(dir, "cur/1700000001.y,S=3:2,S"), "yy\n")
	md := mustOpen(t, s, "alice")
	defer md.Close()
	want := []store.MessageInfo{{UID: "1700000000.x", Size: 3}, {UID: "1700000001.y", Size: 3}}
	if got := infos(md); !slices.Equal(got, want) {
		t.Errorf("snapshot %v, want %v", got, want)
	}
	if got, err := readMsg(t, md, 1); err != nil || got != "y\n" {
		t.Errorf("Open(1) = %q, %v", got, err)
	}
	if c := strings.Count(logs.String(), "duplicate UID"); c != 1 {
		t.Errorf("%d duplicate warnings, want 1:\n%s", c, logs)
	}
}

func TestInUseAcrossStores(t *testing.T) {
	s, _ := newTestStore(t, "h")
	// Two Stores over the same root, as two server instances would be.
	s2, err := New(Options{Root: s.root})
	if err != nil {
		t.Fatal(err)
	}
	md := mustOpen(t, s, "alice")
	defer md.Close()
	if _, err := s2.Open(t.Context(), "alice"); !errors.Is(err, store.ErrInUse) {
		t.Errorf("Open through another Store: %v, want ErrInUse", err)
	}
	if _, err := os.Stat(filepath.Join(s.root, "alice", lockName)); err != nil {
		t.Errorf("lock file: %v", err)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		name         string
		ok           bool
		base, unique string
		ts           uint64
		fsize, wsize int64
		dots         string
	}{
		{"1700000000.M1P2.host,S=12,W=13:2,S", true, "1700000000.M1P2.host,S=12,W=13", "1700000000.M1P2.host", 1700000000, 12, 13, ""},
		{"1700000000.M1P2.host,W=13,S=12", true, "1700000000.M1P2.host,W=13,S=12", "1700000000.M1P2.host", 1700000000, 12, 13, ""},
		{"1.a,b,S=1,c:2,", true, "1.a,b,S=1,c", "1.a,b,c", 1, 1, -1, ""},
		{"1.a,S=x,W=-1", true, "1.a,S=x,W=-1", "1.a", 1, -1, -1, ""},
		{"1.a,S=+5", true, "1.a,S=+5", "1.a", 1, -1, -1, ""},
		{"1.a,9=5", true, "1.a,9=5", "1.a,9=5", 1, -1, -1, ""},
		{"plain", true, "plain", "plain", 0, -1, -1, ""},
		{"1.a:2,S:odd", true, "1.a", "1.a", 1, -1, -1, ""},
		{"1.a,S=4,W=6,D=2.0.9:2,S", true, "1.a,S=4,W=6,D=2.0.9", "1.a", 1, 4, 6, "2.0.9"},
		{"1.a,D=x", true, "1.a,D=x", "1.a", 1, -1, -1, "x"},
		{":2,S", false, "", "", 0, 0, 0, ""},
		{",S=1", false, "", "", 0, 0, 0, ""},
		{"a\x7fb", false, "", "", 0, 0, 0, ""},
		{"a\xffb", false, "", "", 0, 0, 0, ""},
	}
	for _, tt := range tests {
		n, ok := parseName(tt.name)
		if ok != tt.ok {
			t.Errorf("parseName(%q) ok = %v", tt.name, ok)
			continue
		}
		if !ok {
			continue
		}
		want := msgName{base: tt.base, unique: tt.unique, ts: tt.ts, fsize: tt.fsize, wsize: tt.wsize, dots: tt.dots}
		if n != want {
			t.Errorf("parseName(%q) = %+v, want %+v", tt.name, n, want)
		}
	}
	if got := uidOf("é.host"); !regexp.MustCompile(`^X[0-9a-f]{40}$`).MatchString(got) || got != uidOf("é.host") {
		t.Errorf("uidOf non-ASCII = %q", got)
	}
	if got := uidOf(strings.Repeat("a", 70)); got != strings.Repeat("a", 70) {
		t.Errorf("uidOf 70 octets = %q", got)
	}
	if got := uidOf(strings.Repeat("a", 71)); len(got) != 41 {
		t.Errorf("uidOf 71 octets = %q", got)
	}
}

// TestFIFOInPlaceOfMessage: a FIFO put where a message was does not hang
// the session.
func TestFIFOInPlaceOfMessage(t *testing.T) {
	s, _ := newTestStore(t, "h")
	mustDeliver(t, s, "alice", "x\n")
	dir, _ := s.Path("alice")
	md := mustOpen(t, s, "alice")
	defer md.Close()
	p := filepath.Join(dir, "new", names(t, filepath.Join(dir, "new"))[0])
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		r, err := md.Open(t.Context(), 0)
		if err == nil {
			r.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, store.ErrMessageGone) {
			t.Errorf("Open of a FIFO: %v, want ErrMessageGone", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open of a FIFO hangs")
	}
}

// TestUpdateJournal: an update journal left by a process killed during
// UPDATE is finished by the next Open, before its snapshot, following
// messages another program moved meanwhile; a damaged one removes nothing.
func TestUpdateJournal(t *testing.T) {
	s, logs := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	for _, n := range []string{"new/1700000000.a,S=2,W=3", "new/1700000001.b,S=2,W=3", "cur/1700000002.c,S=2,W=3:2,S", "new/1700000003.d"} {
		writeFile(t, filepath.Join(dir, n), "x\n")
	}
	md := mustOpen(t, s, "alice")
	md.Close()
	// Killed after the journal, before the removals; b moved to cur/.
	writeFile(t, filepath.Join(dir, journalName), journalHeader+"\n1700000000.a,S=2,W=3\n1700000001.b,S=2,W=3\n1700000002.c,S=2,W=3\n")
	if err := os.Rename(filepath.Join(dir, "new", "1700000001.b,S=2,W=3"), filepath.Join(dir, "cur", "1700000001.b,S=2,W=3:2,S")); err != nil {
		t.Fatal(err)
	}
	md = mustOpen(t, s, "alice")
	if got := infos(md); len(got) != 1 || got[0].UID != "1700000003.d" {
		t.Errorf("after finishing the update: %v, want only 1700000003.d", got)
	}
	md.Close()
	if _, err := os.Stat(filepath.Join(dir, journalName)); !os.IsNotExist(err) {
		t.Errorf("the journal is still there: %v", err)
	}
	if !strings.Contains(logs.String(), "finished an update interrupted by a crash") || !strings.Contains(logs.String(), "removed=3") {
		t.Errorf("not logged:\n%s", logs)
	}

	writeFile(t, filepath.Join(dir, journalName), "something else\n1700000003.d\n")
	md = mustOpen(t, s, "alice")
	defer md.Close()
	if got := infos(md); len(got) != 1 {
		t.Errorf("a damaged journal removed messages: %v", got)
	}
	if !strings.Contains(logs.String(), "ignoring a damaged update journal") {
		t.Errorf("damaged journal not logged:\n%s", logs)
	}
}

// TestCommitJournal: Commit leaves no journal behind, and removes without
// one where it cannot be written (a full disk: removing is the way out).
func TestCommitJournal(t *testing.T) {
	s, logs := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	for _, n := range []string{"new/1700000000.a", "new/1700000001.b", "new/1700000002.c", "new/1700000003.d"} {
		writeFile(t, filepath.Join(dir, n), "x\n")
	}
	md := mustOpen(t, s, "alice")
	if err := md.Commit(t.Context(), []int{0, 2, 0}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	if _, err := os.Stat(filepath.Join(dir, journalName)); !os.IsNotExist(err) {
		t.Errorf("journal left after Commit: %v", err)
	}
	// A directory in the journal's way: it cannot be written.
	if err := os.Mkdir(filepath.Join(dir, journalName+".tmp"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, journalName+".tmp", "x"), "x")
	md = mustOpen(t, s, "alice")
	if err := md.Commit(t.Context(), []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	md = mustOpen(t, s, "alice")
	defer md.Close()
	if n := len(md.Messages()); n != 0 {
		t.Errorf("%d messages left, want 0", n)
	}
	if !strings.Contains(logs.String(), "cannot write the update journal") {
		t.Errorf("not logged:\n%s", logs)
	}
}

// TestDeliverRemakesNew: a delivery into a Maildir whose new/ (or tmp/)
// another program removed makes it again instead of failing until the
// next login.
func TestDeliverRemakesNew(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	for _, sub := range []string{dirNew, dirTmp} {
		if _, err := s.Deliver(t.Context(), "alice", strings.NewReader("Subject: 1\n\nx\n")); err != nil {
			t.Fatal(err)
		}
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Deliver(t.Context(), "alice", strings.NewReader("Subject: 2\n\nx\n")); err != nil {
			t.Errorf("delivery after removing %s/: %v", sub, err)
		}
	}
	md := mustOpen(t, s, "alice")
	defer md.Close()
	// new/ went with its first message; three are left.
	if n := len(md.Messages()); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}

// TestSymlinkInPlace: a message replaced during a session by a symbolic
// link to a file of the same size elsewhere is gone, never that file.
func TestSymlinkInPlace(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	msg := filepath.Join(dir, "new", "1700000000.a,S=6,W=7")
	writeFile(t, msg, "hello\n")
	md := mustOpen(t, s, "alice")
	defer md.Close()
	secret := filepath.Join(t.TempDir(), "secret")
	writeFile(t, secret, "SECRET")
	os.Remove(msg)
	if err := os.Symlink(secret, msg); err != nil {
		t.Fatal(err)
	}
	if got, err := readMsg(t, md, 0); !errors.Is(err, store.ErrMessageGone) {
		t.Errorf("Open of a symbolic link: %q, %v; want ErrMessageGone", got, err)
	}
}

// TestNoWriteThroughSymlinks: symbolic links put in place of the
// temporary files of postie-sizes and of the update journal, or of the
// lock file, never make the store write to (or create) the file they
// point to.
func TestNoWriteThroughSymlinks(t *testing.T) {
	s, _ := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	for _, n := range []string{"new/1700000000.a", "new/1700000001.b"} {
		writeFile(t, filepath.Join(dir, n), "x\n")
	}
	outside := t.TempDir()
	for _, n := range []string{cacheName + ".tmp", journalName + ".tmp"} {
		writeFile(t, filepath.Join(outside, n), "precious\n")
		if err := os.Symlink(filepath.Join(outside, n), filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	md := mustOpen(t, s, "alice") // measures both, saves postie-sizes
	if err := md.Commit(t.Context(), []int{0, 1}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	for _, n := range []string{cacheName + ".tmp", journalName + ".tmp"} {
		if b, _ := os.ReadFile(filepath.Join(outside, n)); string(b) != "precious\n" {
			t.Errorf("%s was written through a symbolic link: %q", n, b)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, cacheName)); err != nil {
		t.Errorf("postie-sizes not saved: %v", err)
	}

	os.Remove(filepath.Join(dir, lockName))
	if err := os.Symlink(filepath.Join(outside, "created"), filepath.Join(dir, lockName)); err != nil {
		t.Fatal(err)
	}
	if md, err := s.Open(t.Context(), "alice"); err == nil {
		md.Close()
		t.Errorf("Open went through a symbolic link in place of the lock file")
	}
	if _, err := os.Lstat(filepath.Join(outside, "created")); !os.IsNotExist(err) {
		t.Errorf("the lock's symbolic link target was created: %v", err)
	}
}

// TestImpossibleSizesInName: a name whose ,S= and ,W= cannot both be
// right (W below S, or above 2S+2) is measured at the first login instead
// of being believed, so no session is handed a wrong size.
func TestImpossibleSizesInName(t *testing.T) {
	s, logs := newTestStore(t, "h")
	dir, _ := s.Path("alice")
	writeFile(t, filepath.Join(dir, "new", "1700000000.a,S=20,W=5"), "twenty octets here\r\n")
	writeFile(t, filepath.Join(dir, "new", "1700000001.b,S=2,W=99"), "x\n")
	md := mustOpen(t, s, "alice")
	defer md.Close()
	want := []store.MessageInfo{{UID: "1700000000.a", Size: 20}, {UID: "1700000001.b", Size: 3}}
	if got := infos(md); !slices.Equal(got, want) {
		t.Errorf("snapshot %v, want %v", got, want)
	}
	for i, body := range []string{"twenty octets here\r\n", "x\n"} {
		if got, err := readMsg(t, md, i); err != nil || got != body {
			t.Errorf("Open(%d) = %q, %v", i, got, err)
		}
	}
	if n := strings.Count(logs.String(), "sizes in the file name cannot be right"); n != 2 {
		t.Errorf("%d warnings, want 2:\n%s", n, logs)
	}
}
