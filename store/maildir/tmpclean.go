package maildir

import (
	"errors"
	"os"
	"time"

	"golang.org/x/sys/unix"
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

// maybeCleanTmp removes the stale files of tmp/ in the open Maildir d
// unless this Store did so less than tmpCleanEvery ago. Failures are
// logged, never returned: a leftover costs disk space, not mail.
func (s *Store) maybeCleanTmp(d *mdir) {
	now := s.now()
	s.cleanMu.Lock()
	if last, ok := s.cleaned[d.path]; ok && now.Sub(last) < tmpCleanEvery && now.After(last) {
		s.cleanMu.Unlock()
		return
	}
	if len(s.cleaned) >= maxCleaned {
		clear(s.cleaned)
	}
	s.cleaned[d.path] = now
	s.cleanMu.Unlock()
	s.cleanTmp(d, now)
}

// cleanTmp removes the regular files in tmp/ of the open Maildir d last
// modified before now-tmpMaxAge: in that folder only, never through a
// symbolic link (a tmp/ that is one is not cleaned; one in tmp/ is not a
// regular file).
func (s *Store) cleanTmp(d *mdir, now time.Time) {
	tmp := d.path + "/" + dirTmp
	fd, err := d.sub(dirTmp)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("maildir: cannot clean tmp/", "dir", tmp, "err", err)
		}
		return
	}
	var names []string
	err = readDirFD(fd, func(name []byte, regular bool) {
		if regular {
			names = append(names, string(name))
		}
	})
	if err != nil {
		s.log.Warn("maildir: cannot clean tmp/", "dir", tmp, "err", err)
		return
	}
	cutoff := now.Add(-tmpMaxAge)
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		mtime := time.Unix(st.Mtim.Unix())
		if !mtime.Before(cutoff) {
			continue
		}
		if err := unix.Unlinkat(fd, name, 0); err != nil {
			if err != unix.ENOENT {
				s.log.Warn("maildir: cannot remove stale file in tmp/", "file", tmp+"/"+name, "err", err)
			}
			continue
		}
		s.log.Info("maildir: removed stale file in tmp/", "file", tmp+"/"+name, "modified", mtime.UTC().Format(time.RFC3339), "size", st.Size)
	}
}
