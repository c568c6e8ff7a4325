package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/postie-mail/postie/store"
)

// Leases need not survive a crash of the database or a failover to a
// standby (a lease lost only lets the next login in, and the old session's
// Commit then finds the lease gone and deletes nothing): their table is
// UNLOGGED (schema 5). A transaction that writes only unlogged tables
// commits without waiting for the WAL flush, whatever synchronous_commit
// says (PostgreSQL's rule: it wrote no WAL before its commit record), so
// a login's or a logout's lease statement never waits for the disk.

// commitSQL is UPDATE: it deletes messages $4 of mailbox $3 (a trigger
// counts them out of its row), only if session $2 still holds the lease
// of maildrop $1 (then renewed). It returns whether the lease was held
// and how many messages were deleted.
const commitSQL = `
WITH l AS (
	UPDATE postie_leases SET expires = clock_timestamp() + make_interval(secs => $5)
	WHERE mailbox = $1 AND token = $2
	RETURNING 1),
d AS (
	DELETE FROM postie_messages
	WHERE mailbox_id = $3 AND id = ANY($4::bigint[]) AND EXISTS (SELECT 1 FROM l)
	RETURNING 1)
SELECT (SELECT count(*) FROM l), (SELECT count(*) FROM d)`

// errLeaseLost: the session's lease expired and another session took it.
var errLeaseLost = fmt.Errorf("pgstore: the maildrop lock expired and was taken over: %w", store.ErrInUse)

type message struct {
	id     int64
	chunks int
}

type maildrop struct {
	s       *Store
	user    string
	token   string
	mailbox int64 // 0 when the snapshot is empty
	infos   []store.MessageInfo
	msgs    []message
	lost    atomic.Bool // the lease is no longer this session's

	mu     sync.Mutex
	closed bool
	exp    expireState // EXPIRE records (expire.go)
}

var _ store.Maildrop = (*maildrop)(nil)

// Open takes the maildrop's lease and its snapshot in one round trip. A
// maildrop that never had a delivery is empty. A lease held by another
// session is tried again after each pause of openRetries (a session that
// just ended on another node may not have released it yet) before
// ErrInUse.
func (s *Store) Open(ctx context.Context, user string) (store.Maildrop, error) {
	if err := checkUser(user); err != nil {
		return nil, err
	}
	var md *maildrop
	for i := 0; ; i++ {
		md = &maildrop{s: s, user: user, token: newToken()}
		err := md.load(ctx)
		if err == nil {
			break
		}
		if i == len(s.openRetries) || !errors.Is(err, store.ErrInUse) {
			return nil, err
		}
		select {
		case <-time.After(s.openRetries[i]):
		case <-ctx.Done():
			return nil, err
		}
	}
	s.mu.Lock()
	s.held[md.token] = md
	s.mu.Unlock()
	return md, nil
}

// openRetries are the pauses of Open before it tries again to take a
// lease held by another session: a session's lease stays in the database
// for a millisecond and a round trip or two after it ended (see
// releaseLater), longer when the database is slow. About a second in all.
var openRetries = []time.Duration{2 * time.Millisecond, 10 * time.Millisecond, 40 * time.Millisecond,
	150 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond}

func (md *maildrop) Messages() []store.MessageInfo { return md.infos }

func (md *maildrop) isClosed() bool {
	md.mu.Lock()
	defer md.mu.Unlock()
	return md.closed
}

// Open returns a reader of message i that fetches one chunk at a time; the
// first is fetched here, so a message deleted behind the session's back
// gives ErrMessageGone at once.
func (md *maildrop) Open(ctx context.Context, i int) (io.ReadCloser, error) {
	if md.isClosed() {
		return nil, store.ErrClosed
	}
	if i < 0 || i >= len(md.msgs) {
		return nil, fmt.Errorf("pgstore: message index %d out of range [0, %d)", i, len(md.msgs))
	}
	r := &msgReader{ctx: ctx, s: md.s, msg: md.msgs[i], uid: md.infos[i].UID}
	if err := r.fetch(); err != nil {
		return nil, err
	}
	return r, nil
}

