package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/proxyproto"
	"github.com/postie-mail/postie/internal/tlsconf"
	"github.com/postie-mail/postie/pop3server"
)

// admin is the operators' HTTP listener: /metrics, /healthz, /readyz.
type admin struct {
	srv      *http.Server
	ln       net.Listener
	draining atomic.Bool
}

// startAdmin serves on ln (nil for none; see bindListeners) the metrics
// of pop, in, certs and proxied (any may be nil).
func startAdmin(ln net.Listener, pop *pop3server.Server, in *intake.Deliverer, certs *tlsconf.Certs, proxied proxyStats, log *slog.Logger) (*admin, error) {
	if ln == nil {
		return nil, nil
	}
	reg := newRegistry(pop, in, certs, proxied)
	a := &admin{ln: ln}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if a.draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	a.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		MaxHeaderBytes:    16 << 10,
	}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", "err", err)
		}
	}()
	log.Info("listening", "proto", "admin", "addr", ln.Addr().String())
	return a, nil
}

// newRegistry holds every metric postie serve exports: Go's and the
// process's, the engines' counters, the PROXY protocol's per listener, and
// the certificates' expiry.
func newRegistry(pop *pop3server.Server, in *intake.Deliverer, certs *tlsconf.Certs, proxied proxyStats) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statsCollector{pop: pop, in: in, proxy: proxied},
	)
	if certs != nil {
		reg.MustRegister(certCollector{certs})
	}
	return reg
}

// drain makes /readyz fail so a load balancer stops sending sessions; the
// listener stays up (metrics during the grace period are useful).
func (a *admin) drain() {
	if a != nil {
		a.draining.Store(true)
	}
}

func (a *admin) close() {
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a.srv.Shutdown(ctx)
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics", "err", v) }

// statsCollector turns the engines' counters into Prometheus metrics at
// scrape time: nothing is counted twice and the hot paths only bump
// atomics.
type statsCollector struct {
	pop   *pop3server.Server
	in    *intake.Deliverer
	proxy proxyStats
}

type metric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(p pop3server.Stats, d intake.Stats) float64
}

var metrics = []metric{
	counter("pop3_sessions_total", "POP3 connections accepted.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.SessionsTotal }),
	{prometheus.NewDesc("postie_pop3_sessions", "POP3 connections being served now.", nil, nil), prometheus.GaugeValue,
		func(p pop3server.Stats, _ intake.Stats) float64 { return float64(p.Sessions) }},
	counter("pop3_connections_refused_total", "POP3 connections refused by connection caps, bans or shutdown.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.Refused }),
	counter("pop3_tls_handshake_failures_total", "Failed TLS handshakes (implicit TLS and STLS).", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.TLSFailures }),
	counter("pop3_logins_total", "Successful POP3 logins.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.Logins }),
	counter("pop3_auth_failures_total", "Failed logins, POP3 and the web account page (wrong user name or password).", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.AuthFailures }),
	counter("pop3_auth_delayed_total", "Failed logins whose reply waited a failure delay.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.AuthDelayed }),
	counter("pop3_auth_backend_errors_total", "Errors of the user database (logins answered [SYS/TEMP]).", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.AuthBackendFails }),
	counter("pop3_in_use_total", "Logins refused because the maildrop was locked ([IN-USE]).", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.InUse }),
	counter("pop3_store_errors_total", "Maildrop errors answered [SYS/TEMP].", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.StoreErrors }),
	counter("pop3_bad_commands_total", "Unknown, malformed or out-of-state POP3 commands.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.BadCommands }),
	counter("pop3_retr_total", "Messages sent by RETR.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.Retr }),
	counter("pop3_retr_bytes_total", "Octets of messages sent by RETR.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.RetrBytes }),
	counter("pop3_retr_from_file_total", "Messages RETR sent from their files (sendfile), not converted in user space.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.RetrFromFile }),
	counter("pop3_top_total", "TOP commands answered.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.Top }),
	counter("pop3_deleted_total", "Messages deleted by completed QUITs.", func(p pop3server.Stats, _ intake.Stats) uint64 { return p.Deleted }),
	counter("deliveries_total", "Messages stored by LMTP, SMTP and deliver (one per recipient).", func(_ pop3server.Stats, d intake.Stats) uint64 { return d.Delivered }),
	counter("delivered_bytes_total", "Octets stored by deliveries, trace header fields included.", func(_ pop3server.Stats, d intake.Stats) uint64 { return d.DeliveredBytes }),
	counter("deliveries_refused_total", "Deliveries refused for good (over quota, too big).", func(_ pop3server.Stats, d intake.Stats) uint64 { return d.Refused }),
	counter("deliveries_deferred_total", "Deliveries answered with a temporary failure (disk full, I/O errors).", func(_ pop3server.Stats, d intake.Stats) uint64 { return d.Deferred }),
}

func counter(name, help string, v func(pop3server.Stats, intake.Stats) uint64) metric {
	return metric{prometheus.NewDesc("postie_"+name, help, nil, nil), prometheus.CounterValue,
		func(p pop3server.Stats, d intake.Stats) float64 { return float64(v(p, d)) }}
}

var buildInfo = prometheus.NewDesc("postie_build_info", "postie's version; always 1.", []string{"version"}, nil)

// The PROXY protocol metrics, by kind of listener (see proxyProtocol).
var (
	proxyHeaders = prometheus.NewDesc("postie_proxy_headers_total",
		"Connections accepted with a PROXY protocol header from a trusted proxy, by listener and header version.", []string{"listener", "version"}, nil)
	proxyLocal = prometheus.NewDesc("postie_proxy_local_total",
		"Of those, the ones without a client address (v2 LOCAL, v1 UNKNOWN: health checks), served with the proxy's address.", []string{"listener"}, nil)
	proxyRefused = prometheus.NewDesc("postie_proxy_refused_total",
		"Connections closed for the PROXY protocol: a header from an untrusted address, or from a trusted proxy a header missing, malformed, late, or a connection closed before it.", []string{"listener", "reason"}, nil)
)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- buildInfo
	for _, m := range metrics {
		ch <- m.desc
	}
	ch <- proxyHeaders
	ch <- proxyLocal
	ch <- proxyRefused
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildInfo, prometheus.GaugeValue, 1, postieVersion())
	var p pop3server.Stats
	var d intake.Stats
	if c.pop != nil {
		p = c.pop.Stats()
	}
	if c.in != nil {
		d = c.in.Stats()
	}
	for _, m := range metrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(p, d))
	}
	for name, st := range c.proxy {
		count := func(desc *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), append([]string{name}, labels...)...)
		}
		count(proxyHeaders, st.HeadersV1.Load(), "1")
		count(proxyHeaders, st.HeadersV2.Load(), "2")
		count(proxyLocal, st.Local.Load())
		count(proxyRefused, st.Untrusted.Load(), proxyproto.ReasonUntrusted)
		count(proxyRefused, st.Missing.Load(), proxyproto.ReasonMissing)
		count(proxyRefused, st.Malformed.Load(), proxyproto.ReasonMalformed)
		count(proxyRefused, st.Timeout.Load(), proxyproto.ReasonTimeout)
		count(proxyRefused, st.Closed.Load(), proxyproto.ReasonClosed)
	}
}
