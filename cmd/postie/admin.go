package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postie-mail/postie/intake"
	"github.com/postie-mail/postie/internal/proxyproto"
	"github.com/postie-mail/postie/internal/tlsconf"
	"github.com/postie-mail/postie/pop3server"
	"github.com/postie-mail/postie/store/pgstore"
)

// admin is the operators' HTTP listener: /metrics, /healthz, /readyz.
type admin struct {
	srv      *http.Server
	ln       net.Listener
	draining atomic.Bool
	checks   []*probe
}

// adminOptions is what the admin listener reports on.
type adminOptions struct {
	pop   *pop3server.Server // may be nil
	in    *intake.Deliverer  // may be nil
	certs *tlsconf.Certs     // may be nil
	// proxied are the PROXY protocol's counters per listener.
	proxied proxyStats
	node    string
	// pg is the PostgreSQL store, nil for Maildir; roundTrips is the
	// histogram its ObserveRoundTrip feeds.
	pg         *pgstore.Store
	roundTrips prometheus.Histogram
	// checks are what /readyz asks: each a database round trip bounded
	// by postgres_timeout.
	checks []readyCheck
}

type readyCheck struct {
	name  string
	check func(context.Context) error
}

// newRoundTripHistogram is the histogram of PostgreSQL round trips, from
// a tenth of a millisecond (a Unix socket) to 10 seconds (an outage).
func newRoundTripHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "postie_postgres_round_trip_seconds",
		Help:    "Duration of the statements (and batches) sent to PostgreSQL, from the send to the end of the result.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 9), // 0.1ms .. 6.5s
	})
}

// startAdmin serves on ln (nil for none; see bindListeners) the metrics
// of o.
func startAdmin(ln net.Listener, o adminOptions, log *slog.Logger) (*admin, error) {
	if ln == nil {
		return nil, nil
	}
	reg := newRegistry(o)
	a := &admin{ln: ln}
	for _, c := range o.checks {
		a.checks = append(a.checks, &probe{name: c.name, check: c.check})
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if a.draining.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		for _, p := range a.checks {
			if err := p.run(r.Context()); err != nil {
				log.Warn("not ready", "check", p.name, "err", err)
				http.Error(w, p.name+" unreachable", http.StatusServiceUnavailable)
				return
			}
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
// process's, the engines' counters, the PROXY protocol's per listener,
// the certificates' expiry and, with PostgreSQL, the pool's and leases'.
func newRegistry(o adminOptions) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&statsCollector{pop: o.pop, in: o.in, proxy: o.proxied, node: o.node},
	)
	if o.certs != nil {
		reg.MustRegister(certCollector{o.certs})
	}
	if o.pg != nil {
		reg.MustRegister(pgCollector{o.pg})
		if o.roundTrips != nil {
			reg.MustRegister(o.roundTrips)
		}
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

// probe runs one readiness check, shared by the requests that come while
// it runs: a balancer's checks do not pile up round trips on a database
// that hangs.
type probe struct {
	name  string
	check func(context.Context) error

	mu      sync.Mutex
	running chan struct{} // closed when the running check ends
	err     error         // of the last check that ended
}

func (p *probe) run(ctx context.Context) error {
	p.mu.Lock()
	ch := p.running
	if ch == nil {
		ch = make(chan struct{})
		p.running = ch
		go func() {
			// The check bounds itself (postgres_timeout), not by the
			// request that started it: others may wait for it.
			err := p.check(context.Background())
			p.mu.Lock()
			p.err, p.running = err, nil
			p.mu.Unlock()
			close(ch)
		}()
	}
	p.mu.Unlock()
	select {
	case <-ch:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
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
	node  string
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

// nodeInfo names the node (server.node). An info metric rather than a
// label on every series: the scrape's own target labels (instance, job)
// already tell the series of the nodes apart, and a query that wants the
// name joins it in (... * on (instance) group_left (node)
// postie_node_info), so the series keep their identity when a node is
// renamed.
var nodeInfo = prometheus.NewDesc("postie_node_info", "The node's name (server.node, default the host name); always 1.", []string{"node"}, nil)

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- buildInfo
	ch <- nodeInfo
	for _, m := range metrics {
		ch <- m.desc
	}
	ch <- proxyHeaders
	ch <- proxyLocal
	ch <- proxyRefused
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(buildInfo, prometheus.GaugeValue, 1, postieVersion())
	ch <- prometheus.MustNewConstMetric(nodeInfo, prometheus.GaugeValue, 1, c.node)
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

// pgCollector turns the PostgreSQL store's pool state and lease counters
// into metrics at scrape time.
type pgCollector struct{ s *pgstore.Store }

type pgMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(pgstore.Stats) float64
}

var pgMetrics = []pgMetric{
	pgGauge("pool_acquired_conns", "Connections of the pool in use now.", func(s pgstore.Stats) int64 { return int64(s.AcquiredConns) }),
	pgGauge("pool_idle_conns", "Connections of the pool idle now.", func(s pgstore.Stats) int64 { return int64(s.IdleConns) }),
	pgGauge("pool_total_conns", "Connections of the pool now (in use, idle and being opened).", func(s pgstore.Stats) int64 { return int64(s.TotalConns) }),
	pgGauge("pool_max_conns", "The pool's bound (storage.postgres_max_conns).", func(s pgstore.Stats) int64 { return int64(s.MaxConns) }),
	pgCounter("lease_renewals_total", "Statements that renewed the leases of this node's open sessions.", func(s pgstore.Stats) uint64 { return s.LeaseRenewals }),
	pgCounter("lease_renewal_failures_total", "Lease renewals that failed (the database did not answer in time).", func(s pgstore.Stats) uint64 { return s.LeaseRenewalFailures }),
	pgCounter("leases_lost_total", "Sessions whose lease expired and was taken over by another (they delete nothing).", func(s pgstore.Stats) uint64 { return s.LeasesLost }),
	pgCounter("leases_taken_over_total", "Logins that took over an expired lease (of a node that died or lost the database).", func(s pgstore.Stats) uint64 { return s.LeasesTakenOver }),
	pgCounter("lease_release_failures_total", "Statements giving up the leases of ended sessions that failed (tried again until a lease has passed).", func(s pgstore.Stats) uint64 { return s.LeaseReleaseFailures }),
}

func pgGauge(name, help string, v func(pgstore.Stats) int64) pgMetric {
	return pgMetric{prometheus.NewDesc("postie_postgres_"+name, help, nil, nil), prometheus.GaugeValue,
		func(s pgstore.Stats) float64 { return float64(v(s)) }}
}

func pgCounter(name, help string, v func(pgstore.Stats) uint64) pgMetric {
	return pgMetric{prometheus.NewDesc("postie_postgres_"+name, help, nil, nil), prometheus.CounterValue,
		func(s pgstore.Stats) float64 { return float64(v(s)) }}
}

func (c pgCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, m := range pgMetrics {
		ch <- m.desc
	}
}

func (c pgCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	for _, m := range pgMetrics {
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(st))
	}
}
