package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBenchCLISmoke runs `postie bench` as a user would, against a real
// `postie serve --dev`: a corpus into the demo Maildir, then a second of
// each load scenario, checking the JSON lines (operations done, no errors,
// the server's process found) and the report. It checks no speed.
func TestBenchCLISmoke(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	password := s.WaitStdout(t, `(?m)^\s*password:\s+(\S+)$`)[1]
	addr := s.WaitLog(t, `msg=listening proto=pop3 addr=(127\.0\.0\.1:\d+)`)[1]

	md := filepath.Join(dir, "mail", "demo")
	mustPostie(t, 0, "", "bench", "corpus", "--dir", md, "--count", "20", "--seed", "7")
	var n int
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(md, sub))
		if err != nil {
			t.Fatal(err)
		}
		n += len(ents)
	}
	if n != 20 {
		t.Fatalf("corpus wrote %d messages, want 20", n)
	}

	users := "demo:" + password
	var lines []string
	for _, args := range [][]string{
		{"sessions", "--addr", addr, "--users", users, "--nusers", "1", "--concurrency", "1", "--duration", "1s"},
		{"retr", "--addr", addr, "--users", users, "--nusers", "1", "--concurrency", "1", "--duration", "1s"},
		{"bigbox", "--addr", addr, "--user", "demo", "--pass", password, "--rounds", "2"},
	} {
		args = append(args, "--name", "smoke-"+args[0], "--label", "postie")
		r := mustPostie(t, 0, "", append([]string{"bench"}, args...)...)
		line := strings.TrimSpace(r.stdout)
		var res struct {
			Scenario string `json:"scenario"`
			Ops      int64  `json:"ops"`
			Errors   int64  `json:"errors"`
			Server   *struct {
				PID int `json:"pid"`
			} `json:"server"`
		}
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			t.Fatalf("bench %s: stdout is not one JSON line: %v\n%s", args[0], err, r.stdout)
		}
		if res.Scenario != args[0] || res.Ops <= 0 || res.Errors != 0 {
			t.Errorf("bench %s: scenario %q, %d ops, %d errors\n%s", args[0], res.Scenario, res.Ops, res.Errors, r.stderr)
		}
		if res.Server == nil || res.Server.PID != s.Pid() {
			t.Errorf("bench %s: server %+v, want pid %d (the process listening on %s)", args[0], res.Server, s.Pid(), addr)
		}
		lines = append(lines, line)
	}

	results := filepath.Join(dir, "results.jsonl")
	if err := os.WriteFile(results, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustPostie(t, 0, "", "bench", "report", results)
	for _, want := range []string{"smoke-sessions", "smoke-retr", "smoke-bigbox"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("report does not mention %s:\n%s", want, r.stdout)
		}
	}
	s.Stop(t, syscall.SIGTERM, 10*time.Second)
	// Every session ended with QUIT, and no message was deleted.
	ends := regexp.MustCompile(`msg="session end".* dele=(\d+) .*reason=(\S+)`).FindAllStringSubmatch(s.Log(), -1)
	if len(ends) == 0 {
		t.Fatal("no session end logged")
	}
	for _, m := range ends {
		if m[1] != "0" || m[2] != "quit" {
			t.Errorf("a session ended with dele=%s reason=%s", m[1], m[2])
		}
	}
}

// TestBenchLMTP: `postie bench lmtp` counts a delivery once the server
// answered 250, so the maildrop holds exactly as many messages as it
// reports; an unknown recipient counts as errors, not deliveries.
func TestBenchLMTP(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServe(t, dir)
	lmtp := s.WaitLog(t, `msg=listening proto=lmtp addr=(127\.0\.0\.1:\d+)`)[1]
	type result struct {
		Scenario string `json:"scenario"`
		Ops      int64  `json:"ops"`
		Errors   int64  `json:"errors"`
	}
	run := func(rcpt string, code int) result {
		r := mustPostie(t, code, "", "bench", "lmtp", "--addr", lmtp, "--users", rcpt+":", "--concurrency", "2", "--duration", "1s", "--server-pid", "-1")
		var res result
		if err := json.Unmarshal([]byte(strings.TrimSpace(r.stdout)), &res); err != nil {
			t.Fatalf("bench lmtp: stdout is not one JSON line: %v\n%s", err, r.stdout)
		}
		return res
	}
	res := run("demo@example.org", 0)
	if res.Scenario != "lmtp" || res.Ops <= 0 || res.Errors != 0 {
		t.Fatalf("bench lmtp: %+v", res)
	}
	if got := len(maildirFiles(t, filepath.Join(dir, "mail", "demo"))); int64(got) != res.Ops {
		t.Errorf("the maildrop holds %d messages, bench counted %d deliveries", got, res.Ops)
	}
	// Nothing delivered: exit 1, with the errors counted.
	if res := run("nosuch@example.org", 1); res.Ops != 0 || res.Errors == 0 {
		t.Errorf("bench lmtp to an unknown user: %+v, want errors and no deliveries", res)
	}
}
