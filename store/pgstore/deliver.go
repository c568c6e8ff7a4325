package pgstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/store"
)

// deliverSQL stores the last (or only) chunk of a message with its message
// row and counts it in its mailbox row, made on the first delivery. $7 is
// the id taken beforehand by a delivery of several chunks, NULL for one of
// a single chunk; $5 is NULL for an empty message. $8 is the UIDL chosen
// by DeliverUIDL, NULL for one made of uid_prefix and the id; one already
// in the maildrop is not taken (the message gets a made one).
const deliverSQL = `
WITH b AS (
	INSERT INTO postie_mailboxes AS b (name, messages, octets) VALUES ($1, 1, $2)
	ON CONFLICT (name) DO UPDATE SET messages = b.messages + 1, octets = b.octets + EXCLUDED.octets,
		generation = b.generation + 1
	RETURNING id),
n AS (SELECT coalesce($7::bigint, nextval('postie_message_id')) AS id),
m AS (
	INSERT INTO postie_messages (id, mailbox_id, uid, size, wire_size, chunks)
	SELECT n.id, b.id,
		CASE WHEN $8::text IS NULL OR EXISTS (SELECT 1 FROM postie_messages x WHERE x.mailbox_id = b.id AND x.uid = $8::text)
			THEN $4 || n.id::text ELSE $8::text END,
		$2, $3, $6 FROM b, n
	RETURNING id, uid),
c AS (
	INSERT INTO postie_chunks (message_id, seq, data)
	SELECT m.id, $6 - 1, $5::bytea FROM m WHERE $5::bytea IS NOT NULL)
SELECT uid FROM m`

// Deliver stores the message read from r in user's maildrop and returns
// once it is committed. It takes no lock a session holds: a delivery
// during a session shows up in the next one.
func (s *Store) Deliver(ctx context.Context, user string, r io.Reader) (store.DeliveryInfo, error) {
	return s.deliver(ctx, user, nil, r)
}

var _ store.UIDLDeliverer = (*Store)(nil)

// DeliverUIDL is Deliver with uidl as the message's UIDL (postie migrate
// pop3 keeps the remote server's), in the same transaction as the message.
// It refuses an invalid UIDL (RFC 1939 §7: 1–70 octets in 0x21–0x7E); one
// already in the maildrop is not taken, and the message gets one of its
// own (the DeliveryInfo says which).
func (s *Store) DeliverUIDL(ctx context.Context, user, uidl string, r io.Reader) (store.DeliveryInfo, error) {
	if len(uidl) < 1 || len(uidl) > 70 || strings.ContainsFunc(uidl, func(c rune) bool { return c < 0x21 || c > 0x7e }) {
		return store.DeliveryInfo{}, fmt.Errorf("pgstore: deliver: %q is not a valid UIDL", uidl)
	}
	return s.deliver(ctx, user, &uidl, r)
}

func (s *Store) deliver(ctx context.Context, user string, uidl *string, r io.Reader) (store.DeliveryInfo, error) {
	if err := checkUser(user); err != nil {
		return store.DeliveryInfo{}, err
	}
	if err := ctx.Err(); err != nil {
		return store.DeliveryInfo{}, fmt.Errorf("pgstore: deliver: %w", err)
	}
	wc := wire.NewCounter()
	var tx pgx.Tx
	defer func() {
		if tx != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var id *int64 // taken once a second chunk shows up
	// Buffers grow with the message: a small one costs a small buffer.
	pending, err := readChunk(ctx, r, nil)
	if err != nil {
		return store.DeliveryInfo{}, fmt.Errorf("pgstore: deliver: %w", err)
	}
	wc.Write(pending)
	var spare []byte
	chunks := 0
	for len(pending) == chunkSize {
		next, err := readChunk(ctx, r, spare)
		if err != nil {
			return store.DeliveryInfo{}, fmt.Errorf("pgstore: deliver: %w", err)
		}
		if len(next) == 0 {
			break
		}
		if tx == nil {
			octx, cancel := s.op(ctx)
			tx, err = s.pool.Begin(octx)
			if err == nil {
				var v int64
				err = tx.QueryRow(octx, `SELECT nextval('postie_message_id')`).Scan(&v)
				id = &v
			}
			cancel()
			if err != nil {
				return store.DeliveryInfo{}, dbError("deliver", err)
			}
		}
		octx, cancel := s.op(ctx)
		_, err = tx.Exec(octx, `INSERT INTO postie_chunks (message_id, seq, data) VALUES ($1, $2, $3)`, *id, chunks, pending)
		cancel()
		if err != nil {
			return store.DeliveryInfo{}, dbError("deliver", err)
		}
		chunks++
		pending, spare = next, pending
		wc.Write(pending)
	}
	var last []byte // nil: no chunk at all (an empty message)
	if len(pending) > 0 {
		last = pending
		chunks++
	}
	size, wire := wc.Raw(), wc.Size()
	var uid string
	octx, cancel := s.op(ctx)
	defer cancel()
	if tx != nil {
		err = tx.QueryRow(octx, deliverSQL, user, size, wire, s.uidPrefix, last, chunks, id, uidl).Scan(&uid)
		if err == nil {
			err = tx.Commit(octx)
			tx = nil
		}
	} else {
		err = s.pool.QueryRow(octx, deliverSQL, user, size, wire, s.uidPrefix, last, chunks, id, uidl).Scan(&uid)
	}
	if err != nil {
		return store.DeliveryInfo{}, dbError("deliver", err)
	}
	return store.DeliveryInfo{UID: uid, Size: wire}, nil
}

// readChunk reads from r into buf (reused, grown as needed) until it holds
// chunkSize octets or r ends; it returns less only at the end of r.
func readChunk(ctx context.Context, r io.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for len(buf) < chunkSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(max(2*cap(buf), 32<<10), chunkSize))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
	return buf, nil
}
