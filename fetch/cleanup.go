package fetch

import (
	"context"
	"errors"
	"time"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
)

// A session under EXPIRE 0 (RFC 2449 §6.7) that retrieved a message it
// could not deliver ends without QUIT (see deleteAndQuit), so none of its
// DELEs take effect. Were that all, one message the destination refuses
// for good would keep every delivered message on the server for ever,
// each listed (and the mailbox growing) at every run. cleanup ends the
// run with a second session that retrieves nothing: it lists the
// messages by UIDL, marks with DELE those recorded in the state as
// delivered (and that the policy deletes), and QUITs. The server's QUIT
// removes only what the session retrieved or marked (RFC 1939 §6, RFC
// 2449 §6.7), so the undelivered messages stay, to be tried again by the
// next run (a refused message is retried at each run, as without EXPIRE
// 0). A message whose UIDL is not recorded as delivered is never marked.
//
// Crash safety is the state's: the messages marked are recorded as
// delivered (durably) before the first session ended, and an entry goes
// only once a QUIT was answered +OK. A run stopped or killed before or
// during the second session deletes nothing more, and the next run
// neither fetches the delivered messages again nor loses them.

// cleanupTries bounds the logins of the second session refused with
// [IN-USE]: the server may not yet have seen that the first connection
// was closed, and holds its lock a moment longer.
const cleanupTries = 6

// cleanup deletes, in a second session, the delivered messages of a
// session closed without QUIT. It fails the run in no case: what it
// cannot do is logged, and left to the next run.
func (r *run) cleanup() {
	a := r.acct
	want := 0
	now := r.opts.now()
	for _, m := range r.dele {
		if e := r.st.lookup(m.id); e != nil && e.delivered != 0 {
			want++
		}
	}
	if want == 0 {
		return
	}
	if r.noUIDL {
		r.log().Info("the server has no UIDL: the messages delivered are deleted by a later run that ends with QUIT", "account", a.Name)
		return
	}
	c, err := r.reconnect()
	if err != nil {
		r.log().Warn("could not log in again to delete the messages delivered; the next run deletes them", "account", a.Name, "err", err)
		return
	}
	defer c.Close()
	// UIDL only: the fallback ids need TOP or RETR, which may retrieve a
	// message that is not delivered, and then the session could not end
	// with QUIT either.
	infos, err := c.ListAndUIDL(r.ctx)
	var perr *pop3client.Error
	if errors.As(err, &perr) && perr.Command == "UIDL" {
		r.log().Info("the server refused UIDL: the messages delivered are deleted by a later run that ends with QUIT", "account", a.Name)
		return
	}
	if err != nil {
		r.log().Warn("could not list the messages to delete the ones delivered; the next run deletes them", "account", a.Name, "err", err)
		return
	}
	var dele []*message
	for _, in := range infos {
		if in.UID == "" {
			r.log().Info("the server has no UIDL: the messages delivered are deleted by a later run that ends with QUIT", "account", a.Name)
			return
		}
		if e := r.st.lookup(in.UID); e != nil && e.delivered != 0 && r.deleteDelivered(e, now) {
			dele = append(dele, &message{num: in.Num, id: in.UID, size: in.Size})
		}
	}
	if err := r.deleteThenQuit(c, dele, "after-cleanup-dele"); err != nil {
		r.log().Warn("the second session failed: the messages delivered may still be on the server; the next run deletes them", "account", a.Name, "err", err)
		return
	}
	r.log().Info("deleted the messages delivered in a second session", "account", a.Name, "deleted", len(dele))
}

// reconnect logs in for cleanup, trying again a few times, after 50 ms
// and doubling, while the server answers [IN-USE].
func (r *run) reconnect() (*pop3client.Client, error) {
	wait := 50 * time.Millisecond
	for try := 1; ; try++ {
		c, err := r.connect(r.ctx)
		var perr *pop3client.Error
		if err == nil || try == cleanupTries || !errors.As(err, &perr) || perr.Code != pop3.CodeInUse {
			return c, err
		}
		if err := sleepCtx(r.ctx, wait); err != nil {
			return nil, err
		}
		wait *= 2
	}
}

// sleepCtx waits d, or until ctx is done (its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
