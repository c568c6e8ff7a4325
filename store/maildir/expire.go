package maildir

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/postie-mail/postie/store"
)

// EXPIRE (RFC 2449 §6.7) needs to know when each message was first
// retrieved. The Maildir keeps that in postie-retrieved, beside
// postie-sizes: a header line, then one "UID unix-seconds" line per
// message retrieved, rewritten whole (temporary file, fsync, rename,
// fsync of the Maildir) under the maildrop lock when a session that
// retrieved or expired something ends. Entries of messages no longer in
// the Maildir are dropped then. The Maildir's file names are left alone:
// other programs (an MUA, Dovecot) own their flags.
const (
	retrievedName   = "postie-retrieved"
	retrievedHeader = "postie-retrieved 1"
)

var _ store.Expirer = (*maildrop)(nil)

// expireState is a session's part of the EXPIRE records.
type expireState struct {
	marks   map[string]int64 // UID → first retrieval in this session
	expired map[int]bool     // messages Expire removed
	saved   bool             // written already (by Commit)
}

// MarkRetrieved records that message i was retrieved in full at t; it is
// written when the session ends (see store.Expirer).
func (md *maildrop) MarkRetrieved(i int, t time.Time) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if i < 0 || i >= len(md.infos) {
		return
	}
	if md.exp.marks == nil {
		md.exp.marks = map[string]int64{}
	}
	uid := md.infos[i].UID
	if old, ok := md.exp.marks[uid]; !ok || t.Unix() < old {
		md.exp.marks[uid] = t.Unix()
	}
}

// Expire removes the messages first retrieved, by an earlier session, at
// or before cutoff.
func (md *maildrop) Expire(ctx context.Context, cutoff time.Time) ([]int, error) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if err := md.usable(); err != nil {
		return nil, err
	}
	opened, err := md.enter()
	if err != nil {
		return nil, err
	}
	defer md.leave(opened)
	recs, err := loadRetrieved(md.d.fd, len(md.infos))
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	var removed []int
	var errs []error
	touched := map[string]bool{}
	for i, info := range md.infos {
		at, ok := recs[info.UID]
		if !ok || at > cutoff.Unix() {
			continue
		}
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		sub, err := md.remove(md.pos[i])
		if err != nil {
			errs = append(errs, fmt.Errorf("maildir: %s: expire %s: %w", md.user, md.files[md.pos[i]].n.base, err))
			continue
		}
		touched[sub] = true
		removed = append(removed, i)
		if md.exp.expired == nil {
			md.exp.expired = map[int]bool{}
		}
		md.exp.expired[i] = true
	}
	if len(removed) > 0 && md.s.snaps != nil {
		md.s.snaps.drop(md.dir)
	}
	errs = md.syncFolders(touched, errs)
	return removed, errors.Join(errs...)
}

// saveRetrieved writes the EXPIRE records at the end of a session, less
// those of the messages deleted (by Commit, deleted) or expired. The lock
// must be held, and md.mu.
func (md *maildrop) saveRetrieved(deleted []int) {
	if md.exp.saved || len(md.exp.marks) == 0 && len(md.exp.expired) == 0 && len(deleted) == 0 {
		return
	}
	opened, err := md.enter()
	if err != nil {
		md.s.log.Warn("maildir: cannot write the retrieval records (EXPIRE keeps these messages longer)", "user", md.user, "err", err)
		return
	}
	defer md.leave(opened)
	recs, err := loadRetrieved(md.d.fd, len(md.infos))
	if err != nil {
		md.s.log.Warn("maildir: cannot read the retrieval records; rewriting them", "user", md.user, "err", err)
		recs = map[string]int64{}
	}
	if len(md.exp.marks) == 0 && len(recs) == 0 {
		return
	}
	for uid, at := range md.exp.marks {
		if old, ok := recs[uid]; !ok || at < old {
			recs[uid] = at
		}
	}
	// Only messages still there keep a record: those of the snapshot,
	// less the ones removed, and those delivered since (not retrieved,
	// so without a record anyway).
	gone := map[string]bool{}
	for _, i := range deleted {
		gone[md.infos[i].UID] = true
	}
	for i := range md.exp.expired {
		gone[md.infos[i].UID] = true
	}
	var b strings.Builder
	b.WriteString(retrievedHeader + "\n")
	for _, info := range md.infos {
		if at, ok := recs[info.UID]; ok && !gone[info.UID] {
			b.WriteString(info.UID + " " + strconv.FormatInt(at, 10) + "\n")
		}
	}
	md.exp.saved = true
	if err := writeRetrieved(md.d.fd, b.String()); err != nil {
		md.s.log.Warn("maildir: cannot write the retrieval records (EXPIRE keeps these messages longer)", "user", md.user, "err", err)
	}
}

// writeRetrieved replaces postie-retrieved in the Maildir dirfd, durably.
func writeRetrieved(dirfd int, data string) error {
	return replaceAt(dirfd, retrievedName, func(bw *bufio.Writer) error {
		_, err := bw.WriteString(data)
		return err
	})
}

// maxRetrievedFor bounds postie-retrieved for a maildrop of n messages:
// a line per message (a UID of at most 70 octets and a time), and room
// for messages delivered and removed by others since it was written.
func maxRetrievedFor(n int) int64 {
	return int64(n+1024) * (70 + 1 + 20 + 1)
}

// loadRetrieved reads postie-retrieved: UID → unix seconds. A missing
// file holds nothing. Lines that do not parse are skipped: a record only
// ever lets a message go sooner, so none is made up.
func loadRetrieved(dirfd, n int) (map[string]int64, error) {
	data, err := readStateFile(dirfd, retrievedName, maxRetrievedFor(n))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]int64{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: retrieval records: %w", err)
	}
	recs := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 4096)
	if !sc.Scan() || sc.Text() != retrievedHeader {
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("maildir: retrieval records: %w", err)
		}
		return nil, errors.New("maildir: retrieval records: not a " + retrievedName + " file")
	}
	for sc.Scan() {
		uid, at, ok := strings.Cut(sc.Text(), " ")
		n, err := strconv.ParseInt(at, 10, 64)
		if !ok || err != nil || uid == "" {
			continue
		}
		recs[uid] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("maildir: retrieval records: %w", err)
	}
	return recs, nil
}
