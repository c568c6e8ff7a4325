package main

import (
	"context"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postie-mail/postie/internal/tlsconf"
)

// certWarnBefore is how long before its expiry a certificate is warned
// about: in the log (at start, on SIGHUP, once a day) and by config check.
const certWarnBefore = 14 * 24 * time.Hour

// certCheckInterval is how often a running server looks at the expiry of
// its certificates.
const certCheckInterval = 24 * time.Hour

// certMonitor logs the certificates that expire soon or have expired.
type certMonitor struct {
	certs *tlsconf.Certs
	log   *slog.Logger
	now   func() time.Time // time.Now; a fake clock in tests
}

// check logs the certificates that expire soon, as of now.
func (m *certMonitor) check() int { return m.checkAt(m.now()) }

// checkAt logs a warning for each certificate in use that expires within
// certWarnBefore of now, and an error for each that has expired by then.
// It returns how many it logged.
func (m *certMonitor) checkAt(now time.Time) int {
	n := 0
	for _, e := range m.certs.Expiries() {
		left := e.NotAfter.Sub(now)
		args := []any{"file", e.CertFile, "name", e.Name, "not_after", e.NotAfter.UTC().Format(time.RFC3339)}
		switch {
		case left <= 0:
			m.log.Error("tls: certificate has expired; clients will refuse it", args...)
		case left <= certWarnBefore:
			m.log.Warn("tls: certificate expires soon", append(args, "days_left", daysLeft(left))...)
		default:
			continue
		}
		n++
	}
	return n
}

// daysLeft rounds d up to whole days (a certificate that expires in 30
// hours has 2 days left, one that expires in an hour 1).
func daysLeft(d time.Duration) int {
	return int(math.Ceil(d.Hours() / 24))
}

// run checks at the time each tick brings (a time.Ticker's, once a
// day), until ctx ends.
func (m *certMonitor) run(ctx context.Context, tick <-chan time.Time) {
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick:
			m.checkAt(now)
		}
	}
}

// certExpiryDesc is the metric of each certificate's expiry, a timestamp
// as Prometheus's own *_timestamp_seconds metrics are: alert on
// postie_tls_certificate_expiry_timestamp_seconds - time() < 14 * 86400.
var certExpiryDesc = prometheus.NewDesc("postie_tls_certificate_expiry_timestamp_seconds",
	"When the TLS certificate in use expires (its notAfter), in seconds since the Unix epoch.",
	[]string{"name", "file"}, nil)

// certCollector exports the expiry of the certificates in use at scrape
// time, so a renewal shows at once.
type certCollector struct{ certs *tlsconf.Certs }

func (c certCollector) Describe(ch chan<- *prometheus.Desc) { ch <- certExpiryDesc }

func (c certCollector) Collect(ch chan<- prometheus.Metric) {
	seen := map[string]bool{}
	for _, e := range c.certs.Expiries() {
		if seen[e.CertFile] { // the same files named twice in [tls]
			continue
		}
		seen[e.CertFile] = true
		ch <- prometheus.MustNewConstMetric(certExpiryDesc, prometheus.GaugeValue, float64(e.NotAfter.Unix()), e.Name, e.CertFile)
	}
}
