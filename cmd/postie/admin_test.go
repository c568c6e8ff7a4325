package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The admin listener: Prometheus metrics that follow what sessions did,
// /healthz, and /readyz turning 503 once SIGTERM starts the drain.
func TestAdminMetrics(t *testing.T) {
	t.Parallel()
	s := startTLSConfig(t, tlsConfig{
		passwd: "alice:{PLAIN}alice pw\n",
		pop3:   `shutdown_grace = "20s"`,
		tail:   "[admin]\nlisten = \"127.0.0.1:0\"\n",
	})
	admin := "http://" + s.Admin
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, string(b)
	}
	size := len(s.deliver(t, "alice", testMessage))

	p := dialPOP3(t, s.POP3)
	p.cmd("+OK", "USER alice")
	p.cmd("-ERR [AUTH]", "PASS Sekr1t-guess")
	p.login("alice", "alice pw")
	p.cmd("+OK", "RETR 1")
	p.multi()
	p.cmd("+OK", "DELE 1")
	p.cmd("+OK bye, 1 messages deleted", "QUIT")
	// The session's counts are added as it ends, just after QUIT's reply.
	s.WaitLog(t, `msg="session end" session=1 `)

	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for name, want := range map[string]string{
		"postie_pop3_sessions_total":         "1",
		"postie_pop3_logins_total":           "1",
		"postie_pop3_auth_failures_total":    "1",
		"postie_pop3_retr_total":             "1",
		"postie_pop3_retr_bytes_total":       fmt.Sprint(size),
		"postie_pop3_retr_from_file_total":   "0", // a small message
		"postie_pop3_deleted_total":          "1",
		"postie_pop3_in_use_total":           "0",
		"postie_deliveries_total":            "0", // postie deliver is another process
		`postie_build_info{version="devel"}`: "1",
	} {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil || m[1] != want {
			t.Errorf("%s = %v, want %s", name, m, want)
		}
	}
	if !strings.Contains(body, "\nprocess_resident_memory_bytes ") || !strings.Contains(body, "\ngo_goroutines ") {
		t.Errorf("runtime and process metrics missing:\n%s", body)
	}
	if strings.Contains(body, "alice pw") || strings.Contains(body, "Sekr1t") {
		t.Errorf("metrics mention a password")
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get("/readyz"); code != 200 || body != "ready\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}

	// A session still open keeps the server in its grace period: /readyz
	// must say 503 so a load balancer sends new sessions elsewhere.
	p = dialPOP3(t, s.POP3)
	p.login("alice", "alice pw")
	s.Signal(t, syscall.SIGTERM)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := get("/readyz")
		if code == http.StatusServiceUnavailable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after SIGTERM", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, _ := get("/metrics"); code != 200 {
		t.Errorf("/metrics during the drain: %d", code)
	}
	p.cmd("+OK bye", "QUIT")
	select {
	case <-s.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("postie serve did not stop after the last session ended")
	}
}
