package pgstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/postie-mail/postie/store"
)

// Logins are taken in groups: the Opens that arrive while one group's
// round trip is under way go together in the next, two statements for
// all of them in one transaction (leaseSQL, which also gives up the
// leases of the sessions that ended meanwhile, then snapshotSQL), as a
// database commits transactions in groups. If the transaction fails, the
// releases go back in the queue (releasesWritten). A login waits for at
// most the round trip under way and its own; alone, it goes at once. Every statement that locks
// several leases locks them in the order of the maildrops' names, so that
// two never wait for each other.

// snapshotSQL lists maildrops $1 (the i-th of the lists is request i):
// for each, its row and generation, and its messages unless the row and
// generation are still $4 and $3, those of the node's cached snapshot:
// then one row with no message. No row: the maildrop has never had mail.
// Messages are read only if the lease is now session $2's (in the same
// transaction as leaseSQL): a login refused [IN-USE] reads none. The
// messages are a LATERAL subquery kept apart (OFFSET 0) so that these
// tests are made once per request, before its messages are read (a
// one-time filter, the lease's lookup only for a maildrop that changed),
// not on every message row read and thrown away (a join filter): a login
// that finds a maildrop of n messages unchanged reads none of them. The
// rows come request after request, each one's messages in order, with
// no sort in the plan (nested loops in the order of the lists); the
// reader does not count on it (sortMessages).
const snapshotSQL = `
SELECT v.i, b.generation, b.id, m.id, m.uid, m.wire_size, m.chunks
FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[]) WITH ORDINALITY AS v(name, token, gen, box, i)
JOIN LATERAL (SELECT b.id, b.generation FROM postie_mailboxes b WHERE b.name = v.name OFFSET 0) b ON true
LEFT JOIN LATERAL (
	SELECT m.id, m.uid, m.wire_size, m.chunks FROM postie_messages m
	WHERE m.mailbox_id = b.id AND (b.generation <> v.gen OR b.id <> v.box)
		AND EXISTS (SELECT FROM postie_leases l WHERE l.mailbox = v.name AND l.token = v.token)
	ORDER BY m.id OFFSET 0) m ON true`

// maxOpenGroup bounds the logins of one group.
const maxOpenGroup = 256

// openReq is one login of a group: its session, and then its outcome.
type openReq struct {
	md       *maildrop
	released string    // the token of a queued release of the maildrop
	cached   *snapshot // the node's snapshot of the maildrop, if any
	err      error
}

// openGroup is the logins going together in one round trip.
type openGroup struct {
	reqs []*openReq
	done chan struct{} // closed when every req has its outcome
}

// opener gathers the groups.
type opener struct {
	mu       sync.Mutex
	next     *openGroup    // the group that logins join
	flushing chan struct{} // holds a token while a group is in the database
}

// load takes md's lease and snapshot, in a group with the other logins
// under way. A second login of a maildrop already in the group is refused
// (ErrInUse: the first gets it, or neither could).
func (md *maildrop) load(ctx context.Context) error {
	s, o := md.s, &md.s.opens
	r := &openReq{md: md}
	o.mu.Lock()
	g, leader := o.next, false
	if g == nil || len(g.reqs) >= maxOpenGroup {
		g, leader = &openGroup{done: make(chan struct{})}, true
		o.next = g
	}
	for _, x := range g.reqs {
		if x.md.user == md.user {
			o.mu.Unlock()
			return fmt.Errorf("pgstore: %s: %w", md.user, store.ErrInUse)
		}
	}
	g.reqs = append(g.reqs, r)
	o.mu.Unlock()
	if !leader {
		select {
		case <-g.done:
			return r.err
		case <-ctx.Done():
			go func() { // the lease may be taken all the same: give it back
				<-g.done
				if r.err == nil {
					s.releaseLater(md.user, md.token)
				}
			}()
			return dbError("open", ctx.Err())
		}
	}
	// The leader waits for the group under way (at most one timeout),
	// meanwhile others join its group; it then writes the group for all,
	// whatever becomes of its own session's context.
	o.flushing <- struct{}{}
	o.mu.Lock()
	if o.next == g {
		o.next = nil
	}
	o.mu.Unlock()
	s.openGroup(context.WithoutCancel(ctx), g.reqs)
	<-o.flushing
	close(g.done)
	return r.err
}

// openGroup takes the leases and snapshots of reqs in one round trip, with
// the queued releases, and sets each one's outcome. A deadlock (another
// statement locking leases in another order) is tried once more.
func (s *Store) openGroup(ctx context.Context, reqs []*openReq) {
	slices.SortFunc(reqs, func(a, b *openReq) int { return cmp.Compare(a.md.user, b.md.user) })
	free := s.takeReleases(reqs)
	err := s.tryOpenGroup(ctx, reqs, free)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "40P01" {
		err = s.tryOpenGroup(ctx, reqs, free)
	}
	s.releasesWritten(free, err)
	if err != nil {
		for _, r := range reqs {
			r.err = err
		}
	}
}

// tryOpenGroup is one try of openGroup, which also gives up the leases of
// free (maildrop → token): the error is the group's, when the round trip
// failed; a request's own outcome is in its err.
func (s *Store) tryOpenGroup(ctx context.Context, reqs []*openReq, free map[string]string) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	n := len(reqs)
	users, tokens := make([]string, n), make([]string, n)
	gens, boxes := make([]int64, n), make([]int64, n) // 0: none (both start at 1)
	for i, r := range reqs {
		r.err, r.md.msgs, r.md.infos = nil, nil, nil
		users[i], tokens[i] = r.md.user, r.md.token
		r.released = s.releasing(r.md.user)
		r.cached = s.snaps.get(r.md.user)
		if r.cached != nil {
			gens[i], boxes[i] = r.cached.gen, r.cached.mailbox
		}
	}
	b := &pgx.Batch{}
	s.queueLeases(b, newLeaseArgs(free, reqs))
	b.Queue(snapshotSQL, users, tokens, gens, boxes)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()

	taken := make(map[string]bool, n) // name → took over a row
	var (
		name            string
		takenOver, gave bool
	)
	rows, err := br.Query()
	if err != nil {
		return dbError("open", err)
	}
	_, err = pgx.ForEachRow(rows, []any{&name, &takenOver, &gave}, func() error {
		if !gave {
			taken[name] = takenOver
		}
		return nil
	})
	if err != nil {
		// The statement failed as a whole (a transaction): no lease taken.
		return dbError("open", err)
	}
	// From here on, leases are held: a failure gives them back.
	fail := func(err error) error {
		for _, r := range reqs {
			if _, ok := taken[r.md.user]; ok {
				s.releaseLater(r.md.user, r.md.token)
			}
		}
		return dbError("open: snapshot", err)
	}
	rows, err = br.Query()
	if err != nil {
		return fail(err)
	}
	var (
		i                   int64
		gen, mbox, id, size pgtype.Int8
		uid                 pgtype.Text
		chunks              pgtype.Int4
	)
	hit := make([]bool, n)
	got := make([]*snapshot, n) // the generation and row read, when the maildrop has one
	_, err = pgx.ForEachRow(rows, []any{&i, &gen, &mbox, &id, &uid, &size, &chunks}, func() error {
		if i < 1 || i > int64(n) {
			return fmt.Errorf("snapshot row of request %d of %d", i, n)
		}
		k := i - 1
		md := reqs[k].md
		got[k] = &snapshot{gen: gen.Int64, mailbox: mbox.Int64}
		if !id.Valid { // no message: unchanged or empty
			hit[k] = gen.Int64 == gens[k] && mbox.Int64 == boxes[k]
			return nil
		}
		md.msgs = append(md.msgs, message{id: id.Int64, chunks: int(chunks.Int32)})
		md.infos = append(md.infos, store.MessageInfo{UID: uid.String, Size: size.Int64})
		return nil
	})
	if err == nil {
		err = br.Close()
	}
	if err != nil {
		return fail(err)
	}
	for k, r := range reqs {
		md := r.md
		over, ok := taken[md.user]
		if !ok {
			r.err = fmt.Errorf("pgstore: %s: %w", md.user, store.ErrInUse)
			md.msgs, md.infos = nil, nil
			continue
		}
		if r.released != "" {
			s.tookOver(md.user, r.released)
		}
		if over {
			s.stats.leasesTakenOver.Add(1)
			s.log.Info("pgstore: took over an expired maildrop lock", "user", md.user)
		}
		sn := got[k]
		if sn == nil {
			continue // never had mail: empty
		}
		sortMessages(md)
		md.mailbox = sn.mailbox
		switch {
		case hit[k]:
			md.msgs, md.infos = r.cached.msgs, r.cached.infos
		default:
			sn.msgs, sn.infos = md.msgs, md.infos
			s.snaps.put(md.user, sn)
		}
	}
	return nil
}

// sortMessages puts md's messages in the order of their ids (the order of
// delivery, which numbers them), if the rows came in another.
func sortMessages(md *maildrop) {
	if slices.IsSortedFunc(md.msgs, func(a, b message) int { return cmp.Compare(a.id, b.id) }) {
		return
	}
	idx := make([]int, len(md.msgs))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(md.msgs[a].id, md.msgs[b].id) })
	msgs, infos := make([]message, len(idx)), make([]store.MessageInfo, len(idx))
	for i, j := range idx {
		msgs[i], infos[i] = md.msgs[j], md.infos[j]
	}
	md.msgs, md.infos = msgs, infos
}
