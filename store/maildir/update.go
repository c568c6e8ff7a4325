package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
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

// writeJournal durably records the base names Commit is about to remove.
func writeJournal(dir string, bases []string) error {
	var b strings.Builder
	b.WriteString(journalHeader + "\n")
	for _, base := range bases {
		b.WriteString(base)
		b.WriteByte('\n')
	}
	tmp := dir + "/" + journalName + ".tmp"
	if err := writeSync(tmp, b.String()); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dir+"/"+journalName); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// createNew creates the file path afresh for writing, removing what was
// there first: never through a symbolic link someone put in its place
// (O_EXCL does not follow one), which could make the server overwrite any
// file it may write.
func createNew(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// writeSync writes data to a new file at path and fsyncs it.
func writeSync(path, data string) error {
	f, err := createNew(path)
	if err != nil {
		return err
	}
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeJournal removes the journal once the removals are done. Its own
// removal need not be durable: a journal that comes back names files that
// are gone, and base names are never reused.
func removeJournal(dir string) error {
	err := os.Remove(dir + "/" + journalName)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// finishUpdate completes an UPDATE that a crash interrupted, if the
// Maildir dir has a journal: the messages it names that are still in new/
// or cur/ are removed, then the journal. The lock must be held. It
// reports how many it removed; on an error the journal stays for the next
// Open to try again.
func (s *Store) finishUpdate(dir, user string) (int, error) {
	path := dir + "/" + journalName
	// Every login asks: a stat(2) that fails is the cheapest answer.
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == syscall.ENOENT {
		return 0, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("maildir: update journal: %w", err)
	}
	text, ok := strings.CutPrefix(string(data), journalHeader+"\n")
	if !ok || !strings.HasSuffix(text, "\n") && text != "" {
		// Written whole or not at all (renamed into place): this is
		// not ours. Nothing is removed on its word.
		s.log.Error("maildir: ignoring a damaged update journal", "user", user, "file", dir+"/"+journalName)
		return 0, os.Rename(dir+"/"+journalName, dir+"/"+journalName+".damaged")
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
		var names []string
		err := readDir(dir+"/"+sub, func(b []byte, _ bool) {
			name := string(b)
			if base, _, _ := strings.Cut(name, ":"); bases[base] {
				names = append(names, name)
			}
		})
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		for _, name := range names {
			if err := syscall.Unlink(dir + "/" + sub + "/" + name); err != nil && err != syscall.ENOENT {
				errs = append(errs, &os.PathError{Op: "unlink", Path: dir + "/" + sub + "/" + name, Err: err})
				continue
			}
			removed++
		}
		if len(names) > 0 {
			if err := syncDir(dir + "/" + sub); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("maildir: finishing an interrupted update: %w", err)
	}
	if s.snaps != nil && removed > 0 {
		s.snaps.drop(dir)
	}
	return removed, removeJournal(dir)
}
