package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postie-mail/postie/internal/testenv"
	"github.com/postie-mail/postie/internal/tlsconf"
)

// certExpiring returns a self-signed certificate and key (for localhost)
// that expire at notAfter.
func certExpiring(t *testing.T, notAfter time.Time) (certPEM, keyPEM []byte) {
	t.Helper()
	certPEM, keyPEM, err := tlsconf.SelfSigned("mail.example.org", notAfter.Add(-365*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	return certPEM, keyPEM
}

// TestCertMonitor: on a fake clock, the daily check is silent while the
// certificate has more than 14 days, warns with the days left within 14
// days, and logs an error once it has expired; the metric is its notAfter.
func TestCertMonitor(t *testing.T) {
	base := time.Date(2031, 3, 1, 12, 0, 0, 0, time.UTC)
	notAfter := base.Add(60 * 24 * time.Hour)
	dir := t.TempDir()
	certPEM, keyPEM := certExpiring(t, notAfter)
	pair := tlsconf.Pair{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	os.WriteFile(pair.CertFile, certPEM, 0o600)
	os.WriteFile(pair.KeyFile, keyPEM, 0o600)
	certs, err := tlsconf.LoadCerts([]tlsconf.Pair{pair, pair}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}

	var logs testenv.SyncBuffer
	m := &certMonitor{certs: certs, log: slog.New(slog.NewTextHandler(&logs, nil)), now: func() time.Time { return base }}
	if n := m.check(); n != 0 || logs.String() != "" {
		t.Errorf("60 days before expiry: %d logged: %s", n, logs.String())
	}
	// The daily ticks, on a fake clock: each brings its time.
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { m.run(ctx, tick); close(done) }()
	tick <- notAfter.Add(-15 * 24 * time.Hour)
	tick <- notAfter.Add(-13*24*time.Hour - time.Hour)
	tick <- notAfter.Add(time.Second)
	cancel()
	<-done
	soon := `level=WARN msg="tls: certificate expires soon" file=` + pair.CertFile + ` name=localhost not_after=2031-04-30T12:00:00Z days_left=14`
	expired := `level=ERROR msg="tls: certificate has expired; clients will refuse it" file=` + pair.CertFile + ` name=localhost not_after=2031-04-30T12:00:00Z`
	want := []string{soon, soon, expired, expired} // the pair is named twice
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("logged:\n%s\nwant:\n%s", logs.String(), strings.Join(want, "\n"))
	}
	for i, l := range lines {
		if !strings.HasSuffix(l, want[i]) {
			t.Errorf("line %d: %s\nwant …%s", i+1, l, want[i])
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(certCollector{certs})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 1 || len(mfs[0].Metric) != 1 {
		t.Fatalf("metrics: %v (the pair named twice must be one series)", mfs)
	}
	mf := mfs[0].Metric[0]
	if mfs[0].GetName() != "postie_tls_certificate_expiry_timestamp_seconds" || mf.GetGauge().GetValue() != float64(notAfter.Unix()) {
		t.Errorf("metric %s = %v, want %d", mfs[0].GetName(), mf.GetGauge().GetValue(), notAfter.Unix())
	}
	labels := fmt.Sprint(mf.GetLabel())
	if !strings.Contains(labels, pair.CertFile) || !strings.Contains(labels, "localhost") {
		t.Errorf("labels %s", labels)
	}
}

// TestServeCertExpiry: postie serve warns at start and on SIGHUP about a
// certificate that expires within 14 days, and exports its expiry.
func TestServeCertExpiry(t *testing.T) {
	t.Parallel()
	in10 := time.Now().Add(10 * 24 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM := certExpiring(t, in10)
	s := startTLSConfig(t, tlsConfig{certPEM: certPEM, keyPEM: keyPEM, tail: "[admin]\nlisten = \"127.0.0.1:0\"\n"})
	certFile := filepath.Join(s.Dir, "cert.pem")
	s.WaitLog(t, `level=WARN msg="tls: certificate expires soon" file=`+regexp.QuoteMeta(certFile)+` name=localhost not_after=\S+ days_left=10 node=\S+\n`)
	metric := func() int64 {
		t.Helper()
		resp, err := http.Get("http://" + s.Admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^postie_tls_certificate_expiry_timestamp_seconds\{file="` + regexp.QuoteMeta(certFile) + `",name="localhost"\} (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("no certificate expiry metric:\n%s", body)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return int64(v)
	}
	if got := metric(); got != in10.Unix() {
		t.Errorf("metric %d, want %d", got, in10.Unix())
	}

	in3 := time.Now().Add(3 * 24 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM = certExpiring(t, in3)
	os.WriteFile(filepath.Join(s.Dir, "key.pem"), keyPEM, 0o600)
	os.WriteFile(certFile, certPEM, 0o600)
	s.Signal(t, syscall.SIGHUP)
	s.WaitLog(t, `msg="tls: certificate expires soon" file=\S+ name=localhost not_after=\S+ days_left=3 node=\S+\n`)
	if got := metric(); got != in3.Unix() {
		t.Errorf("metric after SIGHUP %d, want %d", got, in3.Unix())
	}
}
