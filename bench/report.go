package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// ReadResults reads the JSON result lines in r; other lines are skipped.
func ReadResults(r io.Reader) ([]*Result, error) {
	var out []*Result
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var res Result
		if err := json.Unmarshal([]byte(line), &res); err != nil {
			return nil, fmt.Errorf("bench: result line: %w", err)
		}
		if res.Scenario != "" {
			out = append(out, &res)
		}
	}
	return out, sc.Err()
}

// metric is one figure of a scenario, read from each result.
type metric struct {
	label  string
	unit   string
	higher bool // higher is better
	value  func(*Result) (float64, bool)
}

func scenarioMetrics(scenario string) []metric {
	cpu := metric{"server CPU per op", "ms", false, func(r *Result) (float64, bool) {
		if r.Server == nil || r.Server.Note != "" || r.Ops == 0 {
			return 0, false
		}
		return r.Server.CPUPerOp, true
	}}
	switch scenario {
	case "sessions":
		return []metric{
			{"sessions/s", "/s", true, func(r *Result) (float64, bool) { return r.OpsPerSec, r.Ops > 0 }},
			{"p50 session", "ms", false, func(r *Result) (float64, bool) { return lat(r, 0.5) }},
			{"p99 session", "ms", false, func(r *Result) (float64, bool) { return lat(r, 0.99) }},
			cpu,
		}
	case "retr", "bigretr":
		return []metric{
			{"RETR throughput", "MB/s", true, func(r *Result) (float64, bool) { return r.MBPerSec, r.Ops > 0 }},
			{"p50 RETR", "ms", false, func(r *Result) (float64, bool) { return lat(r, 0.5) }},
			cpu,
		}
	case "idle":
		return []metric{
			{"PSS per idle session", "KiB", false, func(r *Result) (float64, bool) {
				return idleMem(r, func(i *IdleStats) float64 { return i.PSSPerSession })
			}},
			{"RSS per idle session", "KiB", false, func(r *Result) (float64, bool) {
				return idleMem(r, func(i *IdleStats) float64 { return i.RSSPerSession })
			}},
			{"sessions open", "", true, func(r *Result) (float64, bool) {
				if r.Idle == nil {
					return 0, false
				}
				return float64(r.Idle.Open), true
			}},
		}
	case "bigbox":
		bb := func(f func(*BigBoxStats) float64) func(*Result) (float64, bool) {
			return func(r *Result) (float64, bool) {
				if r.BigBox == nil || r.Ops == 0 {
					return 0, false
				}
				return f(r.BigBox), true
			}
		}
		return []metric{
			{"login+STAT", "ms", false, bb(func(b *BigBoxStats) float64 { return b.LoginStat })},
			{"UIDL first octet", "ms", false, bb(func(b *BigBoxStats) float64 { return b.UIDLFirst })},
			{"UIDL whole", "ms", false, bb(func(b *BigBoxStats) float64 { return b.UIDL })},
			{"LIST whole", "ms", false, bb(func(b *BigBoxStats) float64 { return b.LIST })},
		}
	}
	return nil
}

func lat(r *Result, p float64) (float64, bool) {
	if r.Latency == nil || r.Latency.N == 0 {
		return 0, false
	}
	if p == 0.5 {
		return r.Latency.P50, true
	}
	return r.Latency.P99, true
}

func idleMem(r *Result, f func(*IdleStats) float64) (float64, bool) {
	if r.Idle == nil || r.Idle.MemoryNote != "" || r.Idle.Open == 0 {
		return 0, false
	}
	return f(r.Idle), true
}

// Target is a goal of issue 6 for one figure of one named run.
type Target struct {
	Metric string  // the metric's label
	Versus string  // "dovecot" or "raw": the ratio postie/Versus is held against Ratio
	Ratio  float64 // the ratio must be at least this
	Max    float64 // else postie's own median must be at most this
	Text   string
}

