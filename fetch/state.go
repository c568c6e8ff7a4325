package fetch

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/postie-mail/postie/internal/fsutil"
)

// The state of an account lives in three files of the state directory:
//
//	NAME.state    the snapshot: one line per message id, rewritten
//	              atomically (temporary file, fsync, rename, fsync of the
//	              directory)
//	NAME.journal  records appended (and fsynced) since the snapshot
//	NAME.lock     flock(2)ed while a run uses the account
//
// The snapshot starts with "postie-fetch-state 1" (followed by " dirty"
// when the run that wrote it may have left unrecorded deliveries), then
// has one line per id:
//
//	<id> <first seen> <delivered> <pending offset> <pending time>
//
// with Unix times in seconds (0: not delivered) and a pending offset of -1
// when no delivery is pending. Journal lines end with the CRC-32 of the
// rest of the line in hex, so a torn last line (a crash during the append)
// is recognized and ignored:
//
//	B <time>                 a run began
//	D <time> <id>...         delivered (durably, before this record)
//	P <id> <offset> <time>   a delivery is about to start (mbox offset)
//	U <id>                   that delivery did not happen (refused)
//
// A journal that is not empty when a run starts means the previous run
// did not end (killed, crashed, power lost): the state is then "dirty"
// and the destination is checked for deliveries that were not recorded.

// ErrBusy is returned when another process is fetching the same account.
var ErrBusy = errors.New("the account is being fetched by another postie fetch")

type entry struct {
	seen      int64 // first listed, Unix seconds
	delivered int64 // delivered, Unix seconds; 0 when not
	pendOff   int64 // offset of a pending delivery, -1 when none
	pendTime  int64 // time of the pending delivery (mbox From_ line)
}

type state struct {
	dir, name string
	lock      *os.File
	journal   *os.File
	entries   map[string]*entry
	dirty     bool // the previous run did not end cleanly
	readOnly  bool
	buf       bytes.Buffer
}

const stateMagic = "postie-fetch-state 1"

func (s *state) path(ext string) string { return filepath.Join(s.dir, s.name+ext) }

// openState locks and loads the state of account name in dir. Unless
// readOnly it then writes a fresh snapshot and marks the run begun.
func openState(dir, name string, readOnly bool, now time.Time) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	s := &state{dir: dir, name: name, entries: map[string]*entry{}, readOnly: readOnly}
	lf, err := os.OpenFile(s.path(".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (lock %s)", ErrBusy, s.path(".lock"))
		}
		return nil, fmt.Errorf("state: lock %s: %w", s.path(".lock"), err)
	}
	s.lock = lf
	if err := s.load(); err != nil {
		s.unlock()
		return nil, err
	}
	if readOnly {
		return s, nil
	}
	jf, err := os.OpenFile(s.path(".journal"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		s.unlock()
		return nil, fmt.Errorf("state: %w", err)
	}
	s.journal = jf
	if err := s.compact(s.dirty); err != nil {
		s.close(false)
		return nil, err
	}
	if err := s.append("B " + unix(now)); err != nil {
		s.close(false)
		return nil, err
	}
	return s, nil
}

func (s *state) unlock() {
	if s.lock != nil {
		s.lock.Close() // releases the flock
		s.lock = nil
	}
}

// load reads the snapshot and replays the journal.
func (s *state) load() error {
	data, err := os.ReadFile(s.path(".state"))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return fmt.Errorf("state: %w", err)
	default:
		if err := s.parseSnapshot(data); err != nil {
			return fmt.Errorf("state: %s is damaged (%v); move it away to start over: the messages still on the server are then fetched again", s.path(".state"), err)
		}
	}
	jdata, err := os.ReadFile(s.path(".journal"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	if len(jdata) > 0 {
		s.dirty = true
		s.replay(jdata)
	}
	return nil
}

func (s *state) parseSnapshot(data []byte) error {
	header, rest, _ := bytes.Cut(data, []byte("\n"))
	h := string(header)
	switch h {
	case stateMagic:
	case stateMagic + " dirty":
		s.dirty = true
	default:
		return fmt.Errorf("unknown header %q", h)
	}
	for n, line := range strings.Split(string(rest), "\n") {
		if line == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 5 {
			return fmt.Errorf("line %d: %d fields", n+2, len(f))
		}
		var v [4]int64
		for i := range v {
			x, err := strconv.ParseInt(f[i+1], 10, 64)
			if err != nil {
				return fmt.Errorf("line %d: %v", n+2, err)
			}
			v[i] = x
		}
		s.entries[f[0]] = &entry{seen: v[0], delivered: v[1], pendOff: v[2], pendTime: v[3]}
	}
	return nil
}

// replay applies the journal's records, up to the first damaged one.
func (s *state) replay(data []byte) {
	for len(data) > 0 {
		line, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return // torn last line
		}
		data = rest
		payload, ok := checkLine(string(line))
		if !ok {
			return
		}
		f := strings.Fields(payload)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "D":
			if len(f) < 3 {
				return
			}
			t, _ := strconv.ParseInt(f[1], 10, 64)
			for _, id := range f[2:] {
				e := s.get(id, t)
				if e.delivered == 0 {
					e.delivered = t
				}
				e.pendOff = -1
			}
		case "U":
			if len(f) != 2 {
				return
			}
			if e := s.entries[f[1]]; e != nil {
				e.pendOff = -1
			}
		case "P":
			if len(f) != 4 {
				return
			}
			off, _ := strconv.ParseInt(f[2], 10, 64)
			t, _ := strconv.ParseInt(f[3], 10, 64)
			e := s.get(f[1], t)
			e.pendOff, e.pendTime = off, t
		}
	}
}

