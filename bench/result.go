package bench

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/postie-mail/postie/pop3client"
)

// Result is what one scenario run measured. WriteResult prints it as one
// JSON line; the field names below are that line's keys.
type Result struct {
	Scenario string `json:"scenario"`
	Name     string `json:"name,omitempty"`
	Label    string `json:"label,omitempty"`
	Addr     string `json:"addr"`
	TLS      string `json:"tls"`
	Resume   bool   `json:"resume,omitempty"`
	// TLSState is the version and key exchange of the TLS connections
	// (of the first one).
	TLSState    string    `json:"tls_state,omitempty"`
	Concurrency int       `json:"concurrency"`
	Start       time.Time `json:"start"`
	// Seconds is the measured time: from the start of the first
	// operation to the end of the last.
	Seconds float64 `json:"seconds"`
	// Ops counts successful operations: sessions, messages retrieved,
	// idle sessions opened, bigbox logins.
	Ops          int64    `json:"ops"`
	Errors       int64    `json:"errors"`
	ErrorSamples []string `json:"error_samples,omitempty"`
	OpsPerSec    float64  `json:"ops_per_s"`
	// Bytes are message octets received (retr, bigretr), as the client
	// got them after unstuffing; MBPerSec is Bytes/Seconds in 10^6 octets.
	Bytes    int64   `json:"bytes,omitempty"`
	MBPerSec float64 `json:"mb_per_s,omitempty"`
	// Latency of each operation, in milliseconds.
	Latency *Latency `json:"latency_ms,omitempty"`
	// ResumedRatio is the share of TLS handshakes that were resumed.
	ResumedRatio *float64 `json:"resumed_ratio,omitempty"`
	// ClientCPU is the CPU time of this process during the run, which
	// shares the machine with the server.
	ClientCPU float64      `json:"client_cpu_s"`
	Server    *ServerStats `json:"server,omitempty"`
	Idle      *IdleStats   `json:"idle,omitempty"`
	BigBox    *BigBoxStats `json:"bigbox,omitempty"`
	Host      Host         `json:"host"`
}

// Latency summarises operation times in milliseconds.
type Latency struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
}

// ServerStats is what /proc said about the server's process tree.
type ServerStats struct {
	PID       int     `json:"pid"`
	Processes int     `json:"processes"`
	CPU       float64 `json:"cpu_s"`
	CPUPerOp  float64 `json:"cpu_ms_per_op"`
	Note      string  `json:"note,omitempty"`
}

// IdleStats is the memory of the server with Sessions idle sessions open,
// summed over its process tree, in KiB.
type IdleStats struct {
	Sessions        int     `json:"sessions"`
	Open            int     `json:"open"`
	ProcessesBefore int     `json:"processes_before"`
	ProcessesAfter  int     `json:"processes_after"`
	RSSBefore       int64   `json:"rss_before_kib"`
	RSSAfter        int64   `json:"rss_after_kib"`
	PSSBefore       int64   `json:"pss_before_kib"`
	PSSAfter        int64   `json:"pss_after_kib"`
	RSSPerSession   float64 `json:"rss_per_session_kib"`
	PSSPerSession   float64 `json:"pss_per_session_kib"`
	AliveAfterHold  int     `json:"alive_after_hold"`
	MemoryNote      string  `json:"memory_not_measured,omitempty"`
}

// BigBoxStats are the medians over the rounds of a bigbox run, in
// milliseconds from the start of each session's connect.
type BigBoxStats struct {
	Messages int   `json:"messages"`
	Octets   int64 `json:"octets"`
	// Login: connect, greeting, USER, PASS answered (the maildrop open).
	Login float64 `json:"login_ms"`
	// LoginStat: Login plus STAT answered — the first response about
	// the maildrop.
	LoginStat float64 `json:"login_stat_ms"`
	// UIDLFirst is from sending UIDL to its first octet back; UIDL and
	// LIST are the whole listings.
	UIDLFirst float64   `json:"uidl_first_ms"`
	UIDL      float64   `json:"uidl_ms"`
	LIST      float64   `json:"list_ms"`
	Rounds    []float64 `json:"login_stat_rounds_ms"`
}

