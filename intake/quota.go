package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Quota limits one user's maildrop. Zero fields are unlimited.
type Quota struct {
	// Bytes bounds the octets the maildrop occupies as stored (the
	// trace header fields included), as store.Usager counts them.
	Bytes int64
	// Messages bounds the number of messages.
	Messages int
}

// limited reports whether q limits anything.
func (q Quota) limited() bool { return q.Bytes > 0 || q.Messages > 0 }

// QuotaFor returns user's quota: its entry in Options.QuotaOverrides
// (the exact name, else one equal to it ignoring ASCII case), else
// Options.Quota.
func (d *Deliverer) QuotaFor(user string) Quota {
	if q, ok := d.opts.QuotaOverrides[user]; ok {
		return q
	}
	for name, q := range d.opts.QuotaOverrides {
		if asciiEqualFold(name, user) {
			return q
		}
	}
	return d.opts.Quota
}

// Unlimited is the room of a maildrop without a byte limit.
const Unlimited = -1

// decideQuota decides whether a message of size octets (-1: not known yet)
// fits in a maildrop holding msgs messages of used octets under q. It
// returns the octets still free (Unlimited when q.Bytes is 0): a message
// of unknown size may use that much.
func decideQuota(q Quota, msgs int, used, size int64) (room int64, ok bool) {
	if q.Messages > 0 && msgs >= q.Messages {
		return 0, false
	}
	if q.Bytes <= 0 {
		return Unlimited, true
	}
	room = max(q.Bytes-used, 0)
	switch {
	case size >= 0 && size > room:
		return room, false
	case size < 0 && room == 0:
		return 0, false
	}
	return room, true
}

// checkQuota reads user's usage and decides whether size octets (-1: not
// known) fit. The error is a KindOverQuota *Error, or a temporary one when
// the usage cannot be read.
func (d *Deliverer) checkQuota(ctx context.Context, user string, size int64) (room int64, err error) {
	q := d.QuotaFor(user)
	if !q.limited() {
		return Unlimited, nil
	}
	msgs, used, err := d.usager.Usage(ctx, user)
	if err != nil {
		return 0, classify(fmt.Errorf("quota: %w", err))
	}
	room, ok := decideQuota(q, msgs, used, size)
	if !ok {
		return 0, d.overQuota(fmt.Errorf("%d messages, %d octets used; quota %d messages, %d octets; message %d octets", msgs, used, q.Messages, q.Bytes, size))
	}
	return room, nil
}

func (d *Deliverer) overQuota(err error) *Error {
	return &Error{Kind: KindOverQuota, Temporary: d.opts.QuotaTempfail, Err: err}
}

// limitReader ends a stream of unknown length with an *Error once it has
// given more than maxSize octets (KindTooBig) or more than room octets
// (KindOverQuota). A negative limit is no limit.
type limitReader struct {
	r       io.Reader
	n       int64 // octets read so far
	maxSize int64 // Options.MaxMessageSize, -1: none
	room    int64 // quota room, -1: none
	d       *Deliverer
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.n += int64(n)
	switch {
	case l.maxSize >= 0 && l.n > l.maxSize:
		return 0, newError(KindTooBig, fmt.Errorf("more than %d octets", l.maxSize))
	case l.room >= 0 && l.n > l.room:
		return 0, l.d.overQuota(fmt.Errorf("more than the %d octets left", l.room))
	}
	return n, err
}

// errNoUsager is the error of New when quotas are set on a store that
// cannot report usage.
var errNoUsager = errors.New("intake: quotas need a store that implements store.Usager")
