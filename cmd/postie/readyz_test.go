package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// TestReadyzDatabase: a node on PostgreSQL (maildrops and users) says on
// /readyz whether the database answers within postgres_timeout: 503 while
// the database is frozen (SIGSTOP: connections accepted, nothing
// answered), 200 again by itself once it thaws. The metrics name the node
// (postie_node_info) and show the pool, the round trips and the lease
// renewals and their failures; every log line names the node.
func TestReadyzDatabase(t *testing.T) {
	t.Parallel()
	var pg testenv.Postgres
	t.Cleanup(pg.Stop)
	dsn := pg.DB(t)
	n := testenv.NewPostie(t, testenv.PostieOptions{Dir: t.TempDir(), Config: fmt.Sprintf(`[log]
level = "debug"
[pop3]
listen = ["127.0.0.1:0"]
auth_fail_delay = "0s"
[lmtp]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[storage]
backend = "postgres"
postgres_dsn = %q
postgres_lease = "1s"
postgres_timeout = "1s"
[auth]
backend = "postgres"
[server]
node = "node-r"
`, dsn)})
	mustPostie(t, 0, "pw\n", "user", "add", "--config", n.Config, "--password-stdin", "--scheme", "SHA512-CRYPT", "alice")
	n.Start(t)
	client := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get("http://" + n.Admin + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// waitReady polls /readyz until it answers want; the bound only
	// keeps a broken test from hanging.
	waitReady := func(want int) string {
		t.Helper()
		for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
			code, body := get("/readyz")
			if code == want {
				return body
			}
			if time.Since(start) > time.Minute {
				t.Fatalf("/readyz still %d %q, want %d", code, body, want)
			}
		}
	}
	metric := func(body, name string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no metric %s", name)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}

	if body := waitReady(200); body != "ready\n" {
		t.Errorf("/readyz = %q", body)
	}
	// A session stays open: its lease is renewed every third of a second.
	p := dialPOP3(t, n.POP3)
	p.login("alice", "pw")
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		_, body := get("/metrics")
		if metric(body, "postie_postgres_lease_renewals_total") > 0 {
			if metric(body, `postie_node_info{node="node-r"}`) != 1 {
				t.Error("postie_node_info does not name the node")
			}
			if metric(body, "postie_postgres_round_trip_seconds_count") == 0 || metric(body, "postie_postgres_pool_total_conns") < 1 ||
				metric(body, "postie_postgres_pool_max_conns") < 1 {
				t.Errorf("round trips or pool not shown:\n%s", body)
			}
			metric(body, "postie_postgres_pool_idle_conns")
			metric(body, "postie_postgres_pool_acquired_conns")
			metric(body, "postie_postgres_leases_taken_over_total")
			metric(body, "postie_postgres_leases_lost_total")
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatalf("no lease renewal counted:\n%s", body)
		}
	}

	pg.Freeze(t)
	if body := waitReady(503); body != "database unreachable\n" {
		t.Errorf("/readyz with the database frozen = %q", body)
	}
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		_, body := get("/metrics")
		if metric(body, "postie_postgres_lease_renewal_failures_total") > 0 {
			break
		}
		if time.Since(start) > time.Minute {
			t.Fatal("no failed lease renewal counted while the database was frozen")
		}
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d with the database frozen: the process lives, it is only not ready", code)
	}
	pg.Thaw(t)
	waitReady(200)
	p.c.Close()

	// Every line of the log names the node.
	for _, l := range strings.Split(strings.TrimSpace(n.Log()), "\n") {
		if !strings.HasSuffix(l, " node=node-r") {
			t.Errorf("log line without the node: %q", l)
		}
	}
	if !strings.Contains(n.Log(), `msg="not ready" check=database`) {
		t.Error("the log does not say why the node was not ready")
	}
}
