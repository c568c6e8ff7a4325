package fetch

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sync"

	"github.com/postie-mail/postie/internal/fsutil"
	"github.com/postie-mail/postie/internal/maildirname"
)

// maildirDest delivers into a Maildir (https://cr.yp.to/proto/maildir.html)
// under names that carry a hash of the account and the message id:
//
//	<secs>.M<usec>F<hash>.<host>,S=<file size>,W=<wire size>
//
// <hash> is 32 hex digits of SHA-256(account NUL id). A message is written
// to tmp/F<hash>.<host> (a name no other delivery uses while the account is
// locked), fsynced, renamed into new/ and new/ fsynced. Messages go in
// batches: the files of a batch are written and fsynced together, in the
// background, while the next batch is retrieved. After a run that did not end, new/ and cur/
// are read once for the hashes they hold, so that a message written but not
// recorded is recorded instead of written twice: Maildir delivery is exactly
// once. Line ends are LF.
type maildirDest struct {
	dir     string
	account string
	host    string
	found   map[string]bool // hashes in new/ and cur/ (after a dirty run)
	batch   []*stagedFile
	octets  int64
	bw      *bufio.Writer
	copyBuf []byte // deliver's, for every message (io.Copy made one each)
	// The (seconds, microseconds) of the last name: names strictly
	// increase, so messages sort in the order they were fetched.
	lastSec, lastUsec int64
}

// stagedFile is a message delivered to tmp/ (f), or still in memory
// (data), waiting for flush.
type stagedFile struct {
	f          *os.File
	data       []byte
	tmp, final string
}

// write makes the file in tmp/ durable, writing it first if needed.
func (s *stagedFile) write() error {
	if s.f == nil {
		f, err := os.OpenFile(s.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		s.f = f
		if _, err := f.Write(s.data); err != nil {
			f.Close()
			return err
		}
		s.data = nil
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	return err
}

var _ destination = (*maildirDest)(nil)

var fetchedName = regexp.MustCompile(`\.M[0-9]+F([0-9a-f]{32})\.`)

func openMaildir(dir, account string, scan bool) (*maildirDest, error) {
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return nil, fmt.Errorf("maildir: %w", err)
		}
	}
	host, _ := os.Hostname()
	d := &maildirDest{dir: dir, account: account, host: maildirHost(host), bw: bufio.NewWriterSize(nil, 64<<10)}
	if scan {
		d.found = map[string]bool{}
		for _, sub := range []string{"new", "cur"} {
			ents, err := os.ReadDir(filepath.Join(dir, sub))
			if err != nil {
				return nil, fmt.Errorf("maildir: %w", err)
			}
			for _, e := range ents {
				if m := fetchedName.FindStringSubmatch(e.Name()); m != nil {
					d.found[m[1]] = true
				}
			}
		}
	}
	return d, nil
}

// maildirHost is host name h as a Maildir name holds it ("localhost" when
// unknown): escaped as the Maildir store escapes it, and cut to 64 octets.
func maildirHost(h string) string {
	if h == "" {
		h = "localhost"
	}
	if h = maildirname.EscapeHost(h); len(h) > 64 {
		h = h[:64]
	}
	return h
}

func (d *maildirDest) hash(id string) string {
	sum := sha256.Sum256([]byte(d.account + "\x00" + id))
	return hex.EncodeToString(sum[:16])
}

func (d *maildirDest) has(m *message) bool { return d.found[d.hash(m.id)] }

// maxInMemory is the largest message deliver keeps in memory for the
// background flush to write; bigger ones are written to tmp/ as they
// arrive. The size the server announced only chooses where to start: a
// message that turns out bigger than it said moves to tmp/ once it passes
// maxInMemory, so a server that understates sizes cannot make fetch hold
// more than that of it.
const maxInMemory = 1 << 20

