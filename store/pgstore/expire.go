package pgstore

import (
	"context"
	"slices"
	"time"

	"github.com/postie-mail/postie/store"
)

// EXPIRE (RFC 2449 §6.7): postie_messages.retrieved (migration 2) holds
// when each message was first retrieved in full.

var _ store.Expirer = (*maildrop)(nil)

// expireSQL deletes the messages $6 of mailbox $3 first retrieved at or
// before $5, only while session $2 holds the lease of maildrop $1 (then
// renewed). It returns whether the lease was held and the ids deleted.
const expireSQL = `
WITH l AS (
	UPDATE postie_leases SET expires = clock_timestamp() + make_interval(secs => $4)
	WHERE mailbox = $1 AND token = $2
	RETURNING 1),
d AS (
	DELETE FROM postie_messages
	WHERE mailbox_id = $3 AND id = ANY($6::bigint[]) AND retrieved <= $5 AND EXISTS (SELECT 1 FROM l)
	RETURNING id)
SELECT (SELECT count(*) FROM l), coalesce((SELECT array_agg(id) FROM d), '{}')`

// markSQL records the first retrievals $4 (ids) at $5 (times) in mailbox
// $3, keeping earlier ones, while session $2 holds the lease of $1.
const markSQL = `
UPDATE postie_messages m SET retrieved = v.at
FROM unnest($4::bigint[], $5::timestamptz[]) AS v(id, at)
WHERE m.mailbox_id = $3 AND m.id = v.id AND (m.retrieved IS NULL OR m.retrieved > v.at)
	AND EXISTS (SELECT 1 FROM postie_leases WHERE mailbox = $1 AND token = $2)`

// expireState is a session's part of the EXPIRE records.
type expireState struct {
	marks map[int]time.Time // message index → first retrieval in this session
	saved bool
}

// MarkRetrieved records that message i was retrieved in full at t; it is
// written when the session ends (see store.Expirer).
func (md *maildrop) MarkRetrieved(i int, t time.Time) {
	md.mu.Lock()
	defer md.mu.Unlock()
	if i < 0 || i >= len(md.msgs) {
		return
	}
	if md.exp.marks == nil {
		md.exp.marks = map[int]time.Time{}
	}
	if old, ok := md.exp.marks[i]; !ok || t.Before(old) {
		md.exp.marks[i] = t
	}
}

// Expire removes the messages of the snapshot first retrieved at or
// before cutoff, in one statement under the session's lease.
func (md *maildrop) Expire(ctx context.Context, cutoff time.Time) ([]int, error) {
	if md.isClosed() {
		return nil, store.ErrClosed
	}
	if md.lost.Load() {
		return nil, errLeaseLost
	}
	if len(md.msgs) == 0 {
		return nil, nil
	}
	ids := make([]int64, len(md.msgs))
	for i, m := range md.msgs {
		ids[i] = m.id
	}
	s := md.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	var held int64
	var gone []int64
	if err := s.pool.QueryRow(ctx, expireSQL, md.user, md.token, md.mailbox, s.lease.Seconds(), cutoff, ids).Scan(&held, &gone); err != nil {
		return nil, dbError("expire", err)
	}
	if held == 0 {
		md.lost.Store(true)
		return nil, errLeaseLost
	}
	slices.Sort(gone)
	var removed []int
	for i, m := range md.msgs {
		if _, ok := slices.BinarySearch(gone, m.id); ok {
			removed = append(removed, i)
		}
	}
	return removed, nil
}

// saveRetrieved writes the session's retrieval records, once; a failure
// is logged (the messages are then kept longer, never removed sooner).
func (md *maildrop) saveRetrieved(ctx context.Context) {
	md.mu.Lock()
	if md.exp.saved || len(md.exp.marks) == 0 {
		md.mu.Unlock()
		return
	}
	md.exp.saved = true
	ids := make([]int64, 0, len(md.exp.marks))
	ats := make([]time.Time, 0, len(md.exp.marks))
	for i, at := range md.exp.marks {
		ids = append(ids, md.msgs[i].id)
		ats = append(ats, at)
	}
	md.mu.Unlock()
	s := md.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	if _, err := s.pool.Exec(ctx, markSQL, md.user, md.token, md.mailbox, ids, ats); err != nil {
		s.log.Warn("pgstore: cannot record the messages retrieved (EXPIRE keeps them longer)", "user", md.user, "err", dbError("recording retrievals", err))
	}
}
