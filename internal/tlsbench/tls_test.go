package tlsbench

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postie-mail/postie/internal/testenv"
)

// workers is how many clients run sessions at once; each logs in as its
// own user (POP3 maildrops are locked per session).
const workers = 4

// messages in each maildrop, so that STAT has something to count.
const messages = 5

func TestMain(m *testing.M) { testenv.Main(m) }

// target is a server under test: its implicit-TLS address, the CA to
// trust, and the CPU time it has used so far.
type target struct {
	name  string
	addr  string
	roots *x509.CertPool
	cpu   func() time.Duration
}

// startPostie runs `postie serve` (built without the race detector) with
// users user1..userN stored as {PLAIN}passN, as in Dovecot's passwd-file,
// and a few messages each.
func startPostie(b *testing.B) *target {
	certPEM, keyPEM, err := testenv.SelfSigned()
	if err != nil {
		b.Fatal(err)
	}
	var pw strings.Builder
	for i := 1; i <= workers; i++ {
		fmt.Fprintf(&pw, "user%d:{PLAIN}pass%d\n", i, i)
	}
	p := testenv.NewPostie(b, testenv.PostieOptions{
		NoRace: true,
		Files:  map[string]string{"cert.pem": string(certPEM), "key.pem": string(keyPEM), "passwd": pw.String()},
		Config: `[pop3]
listen = ["127.0.0.1:0"]
listen_tls = ["127.0.0.1:0"]
[lmtp]
listen = []
[auth]
cache_ttl = "0s"
[tls]
cert_file = "cert.pem"
key_file = "key.pem"
`,
	})
	for i := 1; i <= workers; i++ {
		for m := 0; m < messages; m++ {
			p.MustRun(b, fmt.Sprintf("Subject: %d\n\nbody %d\n", m, m), "deliver", "user"+strconv.Itoa(i))
		}
	}
	p.Start(b)
	pid := p.Pid()
	return &target{name: "postie", addr: p.POP3S, roots: pool(b, certPEM), cpu: func() time.Duration { return procCPU(b, pid, false) }}
}

// startDovecot runs Dovecot with the same users and messages.
func startDovecot(b *testing.B) *target {
	d := testenv.StartDovecot(b, workers)
	for i := 1; i <= workers; i++ {
		for m := 0; m < messages; m++ {
			d.Deliver(b, "user"+strconv.Itoa(i), []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", m, m)))
		}
	}
	raw, err := os.ReadFile(filepath.Join(d.Root, "run", "master.pid"))
	if err != nil {
		b.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		b.Fatal(err)
	}
	return &target{name: "dovecot", addr: d.TLSAddr, roots: pool(b, d.CertPEM), cpu: func() time.Duration { return procCPU(b, pid, true) }}
}

func pool(b *testing.B, certPEM []byte) *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(certPEM) {
		b.Fatal("bad certificate")
	}
	return p
}

// clockTick is USER_HZ, the unit of the CPU times in /proc (100 on Linux).
const clockTick = 10 * time.Millisecond

// procCPU returns the user+system CPU time of pid; with group, of every
// process in pid's process group plus the children pid has reaped
// (Dovecot's master forks a pop3 process per session and reaps it).
func procCPU(b *testing.B, pid int, group bool) time.Duration {
	// The fields after "pid (comm) ", numbered from 0: pgrp 2, utime 11,
	// stime 12, cutime 13, cstime 14 (proc(5) fields 5, 14-17).
	fields := func(p string) []string {
		data, err := os.ReadFile(filepath.Join("/proc", p, "stat"))
		if err != nil {
			return nil
		}
		s := string(data)
		return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	}
	ticks := func(f []string, idx ...int) int64 {
		var n int64
		for _, k := range idx {
			v, _ := strconv.ParseInt(f[k], 10, 64)
			n += v
		}
		return n
	}
	own := fields(strconv.Itoa(pid))
	if own == nil {
		b.Fatalf("process %d is gone", pid)
	}
	if !group {
		return time.Duration(ticks(own, 11, 12)) * clockTick
	}
	total := ticks(own, 13, 14)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if f := fields(e.Name()); f != nil && f[2] == strconv.Itoa(pid) {
			total += ticks(f, 11, 12)
		}
	}
	return time.Duration(total) * clockTick
}

// session runs one POP3S session: connect, handshake, USER/PASS, STAT,
// QUIT. It reports whether the TLS session was resumed.
func session(t *target, cfg *tls.Config, user int) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", t.addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	br := bufio.NewReader(c)
	u := strconv.Itoa(user)
	for _, cmd := range []string{"", "USER user" + u, "PASS pass" + u, "STAT", "QUIT"} {
		if cmd != "" {
			if _, err := fmt.Fprintf(c, "%s\r\n", cmd); err != nil {
				return false, err
			}
		}
		l, err := br.ReadString('\n')
		if err != nil {
			return false, fmt.Errorf("%s: %s: %v", t.name, cmd, err)
		}
		if !strings.HasPrefix(l, "+OK") {
			return false, fmt.Errorf("%s: %s: %q", t.name, cmd, l)
		}
	}
	return c.ConnectionState().DidResume, nil
}

// BenchmarkTLSSessions measures implicit-TLS POP3 sessions (connect,
// handshake, USER/PASS, STAT, QUIT) per second against postie and
// Dovecot started side by side, with full handshakes and with resumed
// sessions (a tls.ClientSessionCache per client), and the servers' CPU
// time per session from /proc. Both store the passwords as {PLAIN}
// (postie's verified-credential cache is off). The two servers alternate,
// A B A B, -rounds times per mode (go test's -count would repeat each one
// in a row instead):
//
//	go test -run '^$' -bench TLSSessions -benchtime 400x ./internal/tlsbench -rounds 3
func BenchmarkTLSSessions(b *testing.B) {
	targets := []*target{startPostie(b), startDovecot(b)}
	for _, mode := range []string{"full", "resumed"} {
		for range *rounds {
			for _, t := range targets {
				b.Run(mode+"/"+t.name, func(b *testing.B) { runSessions(b, t, mode == "resumed") })
			}
		}
	}
}

var rounds = flag.Int("rounds", 3, "BenchmarkTLSSessions: how many times postie and Dovecot alternate in each mode")

func runSessions(b *testing.B, t *target, resume bool) {
	cfgs := make([]*tls.Config, workers)
	for i := range cfgs {
		cfgs[i] = &tls.Config{RootCAs: t.roots, ServerName: "localhost"}
		if resume {
			cfgs[i].ClientSessionCache = tls.NewLRUClientSessionCache(4)
			if _, err := session(t, cfgs[i], i+1); err != nil { // a full handshake first
				b.Fatal(err)
			}
		}
	}
	var next, resumed atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	cpu0 := t.cpu()
	b.ResetTimer()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				r, err := session(t, cfgs[w], w+1)
				if err != nil {
					errs <- err
					return
				}
				if r {
					resumed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := t.cpu() - cpu0
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "sessions/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "server-cpu-ms/session")
	b.ReportMetric(float64(resumed.Load())/float64(b.N), "resumed/session")
}