func (d *maildirDest) deliver(ctx context.Context, m *message, r io.Reader) (bool, error) {
	h := d.hash(m.id)
	s := &stagedFile{tmp: filepath.Join(d.dir, "tmp", "F"+h+"."+d.host)}
	sw := &spillWriter{max: maxInMemory, open: func() (*os.File, error) {
		return os.OpenFile(s.tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	}, bw: d.bw}
	if m.size <= maxInMemory {
		// Kept in memory: the file is created, written and fsynced by
		// flush, in the background, while the next messages arrive.
		sw.buf = make([]byte, 0, max(m.size, 0)+max(m.size, 0)/32+64)
	} else {
		sw.max = 0 // to tmp/ at once
	}
	lw := &lfWriter{w: sw}
	if d.copyBuf == nil {
		d.copyBuf = make([]byte, 32<<10)
	}
	wire, err := io.CopyBuffer(lw, r, d.copyBuf)
	if err == nil {
		err = lw.finish()
	}
	if err == nil && sw.f != nil {
		err = d.bw.Flush()
	}
	if err != nil {
		if sw.f != nil {
			sw.f.Close()
			os.Remove(s.tmp)
		}
		if sw.openErr {
			err = fmt.Errorf("maildir: %w", err)
		}
		return false, err
	}
	size := sw.n
	if sw.f != nil {
		s.f = sw.f
	} else {
		s.data = sw.buf
	}
	sec, usec := m.at.Unix(), int64(m.at.Nanosecond()/1000)
	if sec < d.lastSec || sec == d.lastSec && usec <= d.lastUsec {
		sec, usec = d.lastSec, d.lastUsec+1
		if usec >= 1e6 {
			sec, usec = sec+1, 0
		}
	}
	d.lastSec, d.lastUsec = sec, usec
	s.final = filepath.Join(d.dir, "new", fmt.Sprintf("%d.M%06dF%s.%s,S=%d,W=%d", sec, usec, h, d.host, size, wire))
	d.batch = append(d.batch, s)
	d.octets += size
	return false, nil
}

func (d *maildirDest) staged() (int, int64) { return len(d.batch), d.octets }

// syncWorkers is how many fsyncs of a batch run at once: file systems
// commit concurrent fsyncs together.
const syncWorkers = 16

func (d *maildirDest) detach() func() error {
	batch := d.batch
	d.batch, d.octets = nil, 0
	return func() error { return d.flush(batch) }
}

// flush makes the batch durable: fsyncs (together), renames into new/,
// fsync of new/. It touches nothing deliver uses.
func (d *maildirDest) flush(batch []*stagedFile) error {
	if len(batch) == 0 {
		return nil
	}
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(syncWorkers, len(batch)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = batch[i].write()
			}
		})
	}
	for i := range batch {
		next <- i
	}
	close(next)
	wg.Wait()
	err := errors.Join(errs...)
	if err == nil {
		for _, s := range batch {
			// The final name is unique to this message and delivery
			// time: rename(2) replaces nothing of anyone else's.
			if err = os.Rename(s.tmp, s.final); err != nil {
				break
			}
		}
	}
	if err == nil {
		err = fsutil.SyncDir(filepath.Join(d.dir, "new"))
	}
	if err != nil {
		for _, s := range batch {
			os.Remove(s.tmp)
		}
	}
	if err != nil {
		return fmt.Errorf("maildir: %w", err)
	}
	return nil
}

func (d *maildirDest) close() error {
	for _, s := range d.batch {
		if s.f != nil {
			s.f.Close()
			os.Remove(s.tmp)
		}
	}
	d.batch = nil
	return nil
}

// spillWriter keeps what is written in buf up to max octets, then moves
// it to the file open gives and writes on there, through bw.
type spillWriter struct {
	max     int
	buf     []byte
	open    func() (*os.File, error)
	bw      *bufio.Writer
	f       *os.File // once spilled
	n       int64    // octets written
	openErr bool     // the error came from the file
}

func (w *spillWriter) Write(p []byte) (int, error) {
	if w.f == nil && len(w.buf)+len(p) > w.max {
		f, err := w.open()
		if err != nil {
			w.openErr = true
			return 0, err
		}
		w.f = f
		w.bw.Reset(f)
		if _, err := w.bw.Write(w.buf); err != nil {
			w.openErr = true
			return 0, err
		}
		w.buf = nil
	}
	if w.f != nil {
		n, err := w.bw.Write(p)
		w.n += int64(n)
		if err != nil {
			w.openErr = true
		}
		return n, err
	}
	w.buf = append(w.buf, p...)
	w.n += int64(len(p))
	return len(p), nil
}