// msgReader streams one message, one chunk in memory at a time.
type msgReader struct {
	ctx  context.Context
	s    *Store
	msg  message
	uid  string
	next int    // next chunk to fetch
	buf  []byte // the current chunk (reused)
	off  int
}

// fetch reads chunk r.next into r.buf. For an empty message it checks that
// the message still exists.
func (r *msgReader) fetch() error {
	ctx, cancel := r.s.op(r.ctx)
	defer cancel()
	if r.msg.chunks == 0 {
		var one int
		err := r.s.pool.QueryRow(ctx, `SELECT 1 FROM postie_messages WHERE id = $1`, r.msg.id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("pgstore: message %s: %w", r.uid, store.ErrMessageGone)
		}
		if err != nil {
			return dbError("reading message", err)
		}
		return nil
	}
	rows, err := r.s.pool.Query(ctx, `SELECT data FROM postie_chunks WHERE message_id = $1 AND seq = $2`, r.msg.id, r.next)
	if err != nil {
		return dbError("reading message", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return dbError("reading message", err)
		}
		return fmt.Errorf("pgstore: message %s chunk %d: %w", r.uid, r.next, store.ErrMessageGone)
	}
	var data pgtype.DriverBytes // valid until rows.Close: copied out
	if err := rows.Scan(&data); err != nil {
		return dbError("reading message", err)
	}
	r.buf = append(r.buf[:0], data...)
	r.off = 0
	r.next++
	rows.Close()
	if err := rows.Err(); err != nil {
		return dbError("reading message", err)
	}
	return nil
}

func (r *msgReader) Read(p []byte) (int, error) {
	for r.off == len(r.buf) {
		if r.next >= r.msg.chunks {
			return 0, io.EOF
		}
		if err := r.fetch(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}

func (r *msgReader) Close() error {
	r.buf = nil
	return nil
}

// Commit deletes the given messages in one transaction, provided the
// session still holds the maildrop's lease: either all go or none.
func (md *maildrop) Commit(ctx context.Context, deleted []int) error {
	if md.isClosed() {
		return store.ErrClosed
	}
	ids := make([]int64, 0, len(deleted))
	seen := make(map[int]bool, len(deleted))
	for _, i := range deleted {
		if i < 0 || i >= len(md.msgs) {
			return fmt.Errorf("pgstore: commit: message index %d out of range [0, %d)", i, len(md.msgs))
		}
		if !seen[i] {
			seen[i] = true
			ids = append(ids, md.msgs[i].id)
		}
	}
	if md.lost.Load() {
		return errLeaseLost
	}
	md.saveRetrieved(ctx)
	if len(ids) == 0 {
		return nil
	}
	s := md.s
	ctx, cancel := s.op(ctx)
	defer cancel()
	var held, n int64
	if err := s.pool.QueryRow(ctx, commitSQL, md.user, md.token, md.mailbox, ids, s.lease.Seconds()).Scan(&held, &n); err != nil {
		return dbError("commit", err)
	}
	if held == 0 {
		md.lost.Store(true)
		return errLeaseLost
	}
	if n != int64(len(ids)) {
		// Removed by someone else (an operator): gone either way.
		s.log.Warn("pgstore: some messages to delete were already gone", "user", md.user, "wanted", len(ids), "deleted", n)
	}
	return nil
}

// Close releases the lease (queued: see releaseLater). It deletes
// nothing.
func (md *maildrop) Close() error {
	md.mu.Lock()
	if md.closed {
		md.mu.Unlock()
		return nil
	}
	md.closed = true
	md.mu.Unlock()
	md.s.mu.Lock()
	_, held := md.s.held[md.token]
	delete(md.s.held, md.token)
	md.s.mu.Unlock()
	if !held || md.lost.Load() {
		return nil // the Store was closed, or the lease is someone else's
	}
	md.saveRetrieved(context.Background())
	md.s.releaseLater(md.user, md.token)
	return nil
}
