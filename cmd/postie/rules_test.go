package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/postie-mail/postie/internal/tlsconf"
)

// registryNames returns the names of every metric postie serve exports
// (with a certificate, so that its expiry is among them).
func registryNames(t *testing.T) map[string]bool {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := certExpiring(t, time.Now().Add(100*24*time.Hour))
	pair := tlsconf.Pair{CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	os.WriteFile(pair.CertFile, certPEM, 0o600)
	os.WriteFile(pair.KeyFile, keyPEM, 0o600)
	certs, err := tlsconf.LoadCerts([]tlsconf.Pair{pair}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mfs, err := newRegistry(adminOptions{certs: certs, proxied: proxyStats{"pop3": {}}}).Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{"up": true} // Prometheus's own, per target
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	return names
}

// metricRE matches the metric names of postie, Go and the process in a
// PromQL expression or a text.
var metricRE = regexp.MustCompile(`\b(?:postie|go|process)_[a-z0-9_]+\b|\bup\b`)

// TestPrometheusRules: the example alerting rules are YAML of
// Prometheus's rule file shape, every rule complete, and every metric
// they (and the Monitoring section of docs/operations.md) name is one postie exports.
func TestPrometheusRules(t *testing.T) {
	names := registryNames(t)
	data, err := os.ReadFile("../../examples/prometheus/postie-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("postie-rules.yml: %v", err)
	}
	if len(file.Groups) == 0 {
		t.Fatal("postie-rules.yml: no groups")
	}
	var alerts []string
	used := map[string]bool{}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("rule %+v: needs alert, expr, a summary and a description", r)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", r.Alert, err)
				}
			}
			if slices.Contains(alerts, r.Alert) {
				t.Errorf("alert %s twice", r.Alert)
			}
			alerts = append(alerts, r.Alert)
			if strings.Count(r.Expr, "(") != strings.Count(r.Expr, ")") || strings.Count(r.Expr, "[") != strings.Count(r.Expr, "]") {
				t.Errorf("%s: unbalanced brackets in %s", r.Alert, r.Expr)
			}
			ms := metricRE.FindAllString(r.Expr, -1)
			if len(ms) == 0 {
				t.Errorf("%s: names no metric", r.Alert)
			}
			for _, m := range ms {
				used[m] = true
				if !names[m] {
					t.Errorf("%s: %s is not a metric postie exports", r.Alert, m)
				}
			}
		}
	}
	for _, m := range []string{"postie_tls_certificate_expiry_timestamp_seconds", "postie_pop3_store_errors_total", "postie_deliveries_deferred_total"} {
		if !used[m] {
			t.Errorf("no rule alerts on %s", m)
		}
	}
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, monitoring, ok := strings.Cut(string(doc), "\n## Monitoring\n")
	monitoring, _, _ = strings.Cut(monitoring, "\n## ")
	if !ok || !strings.Contains(monitoring, "postie_tls_certificate_expiry_timestamp_seconds") {
		t.Fatal("docs/operations.md: no Monitoring section naming the certificate metric")
	}
	for _, m := range metricRE.FindAllString(monitoring, -1) {
		if m != "up" && !names[m] {
			t.Errorf("docs/operations.md names %s, which postie does not export", m)
		}
	}
}
