package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// dialFrom connects to addr from the loopback address from ("127.0.0.2":
// Linux routes all of 127/8 to lo), as a client elsewhere would.
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// scrape returns the value of one sample of the admin listener's
// /metrics ("postie_proxy_local_total{listener=\"pop3\"}"); -1 if absent.
func scrape(t *testing.T, admin, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", l, err)
			}
			return f
		}
	}
	return -1
}

// TestProxyProtocolHAProxy runs postie behind a real HAProxy in TCP mode,
// with send-proxy (v1) and send-proxy-v2 to each kind of listener, TLS
// passed through to POP3S, and a health check sending v2 LOCAL. The
// clients connect from other loopback addresses than the balancer's
// (127.0.0.2 and 127.0.0.3; HAProxy connects to postie from 127.0.0.1,
// the one trusted proxy and the one trusted network), and postie must
// apply to each client its own address: the cleartext policy, the
// per-address connection cap, the ban after failed logins, the trace
// selection, the logs and the Received field of deliveries. Headers from
// elsewhere, and connections of the proxy without one, are refused.
func TestProxyProtocolHAProxy(t *testing.T) {
	t.Parallel()
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	p := testenv.StartPostie(t, testenv.PostieOptions{
		Files: map[string]string{"cert.pem": string(certPEM), "key.pem": string(keyPEM),
			"passwd": "alice:{PLAIN}alice pw\nbob:{PLAIN}bob pw\n"},
		Config: `trusted_proxies = ["127.0.0.1"]
[log]
level = "debug"
trace_addresses = ["127.0.0.2"]
[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
hostname = "test"
implementation = false
auth_fail_delay = "1ms"
auth_fail_max_delay = "1ms"
ban_after = 6
max_connections_per_ip = 3
trusted_networks = ["127.0.0.1/32"]
[lmtp]
listen = ["127.0.0.1:0"]
[smtp]
listen = ["127.0.0.1:0"]
[intake]
hostname = "mx.test"
local_domains = ["example.org"]
[auth]
cache_ttl = "0s"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
[admin]
listen = "127.0.0.1:0"
`,
	})
	srv := &tlsServer{Postie: p}
	srv.trust(t, filepath.Join(p.Dir, "cert.pem"))
	cfg := srv.clientTLS()

	const (
		pop3V1 = iota
		pop3V2
		pop3sV2
		pop3sV1
		lmtpV1
		smtpV2
	)
	h := testenv.StartHAProxy(t, 6, func(ports []int) string {
		var b strings.Builder
		for i, fe := range []struct{ name, server, send string }{
			{"pop3_v1", p.POP3, "send-proxy"},
			{"pop3_v2", p.POP3, "send-proxy-v2"},
			{"pop3s_v2", p.POP3S, "send-proxy-v2"},
			{"pop3s_v1", p.POP3S, "send-proxy"},
			{"lmtp_v1", p.LMTP, "send-proxy"},
			{"smtp_v2", p.SMTP, "send-proxy-v2"},
		} {
			fmt.Fprintf(&b, "listen %s\n\tbind 127.0.0.1:%d\n\tserver postie %s %s\n\n", fe.name, ports[i], fe.server, fe.send)
		}
		// A health check as docs/scale-out.md shows it: a v2 LOCAL
		// header, the greeting, QUIT.
		fmt.Fprintf(&b, `backend pop3_check
	option tcp-check
	tcp-check expect rstring ^\+OK
	tcp-check send QUIT\r\n
	tcp-check expect rstring ^\+OK
	server postie %s send-proxy-v2 check check-send-proxy inter 500ms

backend pop3_readyz
	option httpchk GET /readyz
	server postie %s send-proxy-v2 check port %s inter 500ms
`, p.POP3, p.POP3, p.Admin[strings.LastIndexByte(p.Admin, ':')+1:])
		return b.String()
	})
	via := func(from string, fe int) *pop3Conn {
		t.Helper()
		return pop3Over(t, dialFrom(t, from, h.Addr(fe)))
	}
	viaTLS := func(from string, fe int) *pop3Conn {
		t.Helper()
		c := tls.Client(dialFrom(t, from, h.Addr(fe)), cfg)
		if err := c.Handshake(); err != nil {
			t.Fatalf("TLS through the balancer: %v", err)
		}
		return pop3Over(t, c)
	}
	sessionEnd := func(remote, user string, tls bool) {
		t.Helper()
		if user == "" {
			user = `""`
		}
		p.WaitLog(t, `msg="session end" session=\S+ remote=`+regexp.QuoteMeta(remote)+` user=`+user+` tls=`+strconv.FormatBool(tls))
	}

	// The cleartext policy is the client's: 127.0.0.2 is no trusted
	// network (the balancer is), so USER waits for TLS, here STLS
	// through the v1 frontend.
	a := via("127.0.0.2", pop3V1)
	a.cmd("-ERR [AUTH] cleartext login refused on an unencrypted connection; use STLS or the TLS port", "USER alice")
	a.stls(cfg)
	a.login("alice", "alice pw")
	a.cmd("+OK", "QUIT")
	sessionEnd("127.0.0.2", "alice", true)

	b := via("127.0.0.3", pop3V2)
	b.stls(cfg)
	b.login("bob", "bob pw")
	b.cmd("+OK", "QUIT")
	sessionEnd("127.0.0.3", "bob", true)

	// TLS passed through: the header comes before the handshake.
	a = viaTLS("127.0.0.2", pop3sV2)
	a.login("bob", "bob pw")
	a.cmd("+OK", "QUIT")
	sessionEnd("127.0.0.2", "bob", true)
	b = viaTLS("127.0.0.3", pop3sV1)
	b.login("alice", "alice pw")
	b.cmd("+OK", "QUIT")
	sessionEnd("127.0.0.3", "alice", true)

	// The per-address cap (3) is per client: the fourth connection of
	// 127.0.0.4 is refused, 127.0.0.5 behind the same balancer is not.
	for range 3 {
		via("127.0.0.4", pop3V1)
	}
	if got := readAllFrom(t, dialFrom(t, "127.0.0.4", h.Addr(pop3V1))); got != "-ERR [SYS/TEMP] too many connections from your address\r\n" {
		t.Errorf("fourth connection of 127.0.0.4: %q", got)
	}
	via("127.0.0.5", pop3V1).cmd("+OK capability list follows", "CAPA")

	// Six bad passwords from 127.0.0.2 ban 127.0.0.2 (ban_after = 6),
	// not 127.0.0.3 behind the same balancer.
	// (A session ends after three failures.)
	for range 2 {
		a = viaTLS("127.0.0.2", pop3sV2)
		for range 3 {
			a.cmd("+OK", "USER alice")
			a.cmd("-ERR [AUTH] invalid user name or password", "PASS wrong")
		}
		if rest, err := io.ReadAll(a.br); err != nil || len(rest) != 0 {
			t.Fatalf("after three failures: %q, %v", rest, err)
		}
	}
	if got := readAllFrom(t, dialFrom(t, "127.0.0.2", h.Addr(pop3V1))); got != "-ERR [SYS/TEMP] too many failed logins from your address, try again later\r\n" {
		t.Errorf("127.0.0.2 after six bad passwords: %q", got)
	}
	b = via("127.0.0.3", pop3V1)
	b.stls(cfg)
	b.login("alice", "alice pw")
	b.cmd("+OK", "QUIT")
	p.WaitLog(t, `msg="authentication failed" session=\S+ remote=127\.0\.0\.2 user=alice`)

	// Deliveries: the Received field names the client.
	msg := "From: someone@example.net\r\nSubject: hi\r\n\r\nhello\r\n"
	deliverOver(t, dialFrom(t, "127.0.0.2", h.Addr(lmtpV1)), "LHLO", "alice@example.org", msg)
	deliverOver(t, dialFrom(t, "127.0.0.3", h.Addr(smtpV2)), "EHLO", "bob@example.org", msg)
	for user, want := range map[string]string{
		"alice": "Received: from test.example ([127.0.0.2])\r\n\tby mx.test (postie) with LMTP id ",
		"bob":   "Received: from test.example ([127.0.0.3])\r\n\tby mx.test (postie) with ESMTP id ",
	} {
		files, err := filepath.Glob(filepath.Join(p.Dir, "mail", user, "new", "*"))
		if err != nil || len(files) != 1 {
			t.Fatalf("%s's new mail: %v %v", user, files, err)
		}
		stored, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(stored), want) {
			t.Errorf("%s's message does not name the client (%q):\n%s", user, want, stored)
		}
	}

	// A PROXY header from an address that is not a trusted proxy is
	// refused: the client cannot choose its address.
	// (127.0.0.2 is banned by now: its connections are refused before
	// anything is read.)
	c := dialFrom(t, "127.0.0.6", p.POP3)
	io.WriteString(c, "PROXY TCP4 192.0.2.1 198.51.100.1 40000 110\r\nUSER alice\r\n")
	readAllFrom(t, c) // the greeting, then the close (or a reset: USER was not read)
	p.WaitLog(t, `level=WARN msg="PROXY header from an address that is not in trusted_proxies; connection closed" proto=pop3 remote=127\.0\.0\.6:\d+ reason=untrusted`)
	// The balancer's own connection without a header is refused before
	// the greeting.
	c = dialFrom(t, "127.0.0.1", p.POP3)
	io.WriteString(c, "CAPA\r\n")
	if got := readAllFrom(t, c); got != "" {
		t.Errorf("a trusted proxy's connection without a header got %q", got)
	}
	p.WaitLog(t, `level=WARN msg="no PROXY header from a trusted proxy .*; connection closed" proto=pop3 proxy=127\.0\.0\.1:\d+ reason=missing`)

	// The health check's LOCAL header is served with the balancer's
	// address; HAProxy sees the server up, and by the /readyz check of
	// docs/operations.md too.
	for scrape(t, p.Admin, `postie_proxy_local_total{listener="pop3"}`) < 1 {
		time.Sleep(50 * time.Millisecond)
	}
	for {
		st, err := h.Command("show stat")
		if err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`(?m)^pop3_check,postie,(?:[^,]*,){15}UP,`).MatchString(st) &&
			regexp.MustCompile(`(?m)^pop3_readyz,postie,(?:[^,]*,){15}UP,`).MatchString(st) {
			break
		}
		// A check that ran and failed (layer 4 to 7 status) fails the
		// test at once.
		if down := regexp.MustCompile(`(?m)^pop3_(?:check|readyz),postie,(?:[^,]*,){15}DOWN,.*,L[4-7][A-Z]+,.*$`).FindString(st); down != "" {
			t.Fatalf("HAProxy's check failed: %s", down)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sessionEnd("127.0.0.1", "", false)

	for sample, want := range map[string]float64{
		`postie_proxy_headers_total{listener="pop3",version="1"}`:        8,
		`postie_proxy_headers_total{listener="pop3s",version="2"}`:       3,
		`postie_proxy_headers_total{listener="pop3s",version="1"}`:       1,
		`postie_proxy_headers_total{listener="lmtp",version="1"}`:        1,
		`postie_proxy_headers_total{listener="smtp",version="2"}`:        1,
		`postie_proxy_local_total{listener="pop3s"}`:                     0,
		`postie_proxy_refused_total{listener="pop3",reason="untrusted"}`: 1,
		`postie_proxy_refused_total{listener="pop3",reason="missing"}`:   1,
		`postie_proxy_refused_total{listener="pop3",reason="malformed"}`: 0,
	} {
		if got := scrape(t, p.Admin, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}

	// The trace selection (127.0.0.2) is the client's too.
	log := p.Log()
	if !regexp.MustCompile(`msg=trace session=\S+ remote=127\.0\.0\.2 `).MatchString(log) {
		t.Error("no trace lines of 127.0.0.2")
	}
	if m := regexp.MustCompile(`msg=trace session=\S+ remote=127\.0\.0\.[^2] .*`).FindString(log); m != "" {
		t.Errorf("a session not selected was traced: %s", m)
	}
}

// readAllFrom reads what a connection gets until it is closed.
func readAllFrom(t *testing.T, c net.Conn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(c)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("reading: %v", err)
	}
	return string(b)
}