// Targets are the goals, by run name as bench/compare.sh names runs.
var Targets = map[string]Target{
	"sessions-plain":       {Metric: "sessions/s", Versus: "dovecot", Ratio: 3, Text: "≥ 3× Dovecot"},
	"sessions-stls":        {Metric: "sessions/s", Versus: "dovecot", Ratio: 3, Text: "≥ 3× Dovecot"},
	"sessions-tls":         {Metric: "sessions/s", Versus: "dovecot", Ratio: 3, Text: "≥ 3× Dovecot"},
	"sessions-tls-resumed": {Metric: "sessions/s", Versus: "dovecot", Ratio: 3, Text: "≥ 3× Dovecot"},
	"retr-corpus":          {Metric: "RETR throughput", Versus: "dovecot", Ratio: 2, Text: "≥ 2× Dovecot"},
	"bigretr-plain":        {Metric: "RETR throughput", Versus: "raw", Ratio: 0.8, Text: "≥ 0.8 of the raw sender"},
	"bigretr-tls":          {Metric: "RETR throughput", Versus: "raw", Ratio: 0.6, Text: "≥ 0.6 of the raw TLS sender"},
	"idle":                 {Metric: "PSS per idle session", Max: 32, Text: "≤ 32 KiB"},
	"bigbox-warm":          {Metric: "login+STAT", Max: 30, Text: "≤ 30 ms"},
	"bigbox-cold":          {Metric: "login+STAT", Max: 1000, Text: "≤ 1 s"},
}

// Report writes a Markdown table of the medians of results by run name and
// server label (dovecot, dovecot-reuse, postie, raw), with the ratios
// postie/Dovecot and postie/raw sender, and the targets met or not. A
// target against Dovecot is met only when it holds against every Dovecot
// variant measured.
func Report(w io.Writer, results []*Result) {
	type key struct{ name, label string }
	byKey := map[key][]*Result{}
	var names []string
	scenarioOf := map[string]string{}
	for _, r := range results {
		k := key{r.Name, r.Label}
		if _, ok := scenarioOf[r.Name]; !ok {
			names = append(names, r.Name)
			scenarioOf[r.Name] = r.Scenario
		}
		byKey[k] = append(byKey[k], r)
	}
	type figure struct {
		v float64
		n int
	}
	med := func(rs []*Result, m metric) figure {
		var v []float64
		for _, r := range rs {
			if x, ok := m.value(r); ok {
				v = append(v, x)
			}
		}
		return figure{median(v), len(v)}
	}
	cell := func(f figure) string {
		if f.n == 0 {
			return "–"
		}
		return fmt.Sprintf("%s (n=%d)", num(f.v), f.n)
	}
	ratio := func(a, b figure) (float64, string) {
		if a.n == 0 || b.n == 0 || b.v == 0 {
			return 0, "–"
		}
		return a.v / b.v, fmt.Sprintf("%.2f", a.v/b.v)
	}
	fmt.Fprintln(w, "| run | figure | Dovecot | Dovecot (reuse) | postie | raw sender | postie/Dovecot | postie/Dovecot (reuse) | postie/raw | target | met |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, name := range names {
		tg, hasTarget := Targets[name]
		for _, m := range scenarioMetrics(scenarioOf[name]) {
			d := med(byKey[key{name, "dovecot"}], m)
			dr := med(byKey[key{name, "dovecot-reuse"}], m)
			p := med(byKey[key{name, "postie"}], m)
			r := med(byKey[key{name, "raw"}], m)
			if d.n+dr.n+p.n+r.n == 0 {
				continue
			}
			pdv, pd := ratio(p, d)
			pdrv, pdr := ratio(p, dr)
			prv, pr := ratio(p, r)
			target, met := "", ""
			if hasTarget && tg.Metric == m.label {
				target = tg.Text
				switch {
				case tg.Versus == "dovecot" && pd != "–":
					ok := pdv >= tg.Ratio
					if pdr != "–" {
						ok = ok && pdrv >= tg.Ratio
					}
					met = yesNo(ok)
				case tg.Versus == "raw" && pr != "–":
					met = yesNo(prv >= tg.Ratio)
				case tg.Max > 0 && p.n > 0:
					met = yesNo(p.v <= tg.Max)
				default:
					met = "not measured"
				}
			}
			label := m.label
			if m.unit != "" {
				label += " (" + m.unit + ")"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", name, label, cell(d), cell(dr), cell(p), cell(r), pd, pdr, pr, target, met)
		}
	}
	var errs []string
	for k, rs := range byKey {
		var n int64
		for _, r := range rs {
			n += r.Errors
		}
		if n > 0 {
			errs = append(errs, fmt.Sprintf("%s/%s: %d", k.name, k.label, n))
		}
	}
	slices.Sort(errs)
	if len(errs) > 0 {
		fmt.Fprintf(w, "\nErrors: %s\n", strings.Join(errs, ", "))
	} else {
		fmt.Fprintln(w, "\nErrors: none.")
	}
}

func yesNo(ok bool) string {
	if ok {
		return "**met**"
	}
	return "not met"
}

// num formats a figure with about three significant digits.
func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