// WriteResult writes r as one line of JSON.
func WriteResult(w io.Writer, r *Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteSummary writes r for people to read.
func WriteSummary(w io.Writer, r *Result) {
	var b strings.Builder
	name := r.Scenario
	if r.Name != "" && r.Name != r.Scenario {
		name += " (" + r.Name + ")"
	}
	if r.Label != "" {
		name += " [" + r.Label + "]"
	}
	tls := r.TLS
	if r.Resume {
		tls += ", resumed"
	}
	if r.TLSState != "" {
		tls += ", " + r.TLSState
	}
	fmt.Fprintf(&b, "%s against %s (tls %s, concurrency %d): %d ops, %d errors in %.2fs\n", name, r.Addr, tls, r.Concurrency, r.Ops, r.Errors, r.Seconds)
	fmt.Fprintf(&b, "  throughput  %.1f ops/s", r.OpsPerSec)
	if r.Bytes > 0 {
		fmt.Fprintf(&b, ", %.1f MB/s (%d octets)", r.MBPerSec, r.Bytes)
	}
	b.WriteByte('\n')
	if l := r.Latency; l != nil && l.N > 0 {
		fmt.Fprintf(&b, "  latency ms  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  mean %.2f\n", l.P50, l.P90, l.P99, l.Max, l.Mean)
	}
	if r.ResumedRatio != nil {
		fmt.Fprintf(&b, "  resumed     %.0f%% of TLS handshakes\n", 100**r.ResumedRatio)
	}
	if s := r.Server; s != nil {
		if s.Note != "" {
			fmt.Fprintf(&b, "  server      %s\n", s.Note)
		} else {
			fmt.Fprintf(&b, "  server      pid %d (%d processes): %.2fs CPU, %.3f ms per op\n", s.PID, s.Processes, s.CPU, s.CPUPerOp)
		}
	}
	fmt.Fprintf(&b, "  client CPU  %.2fs\n", r.ClientCPU)
	if i := r.Idle; i != nil {
		fmt.Fprintf(&b, "  idle        %d of %d sessions open, %d alive after the hold\n", i.Open, i.Sessions, i.AliveAfterHold)
		if i.MemoryNote != "" {
			fmt.Fprintf(&b, "  memory      not measured: %s\n", i.MemoryNote)
		} else {
			fmt.Fprintf(&b, "  memory      RSS %d → %d KiB, PSS %d → %d KiB (%d → %d processes)\n", i.RSSBefore, i.RSSAfter, i.PSSBefore, i.PSSAfter, i.ProcessesBefore, i.ProcessesAfter)
			fmt.Fprintf(&b, "  per session RSS %.1f KiB, PSS %.1f KiB\n", i.RSSPerSession, i.PSSPerSession)
		}
	}
	if bb := r.BigBox; bb != nil {
		fmt.Fprintf(&b, "  maildrop    %d messages, %d octets\n", bb.Messages, bb.Octets)
		fmt.Fprintf(&b, "  median ms   login %.1f  login+STAT %.1f  UIDL first octet %.1f  UIDL %.1f  LIST %.1f\n", bb.Login, bb.LoginStat, bb.UIDLFirst, bb.UIDL, bb.LIST)
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(&b, "  error       %s\n", e)
	}
	io.WriteString(w, b.String())
}

// recorder collects operation times and errors from concurrent workers.
type recorder struct {
	mu      sync.Mutex
	lat     []time.Duration
	ops     int64
	bytes   int64
	errs    int64
	samples []string
	tls     int64 // TLS handshakes seen
	resumed int64
	state   string // TLS version and key exchange of the first connection
}

// tlsState notes the TLS parameters of a connection, once.
func (r *recorder) tlsState(c *pop3client.Client) {
	if r == nil {
		return
	}
	st, ok := c.TLSConnectionState()
	if !ok {
		return
	}
	r.mu.Lock()
	if r.state == "" {
		r.state = tls.VersionName(st.Version) + ", " + st.CurveID.String()
	}
	r.mu.Unlock()
}

// add records a worker's successful operations at once.
func (r *recorder) add(lat []time.Duration, bytes int64) {
	r.mu.Lock()
	r.lat = append(r.lat, lat...)
	r.ops += int64(len(lat))
	r.bytes += bytes
	r.mu.Unlock()
}

func (r *recorder) handshakes(total, resumed int64) {
	r.mu.Lock()
	r.tls += total
	r.resumed += resumed
	r.mu.Unlock()
}

// fail records an error; a few distinct ones are kept as samples.
func (r *recorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs++
	s := err.Error()
	if len(r.samples) < 5 && !slices.Contains(r.samples, s) {
		r.samples = append(r.samples, s)
	}
}

func (r *recorder) fill(res *Result, elapsed time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	res.Seconds = elapsed.Seconds()
	res.Ops = r.ops
	res.Errors = r.errs
	res.ErrorSamples = r.samples
	res.Bytes = r.bytes
	if s := elapsed.Seconds(); s > 0 {
		res.OpsPerSec = round(float64(r.ops)/s, 2)
		if r.bytes > 0 {
			res.MBPerSec = round(float64(r.bytes)/s/1e6, 2)
		}
	}
	res.Latency = summarize(r.lat)
	res.TLSState = r.state
	if r.tls > 0 {
		v := round(float64(r.resumed)/float64(r.tls), 3)
		res.ResumedRatio = &v
	}
}

// summarize returns the percentiles of d (nearest rank), or nil.
func summarize(d []time.Duration) *Latency {
	if len(d) == 0 {
		return nil
	}
	s := slices.Clone(d)
	slices.Sort(s)
	var sum time.Duration
	for _, v := range s {
		sum += v
	}
	ms := func(v time.Duration) float64 { return round(float64(v)/1e6, 3) }
	pct := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return &Latency{
		N:    len(s),
		Mean: ms(sum / time.Duration(len(s))),
		P50:  ms(pct(0.50)),
		P90:  ms(pct(0.90)),
		P99:  ms(pct(0.99)),
		Max:  ms(s[len(s)-1]),
	}
}

// median of v (the mean of the middle two for an even count), 0 if empty.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}
