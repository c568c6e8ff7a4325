package maildir

import (
	"errors"
	"os"
	"path/filepath"
	"time"
)

const (
	// tmpMaxAge is the age after which a file in tmp/ is the leftover of
	// a delivery that died before its rename (36 hours, as the Maildir
	// description and Dovecot use): no delivery takes that long.
	tmpMaxAge = 36 * time.Hour
	// tmpCleanEvery is how often one Store looks at a Maildir's tmp/.
	tmpCleanEvery = time.Hour
	// maxCleaned bounds the memory of when each Maildir was cleaned.
	maxCleaned = 100_000
)

// maybeCleanTmp removes the stale files of dir/tmp unless this Store did so
// less than tmpCleanEvery ago. Failures are logged, never returned: a
// leftover costs disk space, not mail.
func (s *Store) maybeCleanTmp(dir string) {
	now := s.now()
	s.cleanMu.Lock()
	if last, ok := s.cleaned[dir]; ok && now.Sub(last) < tmpCleanEvery && now.After(last) {
		s.cleanMu.Unlock()
		return
	}
	if len(s.cleaned) >= maxCleaned {
		clear(s.cleaned)
	}
	s.cleaned[dir] = now
	s.cleanMu.Unlock()
	s.cleanTmp(dir, now)
}

// cleanTmp removes the regular files in dir/tmp last modified before
// now-tmpMaxAge.
func (s *Store) cleanTmp(dir string, now time.Time) {
	tmp := filepath.Join(dir, dirTmp)
	d, err := os.Open(tmp)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("maildir: cannot clean tmp/", "dir", tmp, "err", err)
		}
		return
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		s.log.Warn("maildir: cannot clean tmp/", "dir", tmp, "err", err)
		return
	}
	cutoff := now.Add(-tmpMaxAge)
	for _, name := range names {
		p := filepath.Join(tmp, name)
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() || !fi.ModTime().Before(cutoff) {
			continue
		}
		if err := os.Remove(p); err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				s.log.Warn("maildir: cannot remove stale file in tmp/", "file", p, "err", err)
			}
			continue
		}
		s.log.Info("maildir: removed stale file in tmp/", "file", p, "modified", fi.ModTime().UTC().Format(time.RFC3339), "size", fi.Size())
	}
}
