package intake

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/postie-mail/postie/store"
)

// Options configure a Deliverer.
type Options struct {
	// Store receives the messages. Required.
	Store store.Store
	// Users resolves local parts to users. Required.
	Users Users
	// LocalDomains are the domains delivered here; empty: any domain
	// (the MTA in front decides). The SMTP server needs at least one.
	LocalDomains []string
	// RecipientDelimiter separates a user from a subaddress ("+":
	// alice+lists → alice); "" turns subaddressing off.
	RecipientDelimiter string
	// MaxMessageSize is the largest message accepted, in octets as
	// received (before the trace fields); 0: no limit.
	MaxMessageSize int64
	// Quota applies to every user without an entry in QuotaOverrides.
	// Quotas need a Store that implements store.Usager.
	Quota          Quota
	QuotaOverrides map[string]Quota
	// QuotaTempfail makes over-quota a temporary failure (452 4.2.2,
	// exit 75) instead of a permanent one (552 5.2.2, exit 73).
	QuotaTempfail bool
	// Hostname goes into greetings and Received fields; default
	// os.Hostname().
	Hostname string
	// Logger gets one line per delivery; default slog.Default().
	Logger *slog.Logger
	// Now is the clock of the Received fields; default time.Now.
	Now func() time.Time
}

// Deliverer is the delivery core shared by the LMTP and SMTP servers and
// by deliver: it resolves recipients, checks limits and quotas, adds the
// trace header fields and writes through the store. It is safe for
// concurrent use.
type Deliverer struct {
	opts     Options
	store    store.Store
	users    Users
	usager   store.Usager // nil when the store cannot report usage
	domains  []string
	hostname string
	log      *slog.Logger
	now      func() time.Time
	stats    counters
	recent   recentDeliveries
}