func checkLine(line string) (string, bool) {
	i := strings.LastIndexByte(line, ' ')
	if i < 0 {
		return "", false
	}
	sum, err := strconv.ParseUint(line[i+1:], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(line[:i])) {
		return "", false
	}
	return line[:i], true
}

// get returns the entry of id, creating it (first seen at t) if needed.
func (s *state) get(id string, t int64) *entry {
	e := s.entries[id]
	if e == nil {
		e = &entry{seen: t, pendOff: -1}
		s.entries[id] = e
	}
	return e
}

// lookup returns the entry of id or nil.
func (s *state) lookup(id string) *entry { return s.entries[id] }

// append writes journal lines and fsyncs them.
func (s *state) append(payloads ...string) error {
	if s.readOnly {
		return errors.New("state: read-only")
	}
	s.buf.Reset()
	for _, p := range payloads {
		s.buf.WriteString(p)
		fmt.Fprintf(&s.buf, " %08x\n", crc32.ChecksumIEEE([]byte(p)))
	}
	if _, err := s.journal.Write(s.buf.Bytes()); err != nil {
		return fmt.Errorf("state: journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("state: journal: %w", err)
	}
	return nil
}

// maxIDsPerRecord keeps journal lines of a reasonable length.
const maxIDsPerRecord = 64

// recordDelivered durably records the ids as delivered at t.
func (s *state) recordDelivered(ids []string, t time.Time) error {
	var recs []string
	for start := 0; start < len(ids); start += maxIDsPerRecord {
		part := ids[start:min(start+maxIDsPerRecord, len(ids))]
		recs = append(recs, "D "+unix(t)+" "+strings.Join(part, " "))
	}
	if err := s.append(recs...); err != nil {
		return err
	}
	for _, id := range ids {
		e := s.get(id, t.Unix())
		if e.delivered == 0 {
			e.delivered = t.Unix()
		}
		e.pendOff = -1
	}
	return nil
}

// recordPending durably records that a delivery of id starts (at offset
// off of an mbox, 0 otherwise) at time t.
func (s *state) recordPending(id string, off int64, t time.Time) error {
	if err := s.append(fmt.Sprintf("P %s %d %d", id, off, t.Unix())); err != nil {
		return err
	}
	e := s.get(id, t.Unix())
	e.pendOff, e.pendTime = off, t.Unix()
	return nil
}

// clearPending durably records that the pending delivery of id did not
// happen.
func (s *state) clearPending(id string) error {
	if err := s.append("U " + id); err != nil {
		return err
	}
	if e := s.entries[id]; e != nil {
		e.pendOff = -1
	}
	return nil
}

// compact writes the snapshot atomically and empties the journal. dirty
// marks the snapshot as possibly missing deliveries.
func (s *state) compact(dirty bool) error {
	var b bytes.Buffer
	b.WriteString(stateMagic)
	if dirty {
		b.WriteString(" dirty")
	}
	b.WriteByte('\n')
	ids := make([]string, 0, len(s.entries))
	for id := range s.entries {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := s.entries[id]
		fmt.Fprintf(&b, "%s %d %d %d %d\n", id, e.seen, e.delivered, e.pendOff, e.pendTime)
	}
	if err := fsutil.WriteFileAtomic(s.path(".state"), b.Bytes(), fsutil.WriteOptions{Perm: 0o600}); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := s.journal.Truncate(0); err != nil {
		return fmt.Errorf("state: journal: %w", err)
	}
	if err := s.journal.Sync(); err != nil {
		return fmt.Errorf("state: journal: %w", err)
	}
	return nil
}

// close ends the run: a snapshot (dirty unless clean), then the lock is
// released.
func (s *state) close(clean bool) error {
	var err error
	if s.journal != nil {
		err = s.compact(!clean)
		if cerr := s.journal.Close(); err == nil {
			err = cerr
		}
		s.journal = nil
	}
	s.unlock()
	return err
}

func unix(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }
