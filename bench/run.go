package bench

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Scenarios lists the scenario names Run knows.
var Scenarios = []string{"sessions", "retr", "bigretr", "idle", "bigbox", "lmtp"}

// Run runs one scenario against the server opts name and returns what it
// measured. Failed operations are counted in the Result, not returned; the
// error is for a run that could not take place (bad options, no server).
// Canceling ctx ends the run early.
func Run(ctx context.Context, scenario string, opts Options) (*Result, error) {
	o := opts
	if err := o.defaults(scenario); err != nil {
		return nil, err
	}
	var f func(context.Context, *Options, *Result) error
	switch scenario {
	case "sessions":
		f = runSessions
	case "retr":
		f = runRetr
	case "bigretr":
		f = runBigRetr
	case "idle":
		f = runIdle
	case "bigbox":
		f = runBigBox
	case "lmtp":
		f = runLMTP
	default:
		return nil, fmt.Errorf("bench: unknown scenario %q (want one of %v)", scenario, Scenarios)
	}
	res := &Result{
		Scenario:    scenario,
		Name:        o.Name,
		Label:       o.Label,
		Addr:        o.Addr,
		TLS:         o.TLS.String(),
		Resume:      o.Resume,
		Concurrency: o.Concurrency,
		Start:       time.Now().UTC().Round(time.Millisecond),
		Host:        hostInfo(),
	}
	if res.Name == "" {
		res.Name = scenario
	}

	pid := o.ServerPID
	var note string
	if pid == 0 {
		var err error
		if pid, err = ListenerPID(o.Addr); err != nil {
			pid, note = -1, "not measured: "+err.Error()
		}
	}
	o.ServerPID = pid
	var before treeSample
	if pid > 0 {
		var err error
		if before, err = sampleTree(pid, false); err != nil {
			pid, note = -1, "not measured: "+err.Error()
		}
	}
	cpu0 := selfCPU()

	err := f(ctx, &o, res)

	res.ClientCPU = round((selfCPU() - cpu0).Seconds(), 3)
	if pid > 0 {
		after, serr := sampleTree(pid, false)
		if serr != nil {
			note = "not measured: " + serr.Error()
		} else {
			st := &ServerStats{PID: pid, Processes: after.procs, CPU: round((after.cpu - before.cpu).Seconds(), 3)}
			if res.Ops > 0 {
				st.CPUPerOp = round(st.CPU*1000/float64(res.Ops), 4)
			}
			res.Server = st
		}
	}
	if res.Server == nil && note != "" {
		res.Server = &ServerStats{PID: -1, Note: note}
	}
	return res, err
}

// userSlots returns the accounts worker w of n may use, so that no two
// workers use one account at once (a POP3 server locks the maildrop: RFC
// 1939 §8). With fewer accounts than workers they must share.
func userSlots(w, n int, c Credentials) []int {
	var s []int
	for i := w; i < c.count(); i += n {
		s = append(s, i)
	}
	if len(s) == 0 {
		s = []int{w % c.count()}
	}
	return s
}

// timedWorkers runs o.Concurrency workers, each with its accounts
// (userSlots), for o.Duration: a worker goes on while more reports true,
// until the time is up or ctx is done. Once all have returned it fills res
// from rec, timed from the start.
func timedWorkers(ctx context.Context, o *Options, res *Result, rec *recorder, work func(slots []int, more func() bool)) {
	start := time.Now()
	deadline := start.Add(o.Duration)
	more := func() bool { return time.Now().Before(deadline) && ctx.Err() == nil }
	var wg sync.WaitGroup
	for w := range o.Concurrency {
		slots := userSlots(w, o.Concurrency, o.Users)
		wg.Go(func() { work(slots, more) })
	}
	wg.Wait()
	rec.fill(res, time.Since(start))
}

// pause waits d or until ctx is done: after an error, so that a server
// that refuses everything is not hammered in a tight loop.
func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