// New checks opts and returns a Deliverer.
func New(opts Options) (*Deliverer, error) {
	if opts.Store == nil {
		return nil, errors.New("intake: Options.Store is required")
	}
	if opts.Users == nil {
		return nil, errors.New("intake: Options.Users is required")
	}
	if opts.MaxMessageSize < 0 {
		return nil, errors.New("intake: Options.MaxMessageSize must not be negative")
	}
	if d := opts.RecipientDelimiter; len(d) > 1 || d == "@" {
		return nil, fmt.Errorf("intake: Options.RecipientDelimiter %q: want one character or none", d)
	}
	d := &Deliverer{opts: opts, store: opts.Store, users: opts.Users, log: opts.Logger, now: opts.Now}
	d.usager, _ = opts.Store.(store.Usager)
	if d.usager == nil {
		if opts.Quota.limited() {
			return nil, errNoUsager
		}
		for _, q := range opts.QuotaOverrides {
			if q.limited() {
				return nil, errNoUsager
			}
		}
	}
	for _, dom := range opts.LocalDomains {
		d.domains = append(d.domains, strings.TrimSuffix(dom, "."))
	}
	if d.log == nil {
		d.log = slog.Default()
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.hostname = opts.Hostname
	if d.hostname == "" {
		d.hostname, _ = os.Hostname()
	}
	d.hostname = sanitizeName(d.hostname)
	return d, nil
}

// Hostname is the name in greetings and Received fields.
func (d *Deliverer) Hostname() string { return d.hostname }

// Message is one message to deliver, as received.
type Message struct {
	// Body is the message as received; it is read once per Deliver.
	Body io.Reader
	// Size is its length in octets, or -1 when it is not known (a
	// stream): the size limit and the quota are then enforced while
	// reading, and a message over them is refused without any trace.
	Size int64
	// EOL is the line end of the trace fields: "\r\n" or "\n", as the
	// message's first line.
	EOL string
	// local, for deliver: Delivered-To fields already present.
	local *LocalMessage
}

// LocalMessage returns the Message of a message read by ReadLocalMessage.
func (m *LocalMessage) Message() Message {
	return Message{Body: m.r, Size: -1, EOL: m.EOL, local: m}
}

// CheckRecipient makes the checks that can be made before the message is
// there (at RCPT): the user's quota is not already used up, by
// sizeHint octets (the SIZE parameter of MAIL; 0 or less: unknown) either.
func (d *Deliverer) CheckRecipient(ctx context.Context, rcpt Recipient, sizeHint int64) error {
	if d.opts.MaxMessageSize > 0 && sizeHint > d.opts.MaxMessageSize {
		return newError(KindTooBig, fmt.Errorf("SIZE=%d", sizeHint))
	}
	if sizeHint <= 0 {
		sizeHint = -1
	}
	_, err := d.checkQuota(ctx, rcpt.User, sizeHint)
	return err
}

// Deliver stores msg in rcpt's maildrop, after the trace header fields
// (see TraceHeader). It returns only once the message is on disk; on
// error nothing of it is in the maildrop, and the error is an *Error
// whose Kind decides the reply or exit code. It logs one line.
func (d *Deliverer) Deliver(ctx context.Context, env Envelope, rcpt Recipient, msg Message) (store.DeliveryInfo, error) {
	return d.deliverLogged(ctx, env, rcpt, msg, d.checkQuota)
}

// quotaDecision decides whether a message of size octets (-1: not known)
// may go into user's maildrop, and the octets it may take (Unlimited: no
// bound). Every delivery decides its quota once, with one of these:
// checkQuota (LMTP, deliver), or decidedQuota when the caller decided
// before (SMTP's DATA, for all its recipients at once).
type quotaDecision func(ctx context.Context, user string, size int64) (room int64, err error)

// decidedQuota is the quotaDecision of a delivery whose quota its caller
// has decided already: no bound.
func decidedQuota(context.Context, string, int64) (int64, error) { return Unlimited, nil }

// deliverLogged is Deliver with the quota decided by quota.
func (d *Deliverer) deliverLogged(ctx context.Context, env Envelope, rcpt Recipient, msg Message, quota quotaDecision) (store.DeliveryInfo, error) {
	start := time.Now()
	info, err := d.deliver(ctx, env, rcpt, msg, quota)
	args := []any{"proto", env.Proto, "id", env.ID, "user", rcpt.User}
	if len(rcpt.also) > 0 {
		args = append(args, "rcpts", append([]string{rcpt.Address}, rcpt.also...))
	}
	if err != nil {
		e := classify(err)
		args = append(args, "result", e.Kind.String(), "code", reply(e, env.Proto == "LMTP").Code)
		if msg.Size >= 0 {
			args = append(args, "size", msg.Size)
		}
		d.recent.add(Delivery{Time: start, Proto: env.Proto, User: rcpt.User, Size: msg.Size, Result: e.Kind.String()})
		if e.Temporary {
			d.stats.deferred.Add(1)
			d.log.Warn("delivery failed", append(args, "err", e.Err)...)
		} else {
			d.stats.refused.Add(1)
			d.log.Info("delivery refused", append(args, "reason", e.Err)...)
		}
		return store.DeliveryInfo{}, e
	}
	d.recent.add(Delivery{Time: start, Proto: env.Proto, User: rcpt.User, Size: info.Size, Result: "ok"})
	d.stats.delivered.Add(1)
	d.stats.deliveredBytes.Add(uint64(info.Size))
	d.log.Info("delivered", append(args, "result", "ok", "size", info.Size, "uidl", info.UID, "ms", time.Since(start).Milliseconds())...)
	return info, nil
}

func (d *Deliverer) deliver(ctx context.Context, env Envelope, rcpt Recipient, msg Message, quota quotaDecision) (store.DeliveryInfo, error) {
	eol := msg.EOL
	if eol != "\n" {
		eol = "\r\n"
	}
	withDT := msg.local == nil || !msg.local.hasDeliveredTo(rcpt.Address)
	hdr := d.TraceHeader(env, rcpt, eol, withDT, d.now())

	maxSize := d.opts.MaxMessageSize
	if maxSize > 0 && msg.Size > maxSize {
		return store.DeliveryInfo{}, newError(KindTooBig, fmt.Errorf("%d octets, limit %d", msg.Size, maxSize))
	}
	total := int64(-1)
	if msg.Size >= 0 {
		total = int64(len(hdr)) + msg.Size
	}
	room, err := quota(ctx, rcpt.User, total)
	if err != nil {
		return store.DeliveryInfo{}, err
	}
	body := msg.Body
	if msg.Size < 0 && (maxSize > 0 || room != Unlimited) {
		l := &limitReader{r: body, maxSize: -1, room: -1, d: d}
		if maxSize > 0 {
			l.maxSize = maxSize
		}
		if room != Unlimited {
			l.room = max(room-int64(len(hdr)), 0)
		}
		body = l
	}
	info, err := d.store.Deliver(ctx, rcpt.User, io.MultiReader(bytes.NewReader(hdr), body))
	if err != nil {
		return store.DeliveryInfo{}, classify(err)
	}
	return info, nil
}
