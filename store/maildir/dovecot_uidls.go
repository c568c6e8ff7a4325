package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// postie-uidls records the UIDL postie answered for each message of a
// maildrop taken over from Dovecot or Courier, so that a message keeps it
// for as long as it exists whatever later happens to dovecot-uidlist or
// courierpop3dsizelist (the other server run again on the Maildir, the
// file lost and rebuilt with a new UIDVALIDITY). It exists only in
// maildrops that have, or had, one of those files, and is rebuilt from
// them when lost: deleting it changes no UIDL as long as they are
// unchanged.
//
// Format: a "postie-uidls 1" header line, then one line per message in
// snapshot order:
//
//	<unique name> <UIDL>
//
// It is rewritten atomically (temporary file, fsync, rename) by the
// session holding the lock, when messages were added or removed.
const (
	uidlsName   = "postie-uidls"
	uidlsHeader = "postie-uidls 1"
	// maxUIDLs bounds the file: 1,000,000 messages of long names.
	maxUIDLs = 400 << 20
)

// errCorruptUIDLs reports a postie-uidls that cannot be parsed.
var errCorruptUIDLs = errors.New("maildir: corrupt postie-uidls")

// loadUIDLs reads postie-uidls of the open Maildir dirfd: an empty map
// when there is none (had false). Only a regular file is read (never
// through a symbolic link), up to maxUIDLs octets.
func loadUIDLs(dirfd int) (m map[string]string, had bool, err error) {
	data, err := readStateFile(dirfd, uidlsName, maxUIDLs)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, false, nil
	}
	if err != nil {
		return nil, true, fmt.Errorf("%w: %v", errCorruptUIDLs, err)
	}
	text, ok := strings.CutPrefix(string(data), uidlsHeader+"\n")
	if !ok || text != "" && text[len(text)-1] != '\n' {
		return nil, true, errCorruptUIDLs
	}
	m = make(map[string]string, strings.Count(text, "\n"))
	for text != "" {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			return nil, true, errCorruptUIDLs
		}
		key, uidl := line[:i], line[i+1:]
		if !validUID(uidl) || strings.ContainsFunc(key, isControl) {
			return nil, true, errCorruptUIDLs
		}
		if _, dup := m[key]; dup {
			return nil, true, errCorruptUIDLs
		}
		m[key] = uidl
	}
	return m, true, nil
}

// uidlEntry is one line of postie-uidls.
type uidlEntry struct{ unique, uidl string }

