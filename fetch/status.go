package fetch

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postie-mail/postie/internal/fsutil"
)

// Status is the result of an account's last run (not dry runs), kept in
// NAME.status in the state directory for `postie fetch status`.
type Status struct {
	// Time is when the run ended.
	Time     time.Time `json:"time"`
	Fetched  int       `json:"fetched"`
	Octets   int64     `json:"octets"`
	Deleted  int       `json:"deleted"`
	Skipped  int       `json:"skipped"`
	Deferred int       `json:"deferred,omitempty"`
	Failed   int       `json:"failed,omitempty"`
	Left     int       `json:"left,omitempty"`
	// Error and Kind are the run's failure, or empty.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	// LastOK is when a run last ended without an error.
	LastOK time.Time `json:"last_ok,omitzero"`
	// SCRAMRefused is when the server last refused auth = "auto"'s SCRAM
	// login and the next mechanism worked, for SCRAMRefusedFor (user and
	// server): later runs skip SCRAM for scramMemory (see login).
	SCRAMRefused    time.Time `json:"scram_refused,omitzero"`
	SCRAMRefusedFor string    `json:"scram_refused_for,omitempty"`
	// SCRAMFallback is the mechanism that worked then ("plain", "user",
	// "login"); empty in status files written before it was recorded.
	SCRAMFallback string `json:"scram_fallback,omitempty"`
}

func (c *Config) statusFile(a *Account) string { return filepath.Join(c.StateDir, a.Name+".status") }

// maxStatus bounds what is read of a status file.
const maxStatus = 64 << 10

// LastStatus returns the result of account a's last run, or nil when it
// has none yet.
func (c *Config) LastStatus(a *Account) (*Status, error) {
	data, err := os.ReadFile(c.statusFile(a))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var s Status
	if len(data) > maxStatus || json.Unmarshal(data, &s) != nil {
		return nil, fmt.Errorf("%s: not a status file", c.statusFile(a))
	}
	return &s, nil
}

// saveStatus records res as the account's last run. A failure to write it
// is logged: it must not fail a run that delivered mail.
func (f *Fetcher) saveStatus(res *Result) {
	if res.DryRun {
		return
	}
	s := &Status{Time: f.opts.now().UTC().Truncate(time.Second), Fetched: res.Fetched, Octets: res.Octets,
		Deleted: res.Deleted, Skipped: res.Skipped, Deferred: res.Deferred, Failed: res.Failed, Left: res.Left}
	if res.Err != nil {
		s.Error, s.Kind = res.Err.Err.Error(), res.Err.Kind.String()
		if old, err := f.cfg.LastStatus(f.acct); err == nil && old != nil {
			s.LastOK = old.LastOK
		}
	} else {
		s.LastOK = s.Time
	}
	f.recall()
	s.SCRAMRefused, s.SCRAMRefusedFor, s.SCRAMFallback = f.scramRefused, f.scramRefusedFor, f.scramFallback
	data, _ := json.Marshal(s)
	if err := fsutil.WriteFileAtomic(f.cfg.statusFile(f.acct), append(data, '\n'), fsutil.WriteOptions{Perm: 0o600}); err != nil {
		f.log().Warn("could not record the run's status", "account", f.acct.Name, "err", err)
	}
}

// Summary describes the run for postie fetch status, with how long ago
// (from now) it ended.
func (s *Status) Summary(now time.Time) string {
	line := fmt.Sprintf("last run %s (%s ago): fetched %d (%s), deleted %d, skipped %d",
		s.Time.Local().Format(time.DateTime), now.Sub(s.Time).Truncate(time.Second), s.Fetched, humanOctets(s.Octets), s.Deleted, s.Skipped)
	if s.Deferred > 0 {
		line += fmt.Sprintf(", deferred %d", s.Deferred)
	}
	if s.Failed > 0 {
		line += fmt.Sprintf(", failed %d", s.Failed)
	}
	if s.Left > 0 {
		line += fmt.Sprintf(", %d left for the next run", s.Left)
	}
	if s.Error != "" {
		line += "; error (" + s.Kind + "): " + s.Error
		if s.LastOK.IsZero() {
			line += "; no run without an error yet"
		} else {
			line += "; last good run " + s.LastOK.Local().Format(time.DateTime)
		}
	}
	return line
}

// SASL describes, for postie fetch status, a SCRAM refusal that the runs
// of account a remember at now (see login): "SASL: SCRAM refused on …,
// using PLAIN until …". It is empty when none is in effect: none was
// recorded, it is scramMemory old, or it was for another user or server
// than a's.
func (s *Status) SASL(a *Account, now time.Time) string {
	if s.SCRAMRefused.IsZero() || s.SCRAMRefusedFor != scramKey(a) {
		return ""
	}
	until := s.SCRAMRefused.Add(scramMemory)
	if now.Before(s.SCRAMRefused) || !now.Before(until) {
		return ""
	}
	// The status file is only read: a value that fetch does not write
	// (an older file, or one edited) is not printed.
	using := "the next mechanism"
	switch s.SCRAMFallback {
	case "user":
		using = "USER/PASS"
	case "plain", "login":
		using = strings.ToUpper(s.SCRAMFallback)
	}
	return fmt.Sprintf("SASL: SCRAM refused on %s, using %s until %s",
		s.SCRAMRefused.Local().Format(time.DateTime), using, until.Local().Format(time.DateTime))
}
