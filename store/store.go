// Package store defines the storage contract every postie maildrop backend
// implements, and the domain types that cross it. It imports nothing but the
// standard library; the behaviour every backend must show is pinned down by
// the suite in store/storetest.
//
// Messages are stored as delivered (LF or CRLF line ends). The size a backend
// reports is the wire size: the octets of the message with every line ended
// by CRLF and a final line end supplied when missing, before dot-stuffing
// (RFC 1939 §11). internal/wire computes and produces exactly that form.
package store

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// Errors a backend returns; callers test them with errors.Is.
var (
	// ErrInUse: the maildrop is locked by another session.
	ErrInUse = errors.New("store: maildrop in use")
	// ErrNoSuchUser: the user has no maildrop and none can be made.
	ErrNoSuchUser = errors.New("store: no such user")
	// ErrBadUser: the user name cannot name a maildrop (path separators,
	// "..", control characters, empty).
	ErrBadUser = errors.New("store: invalid user name")
	// ErrMessageGone: a message of the snapshot was removed or changed
	// behind the session's back.
	ErrMessageGone = errors.New("store: message no longer available")
	// ErrClosed: the maildrop was already closed.
	ErrClosed = errors.New("store: maildrop closed")
)

// MessageInfo describes one message of a snapshot.
type MessageInfo struct {
	// UID is the message's unique id listing: 1–70 octets in 0x21–0x7E,
	// unique in the maildrop, stable across sessions, never reused.
	UID string
	// Size is the wire size in octets (CRLF line ends, final line end
	// included, before dot-stuffing).
	Size int64
}

// DeliveryInfo describes a message just delivered.
type DeliveryInfo struct {
	UID  string
	Size int64 // wire size
}

// Store is a collection of maildrops, one per user.
type Store interface {
	// Open locks the user's maildrop exclusively and takes its snapshot.
	// A second Open of the same maildrop fails with ErrInUse until the
	// first is closed (or its process dies).
	Open(ctx context.Context, user string) (Maildrop, error)
	// Deliver writes one message durably into the user's maildrop; it
	// returns only once the message is safe on disk. It never waits for
	// the maildrop lock: a delivery during a session shows up in the next.
	Deliver(ctx context.Context, user string, r io.Reader) (DeliveryInfo, error)
}

// Usager is implemented by stores that can tell cheaply how much a user's
// maildrop holds, for quotas. Usage reads no message: it is meant to be
// called before every delivery, and it sees a deletion made by a session's
// UPDATE (RFC 1939 §6) at once. A maildrop that does not exist yet holds
// nothing.
type Usager interface {
	// Usage returns the number of messages in user's maildrop and the
	// octets they occupy as stored (not their wire size).
	Usage(ctx context.Context, user string) (msgs int, bytes int64, err error)
}

// UIDLDeliverer is implemented by stores that can deliver a message under
// a UIDL the caller chooses (postie migrate pop3 keeps a remote server's
// UIDLs). The message and its UIDL become durable together: after a crash
// it is there with that UIDL, or not at all. uidl must be a valid unique-id
// listing (1–70 octets in 0x21–0x7E) not used by another message of the
// maildrop; the store keeps the maildrop's UIDLs unique whatever it is
// given.
type UIDLDeliverer interface {
	DeliverUIDL(ctx context.Context, user, uidl string, r io.Reader) (DeliveryInfo, error)
}

// Maildrop is one user's locked maildrop, as of the snapshot taken at Open.
// Message indexes are 0-based positions in Messages().
type Maildrop interface {
	// Messages returns the snapshot, oldest first. It never changes
	// during the session. The caller must not modify the slice.
	Messages() []MessageInfo
	// Open returns the stored bytes of message i (LF or CRLF ends).
	// If the message vanished it returns an error wrapping ErrMessageGone.
	Open(ctx context.Context, i int) (io.ReadCloser, error)
	// Commit removes the given messages (RFC 1939 UPDATE state). Each
	// removal is atomic; when some fail, Commit returns an error and the
	// messages not removed stay intact.
	Commit(ctx context.Context, deleted []int) error
	// Close releases the lock. It removes nothing.
	Close() error
}

// WireFile is implemented by the readers Maildrop.Open returns for a
// message whose file is already in wire form but for byte-stuffing: every
// line ends CRLF, the last one included, so that the file holds exactly
// the listed size. A server can then send the file from the kernel
// (sendfile(2)) and add only the stuffing dots (RFC 1939 §3).
type WireFile interface {
	// WireFile returns the open file, positioned at its start, and its
	// size, which is the message's listed (wire) size; and the offsets,
	// ascending, of the '.' of every line that begins with one (those
	// byte-stuffing doubles), as recorded at delivery, with known true;
	// known false when they were not recorded (the caller must then
	// look for them, or convert the message as any other). The file
	// belongs to the reader: Close closes it.
	WireFile() (f *os.File, size int64, dots []int64, known bool)
}

// Expirer is implemented by maildrops that enforce RFC 2449 §6.7 EXPIRE:
// they remember, across sessions, when each message was first retrieved
// in full, and remove the messages retrieved too long ago.
type Expirer interface {
	// MarkRetrieved records that message i was retrieved in full at t,
	// unless an earlier time is recorded already. The records of a
	// session are written durably when it ends, by Commit or by Close
	// (whichever comes first); a session that dies with its process
	// loses them, so its messages are kept longer, never removed sooner.
	MarkRetrieved(i int, t time.Time)
	// Expire removes at once, under the session's lock, the messages of
	// the snapshot first retrieved (in an earlier session) at or before
	// cutoff, and returns their indexes in ascending order. The
	// snapshot does not change: the caller must not Open or Commit the
	// removed messages. Each removal is atomic; on an error the
	// messages not removed stay, and the indexes of those removed are
	// still returned.
	Expire(ctx context.Context, cutoff time.Time) ([]int, error)
}
