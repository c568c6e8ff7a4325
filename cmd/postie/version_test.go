package main

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/postie-mail/postie/internal/testenv"
)

// TestVersionStamped builds postie as the release build does, with the
// version, commit and date given to the linker, and checks both ways of
// asking for them.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "postie")
	const ldflags = "-X main.version=1.2.3~rc1 -X main.commit=0123456789abcdef0123456789abcdef01234567 -X main.date=2026-12-06T22:52:10Z"
	build := exec.Command("go", "build", "-o", bin, "-ldflags", ldflags, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	want := "postie 1.2.3~rc1 (commit 0123456789abcdef0123456789abcdef01234567, built 2026-12-06T22:52:10Z, " +
		runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		cmd := exec.Command(bin, args...)
		cmd.Env = testenv.PostieEnv()
		out, err := cmd.Output()
		if err != nil || string(out) != want {
			t.Errorf("postie %s = %q, %v; want %q", args[0], out, err, want)
		}
	}
}

// TestVersionUnstamped: the test binary carries no link-time stamps.
func TestVersionUnstamped(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		r := mustPostie(t, 0, "", args...)
		if !regexp.MustCompile(`^postie \S+ \(commit \S+, built \S+, go\S+ \w+/\w+\)\n$`).MatchString(r.stdout) {
			t.Errorf("postie %s printed %q", args[0], r.stdout)
		}
	}
	if r := mustPostie(t, 64, "", "version", "extra"); r.stdout != "" {
		t.Errorf("version with an argument printed %q", r.stdout)
	}
}

// TestStampFrom: without link-time values, the VCS stamp the go command
// records is used, marked -dirty for a tree with uncommitted changes.
func TestStampFrom(t *testing.T) {
	vcs := func(kv ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{}
		for i := 0; i < len(kv); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return bi
	}
	for _, tc := range []struct {
		bi                *debug.BuildInfo
		commit, date      string
		wantRev, wantWhen string
	}{
		{nil, "", "", "unknown", "unknown"},
		{vcs(), "", "", "unknown", "unknown"},
		{vcs("vcs.revision", "abc", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "false"), "", "", "abc", "2026-01-02T03:04:05Z"},
		{vcs("vcs.revision", "abc", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "true"), "", "", "abc-dirty", "2026-01-02T03:04:05Z"},
		{vcs("vcs.revision", "abc", "vcs.time", "2026-01-02T03:04:05Z", "vcs.modified", "true"), "def", "2027-01-01T00:00:00Z", "def", "2027-01-01T00:00:00Z"},
		{vcs("vcs.modified", "true"), "", "", "unknown", "unknown"},
	} {
		rev, when := stampFrom(tc.bi, tc.commit, tc.date)
		if rev != tc.wantRev || when != tc.wantWhen {
			t.Errorf("stampFrom(%v, %q, %q) = %q, %q; want %q, %q", tc.bi, tc.commit, tc.date, rev, when, tc.wantRev, tc.wantWhen)
		}
	}
}