// saveUIDLs replaces postie-uidls of the open Maildir dirfd with entries,
// atomically, never writing through a symbolic link.
func saveUIDLs(dirfd int, entries []uidlEntry) error {
	err := replaceAt(dirfd, uidlsName, func(bw *bufio.Writer) error {
		bw.WriteString(uidlsHeader + "\n")
		for _, e := range entries {
			bw.WriteString(e.unique)
			bw.WriteByte(' ')
			bw.WriteString(e.uidl)
			bw.WriteByte('\n')
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("maildir: postie-uidls: %w", err)
	}
	return nil
}

// takenOverUIDLs gives the messages of snap, whose UIDLs are postie's
// own, the UIDLs Dovecot or Courier gave them (see "Taking over from
// Dovecot" and "Taking over from Courier" in the package doc): the one
// recorded in postie-uidls, else the one dovecot-uidlist implies, else
// the one courierpop3dsizelist lists, else postie's own; and records what
// it answered. A file postie cannot use is logged, and then messages not
// yet recorded keep postie's own UIDL for this session without being
// recorded, so that the answer can still follow the file once it is
// repaired. It reports whether it did (and then made the UIDLs unique).
// md holds the lock.
func (md *maildrop) takenOverUIDLs(snap *snapshot) bool {
	s := md.s
	if s.dovecot == nil && !s.courier || len(snap.infos) == 0 {
		return false
	}
	rec, had, err := loadUIDLs(md.d.fd)
	if err != nil {
		s.log.Warn("maildir: ignoring postie-uidls; rebuilding it from the files of the server taken over from", "user", md.user, "err", err)
		rec = map[string]string{}
	}
	// The other server's files are read only when a message has no
	// recorded answer (the first login after the takeover, new mail):
	// usually never.
	var dl *dovecotUidlist
	var cl *courierSizelist
	var derr error
	read := false
	readForeign := func() {
		if read {
			return
		}
		read = true
		if s.dovecot != nil {
			if dl, derr = md.readDovecotUidlist(); derr != nil {
				s.log.Error("maildir: cannot use dovecot-uidlist; messages not yet answered keep postie's own UIDL this session", "user", md.user, "err", derr)
				return
			}
		}
		if s.courier {
			if cl, derr = readSizelist(md.d.fd); derr != nil {
				s.log.Error("maildir: cannot use courierpop3dsizelist; messages not yet answered keep postie's own UIDL this session", "user", md.user, "err", derr)
				return
			}
			if cl != nil && cl.bad > 0 {
				s.log.Warn("maildir: courierpop3dsizelist lines skipped; their messages get postie's own UIDL", "user", md.user, "lines", cl.bad, "first_line", cl.badLine)
			}
		}
	}
	if !had {
		readForeign()
		if dl == nil && cl == nil && derr == nil {
			// Never Dovecot's or Courier's: postie's own UIDLs,
			// nothing to record.
			return false
		}
	}
	entries := make([]uidlEntry, 0, len(snap.infos))
	used := make(map[string]bool, len(snap.infos))
	found, added := 0, 0
	for i := range snap.infos {
		m := &snap.files[snap.pos[i]]
		own := snap.infos[i].UID
		uidl, ok := rec[m.n.unique]
		if !ok {
			readForeign()
		}
		switch {
		case ok:
			found++
		case derr != nil:
			uidl = own
		default:
			added++
			uidl = own
			if r := dl.lookup(m.n.unique); r != nil {
				uidl = s.dovecot.uidl(r, dl.validity)
				if r.vsize >= 0 && r.vsize != snap.infos[i].Size {
					// Dovecot lists a message without a final line
					// end at its size without the CRLF it then adds;
					// postie lists what it sends.
					s.log.Debug("maildir: size differs from Dovecot's", "user", md.user, "name", m.name, "size", snap.infos[i].Size, "dovecot_size", r.vsize)
				}
			} else if r, ok := cl.lookup(m.n.unique); ok {
				uidl = r.uidl(m.n.base)
				if r.size != snap.infos[i].Size {
					// Courier sends a CR before every LF, also after
					// a CR, and lists a message without a final line
					// end without the CRLF it adds; postie lists what
					// it sends.
					s.log.Debug("maildir: size differs from Courier's", "user", md.user, "name", m.name, "size", snap.infos[i].Size, "courier_size", r.size)
				}
			}
		}
		if used[uidl] {
			// Two messages with one UIDL (a P field copied, an own
			// UIDL that looks like Dovecot's, a record copied in
			// courierpop3dsizelist): the later one gets one of its
			// own that cannot be either.
			uidl = dupUIDL(m.n.unique)
		}
		used[uidl] = true
		snap.infos[i].UID = uidl
		if ok || derr == nil {
			entries = append(entries, uidlEntry{m.n.unique, uidl})
		}
	}
	if derr != nil || added == 0 && found == len(rec) {
		return true
	}
	if err := saveUIDLs(md.d.fd, entries); err != nil {
		s.log.Warn("maildir: cannot save postie-uidls", "user", md.user, "err", err)
	}
	return true
}

// lookup finds the record of the message with unique name unique; nil
// when l is nil or does not list it.
func (l *dovecotUidlist) lookup(unique string) *dovecotRecord {
	if l == nil {
		return nil
	}
	return l.byUnique[unique]
}

// inboxControls are the directories of INBOX's control files in a
// Dovecot control directory (CONTROL=), tried in this order: .INBOX with
// Dovecot's default Maildir++ layout, INBOX with LAYOUT=fs (Dovecot 2.3,
// both checked with the real one).
var inboxControls = []string{".INBOX", "INBOX"}

// readDovecotUidlist reads the maildrop's dovecot-uidlist: in the Maildir,
// or, when Options.DovecotControlPath is set, where Dovecot keeps INBOX's
// control files below the user's control directory (the first of
// inboxControls that exists); nil, nil when it or a directory above it is
// missing. No directory is opened through a symbolic link. md holds the
// lock.
func (md *maildrop) readDovecotUidlist() (*dovecotUidlist, error) {
	s := md.s
	if s.control.raw == "" {
		return readUidlist(md.d.fd)
	}
	dir, err := s.control.expand(s.root, md.user, s.home)
	if err != nil {
		return nil, fmt.Errorf("%w: control directory: %v", errUidlist, err)
	}
	cfd, err := openDirAt(unix.AT_FDCWD, dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: control directory: %v", errUidlist, err)
	}
	defer unix.Close(cfd)
	for _, sub := range inboxControls {
		fd, err := openDirAt(cfd, sub)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%w: control directory: %s: %v", errUidlist, sub, err)
		}
		defer unix.Close(fd)
		return readUidlist(fd)
	}
	return nil, nil
}
