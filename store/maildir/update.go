package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// The update journal makes an UPDATE all or nothing across a crash. Commit
// of more than one message first writes the base names of the messages it is about to remove to
// postie-update (temporary file, fsync, rename, fsync of the Maildir), then
// unlinks them, fsyncs new/ and cur/, and removes the journal. A process
// killed in the middle leaves the journal behind, and the next Open, under
// the lock, finishes the removals before it takes its snapshot. So a QUIT
// whose reply never came removed either none of the messages marked (the
// journal was not complete: nothing was unlinked yet) or all of them.
//
// Where the journal cannot be written (a full disk, where removing mail is
// the way out), Commit removes the messages without it, each removal still
// atomic on its own.
const (
	journalName   = "postie-update"
	journalHeader = "postie-update 1"
)

// maxJournal bounds the journal: a bigger one is not written (Commit then
// removes without one) and not read.
const maxJournal = 64 << 20

// errJournalTooBig reports a journal that would exceed maxJournal.
var errJournalTooBig = errors.New("maildir: update journal: too many messages")

// writeJournal durably records the base names Commit is about to remove,
// in the open Maildir dirfd.
func writeJournal(dirfd int, bases []string) error {
	var b strings.Builder
	b.WriteString(journalHeader + "\n")
	for _, base := range bases {
		b.WriteString(base)
		b.WriteByte('\n')
	}
	if b.Len() > maxJournal {
		return errJournalTooBig
	}
	return replaceAt(dirfd, journalName, func(bw *bufio.Writer) error {
		_, err := bw.WriteString(b.String())
		return err
	})
}

// removeJournal removes the journal once the removals are done. Its own
// removal need not be durable: a journal that comes back names files that
// are gone, and base names are never reused.
func removeJournal(dirfd int) error {
	return unlinkAt(dirfd, journalName)
}

// finishUpdate completes an UPDATE that a crash interrupted, if the
// open Maildir d has a journal: the messages it names that are still in
// new/ or cur/ are removed, then the journal. The lock must be held. It
// reports how many it removed; on an error the journal stays for the next
// Open to try again. A journal that is not a regular file, or too big, or
// damaged, removes nothing and is renamed out of the way.
func (s *Store) finishUpdate(d *mdir, user string) (int, error) {
	// Every login asks: a stat(2) that fails is the cheapest answer.
	var st unix.Stat_t
	if err := unix.Fstatat(d.fd, journalName, &st, unix.AT_SYMLINK_NOFOLLOW); err == unix.ENOENT {
		return 0, nil
	}
	data, err := readStateFile(d.fd, journalName, maxJournal)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	damaged := errors.Is(err, errUnsafe) || errors.Is(err, errTooBig)
	if err != nil && !damaged {
		return 0, fmt.Errorf("maildir: update journal: %w", err)
	}
	text, ok := strings.CutPrefix(string(data), journalHeader+"\n")
	if damaged || !ok || !strings.HasSuffix(text, "\n") && text != "" {
		// Written whole or not at all (renamed into place): this is
		// not ours. Nothing is removed on its word.
		s.log.Error("maildir: ignoring a damaged update journal", "user", user, "file", d.path+"/"+journalName, "err", err)
		return 0, renameAt(d.fd, journalName, d.fd, journalName+".damaged")
	}
	bases := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		bases[sc.Text()] = true
	}
	removed := 0
	var errs []error
	for _, sub := range []string{dirNew, dirCur} {
		fd, err := d.sub(sub)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var names []string
		err = readDirFD(fd, func(b []byte, regular bool) {
			name := string(b)
			if base, _, _ := strings.Cut(name, ":"); regular && bases[base] {
				names = append(names, name)
			}
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, name := range names {
			if err := unlinkAt(fd, name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed++
		}
		if len(names) > 0 {
			if err := syncFD(fd); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("maildir: finishing an interrupted update: %w", err)
	}
	if s.snaps != nil && removed > 0 {
		s.snaps.drop(d.path)
	}
	return removed, removeJournal(d.fd)
}
