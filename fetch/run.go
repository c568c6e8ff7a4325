package fetch

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/postie-mail/postie/internal/oauthclient"
	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
)

// Options configure fetch runs.
type Options struct {
	// Logger receives warnings and debug events (default slog.Default()).
	Logger *slog.Logger
	// Now is the clock (default time.Now); delete_after_days and the
	// state's times follow it.
	Now func() time.Time
	// DryRun lists what a run would do, to Plan, and changes nothing:
	// no message is retrieved or deleted, the state is not written.
	DryRun bool
	// Plan receives the dry run's listing (default io.Discard).
	Plan io.Writer
	// Progress, when set, is told of each run's progress.
	Progress func(account string) Progress

	// crash, when set (tests only), is called at the named points of a
	// run: "retr" (half of a message read), "after-write" (delivered, not
	// recorded), "after-record", "after-dele" (before QUIT); with EXPIRE
	// 0, "between-sessions" (the first closed without QUIT) and
	// "after-cleanup-dele" (the second's DELEs sent, before its QUIT).
	crash func(point string, n int)
	// batch bounds how many messages are flushed together (default 64).
	batch int
	// oauthSleep, when set (tests only), replaces the device grant's
	// waits between polls.
	oauthSleep func(ctx context.Context, d time.Duration) error
}

func (o *Options) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.Default()
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Progress follows a run: Start once with what is to be fetched, Add as
// octets arrive, Done after each message, Finish at the end.
type Progress interface {
	Start(messages int, octets int64)
	Add(octets int)
	Done()
	Finish()
}

// Result is what a run of one account did.
type Result struct {
	Account  string
	DryRun   bool
	Fetched  int   // messages delivered (and recorded)
	Octets   int64 // their size
	Deleted  int   // messages deleted on the server
	Skipped  int   // messages left alone: over max_size
	Deferred int   // messages the destination asked to retry later
	Failed   int   // messages the destination refused
	Left     int   // messages left for the next run by max_messages_per_run
	// LoginDelay is the server's LOGIN-DELAY (RFC 2449 §6.8), or 0.
	LoginDelay time.Duration
	// Err is why the run stopped early or failed, or nil.
	Err *Error
	// Next is, in daemon mode, how long until the account is polled
	// again: the interval, LOGIN-DELAY, or the backoff after a
	// temporary failure.
	Next time.Duration
}

// Summary is the one-line report of the run.
func (r *Result) Summary() string {
	var b strings.Builder
	would := ""
	if r.DryRun {
		would = "would "
		b.WriteString(r.Account + " (dry run): ")
	} else {
		b.WriteString(r.Account + ": ")
	}
	fmt.Fprintf(&b, "%sfetch %d (%s), %sdelete %d, skip %d", would, r.Fetched, humanOctets(r.Octets), would, r.Deleted, r.Skipped)
	if !r.DryRun {
		b.Reset()
		fmt.Fprintf(&b, "%s: fetched %d (%s), deleted %d, skipped %d", r.Account, r.Fetched, humanOctets(r.Octets), r.Deleted, r.Skipped)
	}
	errs := r.Failed
	if r.Err != nil {
		errs++
	}
	fmt.Fprintf(&b, ", errors %d", errs)
	if r.Deferred > 0 {
		fmt.Fprintf(&b, ", deferred %d", r.Deferred)
	}
	if r.Left > 0 {
		fmt.Fprintf(&b, ", %d left for the next run", r.Left)
	}
	if r.Err != nil {
		b.WriteString(": " + r.Err.Err.Error())
	}
	return b.String()
}

func humanOctets(n int64) string {
	switch {
	case n < 1<<10:
		return strconv.FormatInt(n, 10) + " B"
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
}

// Fetcher runs one account. It keeps what outlives a run (the OAuth2
// token, the login mechanism that worked) for daemon mode. Not safe for concurrent use.
type Fetcher struct {
	cfg   *Config
	acct  *Account
	opts  Options
	token string // the OAuth2 token, once obtained
	oauth *oauthclient.Source
	// tokenSent: the last login got as far as sending a token.
	tokenSent bool
	mech      string // the mechanism "auto" found to work
	// scramRefused, for scramRefusedFor (scramKey), is when SCRAM was
	// last refused while the next mechanism worked; kept in the status
	// file, so that a later run does not try SCRAM again (see login).
	scramRefused    time.Time
	scramRefusedFor string
	scramFallback   string // the mechanism that worked then ("plain", "user", "login")
	remembered      bool   // scramRefused was read from the status file
}

// New returns a Fetcher for account a of cfg.
func New(cfg *Config, a *Account, opts Options) *Fetcher {
	return &Fetcher{cfg: cfg, acct: a, opts: opts}
}

// Account returns the account's name.
func (f *Fetcher) Account() string { return f.acct.Name }

func (f *Fetcher) log() *slog.Logger { return f.opts.logger() }

func (f *Fetcher) hook(point string, n int) {
	if f.opts.crash != nil {
		f.opts.crash(point, n)
	}
}

// run is the state of one run.
type run struct {
	*Fetcher
	ctx   context.Context
	c     *pop3client.Client
	st    *state
	dest  destination
	res   *Result
	prog  Progress
	dele  []*message // delivered, to delete at the end
	batch []*message // staged in dest, not yet recorded
	since time.Time  // when the oldest staged message was staged
	// inflight is the batch being made durable in the background while
	// the next one is fetched, or nil.
	inflight *inflightBatch
	// unrecorded is set when deliveries may be in the destination without
	// a record (the next run then looks for them).
	unrecorded bool
	// expire0: the server announced EXPIRE 0 after login (RFC 2449
	// §6.7), so its QUIT deletes every message the session retrieved,
	// DELE or not.
	expire0 bool
	// exposed are the messages the session may have retrieved whole: a
	// RETR was sent, or a TOP sent all of the message. With EXPIRE 0 the
	// session ends with QUIT only if each of them is delivered and
	// recorded (see deleteAndQuit).
	exposed map[*message]bool
	// unquit: the session was closed without QUIT because of EXPIRE 0
	// (see deleteAndQuit); cleanup then deletes in a second session.
	unquit bool
	// noUIDL: some message had no UIDL (fallback ids, see list).
	noUIDL bool
}

// Run fetches the account once: it logs in, delivers what is new, deletes
// what the policy says, and records everything in the state. Messages are
// deleted on the server only once delivered and recorded durably.
func (f *Fetcher) Run(ctx context.Context) *Result {
	a := f.acct
	res := &Result{Account: a.Name, DryRun: f.opts.DryRun}
	st, err := openState(f.cfg.StateDir, a.Name, f.opts.DryRun, f.opts.now())
	if err != nil {
		kind := KindFailed
		if errors.Is(err, ErrBusy) {
			kind = KindTemporary
		}
		res.Err = &Error{Kind: kind, Err: err}
		return res
	}
	// Recorded last, when the state is closed (for postie fetch status).
	defer f.saveStatus(res)
	fresh := len(st.entries) == 0
	r := &run{Fetcher: f, ctx: ctx, st: st, res: res}
	defer func() {
		if r.inflight != nil {
			<-r.inflight.done
			r.unrecorded = true
		}
		if r.dest != nil {
			r.dest.close()
		}
		if r.c != nil {
			r.c.Close()
		}
		if err := st.close(!r.unrecorded); err != nil && res.Err == nil {
			res.Err = &Error{Kind: KindFailed, Err: err}
		}
	}()
	if err := r.do(fresh); err != nil {
		res.Err = err
	}
	return res
}

func (r *run) do(fresh bool) *Error {
	a := r.acct
	c, err := r.connect(r.ctx)
	if err != nil {
		return classifyConn(a, err)
	}
	r.c = c
	caps, err := c.Capabilities(r.ctx)
	if err != nil {
		return classifyConn(a, err)
	}
	r.checkCaps(caps)
	r.expire0 = expireZero(caps)
	msgs, err := r.list(caps)
	if err != nil {
		return classifyConn(a, err)
	}
	now := r.opts.now()
	listed := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		listed[m.id] = true
		r.st.get(m.id, now.Unix())
	}
	if !r.opts.DryRun {
		if r.dest, err = r.openDest(fresh || r.st.dirty); err != nil {
			return &Error{Kind: KindFailed, Err: err}
		}
	}

	// Decide, then fetch.
	var fetch []*message
	var fetchOctets int64
	for _, m := range msgs {
		e := r.st.lookup(m.id)
		switch {
		case e.delivered != 0:
			if r.deleteDelivered(e, now) {
				r.plan("delete", m, "delivered "+time.Unix(e.delivered, 0).UTC().Format(time.DateOnly))
				r.dele = append(r.dele, m)
			}
		case a.MaxSize > 0 && m.size > int64(a.MaxSize):
			why := fmt.Sprintf("%s, over max_size", humanOctets(m.size))
			if a.Oversize == "delete" {
				r.plan("delete", m, why+", not fetched")
				r.log().Warn("deleting a message over max_size without fetching it", "account", a.Name, "id", m.id, "size", m.size)
				r.dele = append(r.dele, m)
			} else {
				r.plan("skip", m, why)
				r.res.Skipped++
			}
		case a.MaxMessagesPerRun > 0 && len(fetch) >= a.MaxMessagesPerRun:
			r.plan("leave", m, "max_messages_per_run reached; next run")
			r.res.Left++
		default:
			r.plan("fetch", m, humanOctets(m.size))
			fetch = append(fetch, m)
			fetchOctets += m.size
		}
	}
	if r.opts.DryRun {
		r.res.Fetched, r.res.Octets = len(fetch), fetchOctets
		r.res.Deleted = len(r.dele)
		return nil
	}
	if r.opts.Progress != nil && len(fetch) > 0 {
		r.prog = r.opts.Progress(a.Name)
		r.prog.Start(len(fetch), fetchOctets)
		defer r.prog.Finish()
	}
	ahead := pipelineAhead
	if r.expire0 {
		ahead = 0
	}
	stop := r.fetchAll(fetch, ahead)
	if err := r.flush(); err != nil && stop == nil {
		stop = err
	}
	if err := r.deleteAndQuit(); err != nil && stop == nil {
		stop = err
	}
	if r.unquit && r.ctx.Err() == nil {
		r.hook("between-sessions", 0)
		r.cleanup()
	}
	// Forget what the server no longer has: its UIDLs are never reused.
	for id := range r.st.entries {
		if !listed[id] {
			delete(r.st.entries, id)
		}
	}
	return stop
}

// deleteDelivered reports whether a delivered message is to be deleted.
func (r *run) deleteDelivered(e *entry, now time.Time) bool {
	a := r.acct
	if !a.keep() {
		return true
	}
	if a.DeleteAfterDays > 0 {
		return !now.Before(time.Unix(e.delivered, 0).Add(time.Duration(a.DeleteAfterDays) * 24 * time.Hour))
	}
	return false
}

func (r *run) plan(action string, m *message, why string) {
	if r.opts.DryRun && r.opts.Plan != nil {
		fmt.Fprintf(r.opts.Plan, "%s: %s message %d (%s): %s\n", r.acct.Name, action, m.num, m.id, why)
	}
}

// checkCaps warns about what the server announces after login.
func (r *run) checkCaps(caps pop3client.Caps) {
	a := r.acct
	if args := caps.Args(pop3.CapLoginDelay); len(args) > 0 {
		if n, err := strconv.Atoi(args[0]); err == nil && n > 0 {
			r.res.LoginDelay = time.Duration(n) * time.Second
		}
	}
	if args := caps.Args(pop3.CapExpire); len(args) > 0 && a.keep() {
		if n, err := strconv.Atoi(args[0]); err == nil {
			switch {
			case n == 0:
				r.log().Warn("the server does not let mail stay after it was retrieved (EXPIRE 0): keep = true has no effect", "account", a.Name)
			case a.DeleteAfterDays == 0 || n < a.DeleteAfterDays:
				r.log().Warn(fmt.Sprintf("the server deletes retrieved mail after %d days (EXPIRE)", n), "account", a.Name)
			}
		}
	}
}

func (r *run) openDest(scan bool) (destination, error) {
	a := r.acct
	switch {
	case a.Maildir != "":
		return openMaildir(a.Maildir, a.Name, scan)
	case a.Mbox != "":
		return openMbox(a.Mbox, r.st.recordPending)
	case a.MDA != "":
		return &mdaDest{command: a.MDA, account: a.Name}, nil
	}
	return &lmtpDest{addr: a.LMTP, recipient: a.LMTPRecipient, timeout: a.timeout}, nil
}

// list returns the messages with their ids: the UIDLs, or for a server
// without UIDL a hash of some header fields and the size.
func (r *run) list(caps pop3client.Caps) ([]*message, error) {
	// UIDL is optional (RFC 1939 §7): ask for it, and fall back when it is
	// refused.
	infos, err := r.c.ListAndUIDL(r.ctx)
	var perr *pop3client.Error
	if errors.As(err, &perr) && perr.Command == "UIDL" {
		infos, err = r.c.List(r.ctx)
	}
	if err != nil {
		return nil, err
	}
	msgs := make([]*message, 0, len(infos))
	missing := 0
	for _, in := range infos {
		if in.UID == "" {
			missing++
		}
		msgs = append(msgs, &message{num: in.Num, id: in.UID, size: in.Size})
	}
	if missing > 0 {
		r.noUIDL = true
		r.log().Warn("the server has no UIDL: messages are told apart by a hash of their Message-ID, Date, From and Subject fields and their size (found with TOP); identical messages are told apart by their order only",
			"account", r.acct.Name, "server", r.acct.Server)
		if err := r.fallbackIDs(msgs, caps); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// fallbackIDs gives the messages without a UIDL an id: "~" and 40 hex
// digits of SHA-256 over Message-ID, Date, From, Subject and the size, from
// TOP n 0 (or RETR when TOP is refused); a repeated id gets "~2", "~3"…
func (r *run) fallbackIDs(msgs []*message, caps pop3client.Caps) error {
	useRetr := false
	seen := map[string]int{}
	br := bufio.NewReaderSize(nil, maxHeaderPeek)
	for _, m := range msgs {
		if m.id != "" {
			continue
		}
		var rc io.ReadCloser
		var err error
		if !useRetr {
			rc, err = r.c.Top(r.ctx, m.num, 0)
			var perr *pop3client.Error
			if errors.As(err, &perr) {
				useRetr = true
			}
		}
		if useRetr {
			r.expose(m)
			rc, err = r.c.Retr(r.ctx, m.num)
		}
		if err != nil {
			return err
		}
		cr := &countingReader{r: rc}
		br.Reset(cr)
		h := peekHeader(br)
		if !useRetr {
			// TOP n 0 of a message without a body sends all of it, which
			// a server may count as retrieved.
			io.Copy(io.Discard, br)
		}
		if err := rc.Close(); err != nil {
			return err
		}
		if !useRetr && cr.n >= m.size {
			r.expose(m)
		}
		sum := sha256.New()
		for _, k := range []string{"Message-Id", "Date", "From", "Subject"} {
			io.WriteString(sum, strings.Join(strings.Fields(h.Get(k)), " ")+"\x00")
		}
		io.WriteString(sum, strconv.FormatInt(m.size, 10))
		id := "~" + hex.EncodeToString(sum.Sum(nil))[:40]
		seen[id]++
		if n := seen[id]; n > 1 {
			id += "~" + strconv.Itoa(n)
		}
		m.id = id
	}
	return nil
}

// pipelineAhead is how many RETR commands fetch keeps sent beyond the
// message it is reading, when the server announces PIPELINING: the
// server sends the next message while this one is stored, instead of
// waiting a round trip for each.
const pipelineAhead = 4

// expireZero reports whether the server announces EXPIRE 0 (RFC 2449
// §6.7): it deletes at QUIT every message the session retrieved. RETR is
// then not pipelined: a RETR sent ahead retrieves a message the run may
// never deliver, and such a message makes the run end without QUIT (see
// deleteAndQuit), which keeps it but also forgoes the session's deletions.
func expireZero(caps pop3client.Caps) bool {
	args := caps.Args(pop3.CapExpire)
	return len(args) > 0 && args[0] == "0"
}

// errStopRetr ends a RetrMany whose callback has set the run's error.
var errStopRetr = errors.New("fetch: run stopped")

// fetchAll retrieves and delivers msgs in order. A message whose delivery
// the previous run left pending goes alone through fetchOne (its recovery
// may read it again); the others go in runs through fetchMany. A returned
// error stops the run.
func (r *run) fetchAll(msgs []*message, ahead int) *Error {
	for i, m := range msgs {
		m.ord = i + 1
	}
	pending := func(m *message) bool {
		e := r.st.lookup(m.id)
		return e != nil && e.pendOff >= 0
	}
	for i := 0; i < len(msgs); {
		if pending(msgs[i]) {
			if err := r.fetchOne(msgs[i]); err != nil {
				return err
			}
			i++
			continue
		}
		j := i + 1
		for j < len(msgs) && !pending(msgs[j]) {
			j++
		}
		if err := r.fetchMany(msgs[i:j], ahead); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// fetchMany retrieves and delivers msgs, none of them pending, with RETR
// pipelined ahead commands ahead (pop3client.RetrMany). Pipelining changes
// nothing of exactly once: RETR changes nothing on the server (EXPIRE 0
// aside, see expireZero), each message is still delivered, made durable
// and recorded, in order, before it may be deleted, and a message whose
// RETR was sent but which the run did not deliver (a crash, an error) is
// neither recorded nor deleted: the next run fetches it.
func (r *run) fetchMany(msgs []*message, ahead int) *Error {
	var want []*message
	for _, m := range msgs {
		if r.dest.has(m) {
			r.log().Info("found a delivery the previous run did not record", "account", r.acct.Name, "id", m.id)
			if err := r.recorded(m, m.size); err != nil {
				return err
			}
			continue
		}
		want = append(want, m)
	}
	if len(want) == 0 {
		return nil
	}
	nums := make([]int, len(want))
	for i, m := range want {
		nums[i] = m.num
	}
	// All of them, though RetrMany may not get to the last ones: a run
	// that stops early leaves an undelivered message anyway.
	for _, m := range want {
		r.expose(m)
	}
	var stop *Error
	err := r.c.RetrMany(r.ctx, nums, ahead, func(i int, body io.Reader, err error) error {
		m := want[i]
		if cerr := r.ctx.Err(); cerr != nil {
			stop = &Error{Kind: KindTemporary, Err: cerr}
		} else if m.at = r.opts.now(); err != nil {
			stop = r.retrError(m, err)
		} else {
			stop = r.take(m, body)
		}
		if stop != nil {
			return errStopRetr
		}
		return nil
	})
	switch {
	case stop != nil:
		return stop
	case err != nil:
		return classifyConn(r.acct, err)
	}
	return nil
}

// fetchOne retrieves and delivers one message. A returned error stops the
// run; a message the destination refuses only counts.
func (r *run) fetchOne(m *message) *Error {
	a := r.acct
	if err := r.ctx.Err(); err != nil {
		return &Error{Kind: KindTemporary, Err: err}
	}
	m.at = r.opts.now()
	e := r.st.lookup(m.id)
	if e != nil && e.pendOff >= 0 {
		if rec, ok := r.dest.(recoverer); ok {
			m.at = time.Unix(e.pendTime, 0)
			done, err := rec.recoverPending(r.ctx, m, e, func() (io.ReadCloser, error) {
				r.expose(m)
				return r.c.Retr(r.ctx, m.num)
			})
			if err != nil {
				return r.deliveryError(m, err)
			}
			m.at = r.opts.now()
			if done {
				r.log().Info("found a delivery the previous run did not record", "account", a.Name, "id", m.id)
				return r.recorded(m, m.size)
			}
		} else {
			r.log().Warn("the previous run stopped while delivering this message; delivering it again (it may arrive twice)", "account", a.Name, "id", m.id, "destination", a.Destination())
		}
	}
	if r.dest.has(m) {
		r.log().Info("found a delivery the previous run did not record", "account", a.Name, "id", m.id)
		return r.recorded(m, m.size)
	}
	r.expose(m)
	rc, err := r.c.Retr(r.ctx, m.num)
	if err != nil {
		return r.retrError(m, err)
	}
	defer rc.Close()
	return r.take(m, rc)
}

// retrError sorts out a RETR that failed: a message the server refuses
// for good counts and the run goes on; anything else stops it.
func (r *run) retrError(m *message, err error) *Error {
	var perr *pop3client.Error
	if errors.As(err, &perr) {
		// -ERR: the server sent nothing of it.
		delete(r.exposed, m)
	}
	if errors.As(err, &perr) && !perr.Temporary() {
		r.res.Failed++
		r.log().Error("the server refused to send a message", "account", r.acct.Name, "id", m.id, "err", err)
		return nil
	}
	return classifyConn(r.acct, err)
}

// take delivers message m, whose RETR succeeded, from rc, the body.
func (r *run) take(m *message, rc io.Reader) *Error {
	a := r.acct
	if _, ok := r.dest.(pendingFirst); ok {
		if err := r.st.recordPending(m.id, 0, m.at); err != nil {
			return &Error{Kind: KindFailed, Err: err}
		}
	}
	cr := &countingReader{r: rc, want: m.size, limit: int64(a.MaxSize)}
	if r.prog != nil {
		cr.tick = r.prog.Add
	}
	if r.opts.crash != nil {
		cr.half = func() { r.hook("retr", m.ord) }
	}
	durable, err := r.dest.deliver(r.ctx, m, &readErrReader{r: cr})
	if err != nil {
		if _, ok := isRefusal(err); ok {
			if _, ok := r.dest.(pendingFirst); ok {
				if err := r.st.clearPending(m.id); err != nil {
					return &Error{Kind: KindFailed, Err: err}
				}
			}
		}
		return r.deliveryError(m, err)
	}
	if r.prog != nil {
		r.prog.Done()
	}
	if durable {
		r.hook("after-write", m.ord)
		return r.recorded(m, cr.n)
	}
	if len(r.batch) == 0 {
		r.since = time.Now()
	}
	m.size = cr.n
	r.batch = append(r.batch, m)
	n, octets := r.dest.staged()
	if n >= r.batchMax() || octets >= 8<<20 || time.Since(r.since) > time.Second {
		return r.startFlush()
	}
	return nil
}

func (r *run) batchMax() int {
	if r.opts.batch > 0 {
		return r.opts.batch
	}
	return 64
}

// readErrReader marks errors of the message's source, so they are told
// apart from the destination's.
type readErrReader struct{ r io.Reader }

type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

func (s *readErrReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
}

// deliveryError sorts out a failed delivery: a refusal counts and the run
// goes on; a lost server connection or a broken destination stops it.
func (r *run) deliveryError(m *message, err error) *Error {
	a := r.acct
	if ref, ok := isRefusal(err); ok {
		if ref.temp {
			r.res.Deferred++
			r.log().Warn("delivery deferred; the message stays on the server", "account", a.Name, "id", m.id, "err", err)
		} else {
			r.res.Failed++
			r.log().Error("delivery refused; the message stays on the server", "account", a.Name, "id", m.id, "err", err)
		}
		return nil
	}
	var se *sourceError
	if errors.As(err, &se) {
		return classifyConn(a, se.err)
	}
	if r.ctx.Err() != nil {
		return &Error{Kind: KindTemporary, Err: r.ctx.Err()}
	}
	return &Error{Kind: KindFailed, Err: fmt.Errorf("delivery to %s failed: %w", a.Destination(), err)}
}

// recorded records one durable delivery.
func (r *run) recorded(m *message, octets int64) *Error {
	if err := r.st.recordDelivered([]string{m.id}, m.at); err != nil {
		r.unrecorded = true
		return &Error{Kind: KindFailed, Err: err}
	}
	r.hook("after-record", m.ord)
	r.delivered(m, octets)
	return nil
}

func (r *run) delivered(m *message, octets int64) {
	r.res.Fetched++
	r.res.Octets += octets
	if r.deleteDelivered(r.st.lookup(m.id), r.opts.now()) {
		r.dele = append(r.dele, m)
	}
}

type inflightBatch struct {
	msgs []*message
	done chan error
}

// startFlush starts making the staged deliveries durable in the
// background, after recording the batch before it.
func (r *run) startFlush() *Error {
	if err := r.finishFlush(); err != nil {
		return err
	}
	if len(r.batch) == 0 || r.dest == nil {
		return nil
	}
	b := &inflightBatch{msgs: r.batch, done: make(chan error, 1)}
	r.batch = nil
	flush := r.dest.detach()
	go func() { b.done <- flush() }()
	r.inflight = b
	return nil
}

// finishFlush waits for the batch in the background to be durable, then
// records it.
func (r *run) finishFlush() *Error {
	b := r.inflight
	if b == nil {
		return nil
	}
	r.inflight = nil
	if err := <-b.done; err != nil {
		r.unrecorded = true
		return &Error{Kind: KindFailed, Err: fmt.Errorf("delivery to %s failed: %w", r.acct.Destination(), err)}
	}
	ids := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		r.hook("after-write", m.ord)
		ids[i] = m.id
	}
	if err := r.st.recordDelivered(ids, b.msgs[len(b.msgs)-1].at); err != nil {
		r.unrecorded = true
		return &Error{Kind: KindFailed, Err: err}
	}
	for _, m := range b.msgs {
		r.hook("after-record", m.ord)
		r.delivered(m, m.size)
	}
	return nil
}

// flush makes every staged delivery durable and records it.
func (r *run) flush() *Error {
	if err := r.startFlush(); err != nil {
		return err
	}
	return r.finishFlush()
}

// deleteAndQuit marks the messages to delete and ends the session; only
// a QUIT answered +OK removes them (and their state entries).
//
// With EXPIRE 0 a QUIT also removes every message the session retrieved,
// so if one of them is not delivered and recorded (the destination
// refused it, failed, or the run was stopped), the session ends without
// DELE and QUIT: the connection is closed, and a server that gets no QUIT
// enters no UPDATE state and deletes nothing (RFC 1939 §6). The messages
// delivered are recorded in the state, and cleanup deletes them (unless
// kept) in a second session that retrieves nothing; if that does not
// happen (the run is stopped or killed, the server is busy), the next run
// does not fetch them again, and deletes them.
func (r *run) deleteAndQuit() *Error {
	a := r.acct
	if r.expire0 {
		if n := r.undelivered(); n > 0 {
			r.log().Warn("ending the session without QUIT: the server deletes every retrieved message at QUIT (EXPIRE 0) and some were not delivered; they stay on the server; the messages delivered are deleted in a second session that retrieves nothing (or by a later run)",
				"account", a.Name, "undelivered", n)
			r.c.Close()
			r.c = nil
			r.unquit = true
			return nil
		}
	}
	err := r.deleteThenQuit(r.c, r.dele, "after-dele")
	r.c = nil
	return err
}

// deleteThenQuit marks msgs deleted on c, with the crash point hook
// after the DELEs, and ends the session with QUIT; once the QUIT is
// answered +OK, the messages whose DELE was accepted are counted and
// their state entries removed. c is closed in every case.
func (r *run) deleteThenQuit(c *pop3client.Client, msgs []*message, hook string) *Error {
	a := r.acct
	defer c.Close()
	nums := make([]int, len(msgs))
	for i, m := range msgs {
		nums[i] = m.num
	}
	var derr error
	if len(nums) > 0 {
		derr = c.DeleMany(r.ctx, nums)
		var perr *pop3client.Error
		if derr != nil && !errors.As(derr, &perr) {
			return classifyConn(a, derr)
		}
		r.hook(hook, len(nums))
	}
	if err := c.Quit(r.ctx); err != nil {
		if len(nums) > 0 {
			r.log().Warn("QUIT failed: the messages marked for deletion may still be on the server; the next run deletes them", "account", a.Name, "err", err)
		}
		return classifyConn(a, err)
	}
	if derr != nil {
		r.log().Warn("the server refused to delete some messages", "account", a.Name, "err", derr)
	}
	refused := refusedNumbers(derr)
	for _, m := range msgs {
		if !refused[m.num] {
			r.res.Deleted++
			delete(r.st.entries, m.id)
		}
	}
	return nil
}

// expose notes that the session may retrieve m whole.
func (r *run) expose(m *message) {
	if r.exposed == nil {
		r.exposed = map[*message]bool{}
	}
	r.exposed[m] = true
}

// undelivered counts the messages the session may have retrieved whole
// that are not recorded as delivered.
func (r *run) undelivered() int {
	n := 0
	for m := range r.exposed {
		if e := r.st.lookup(m.id); e == nil || e.delivered == 0 {
			n++
		}
	}
	return n
}

// refusedNumbers returns the message numbers whose DELE the joined errors
// of DeleMany refused.
func refusedNumbers(err error) map[int]bool {
	out := map[int]bool{}
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	for _, e := range errs {
		var perr *pop3client.Error
		if errors.As(e, &perr) {
			if n, err := strconv.Atoi(strings.TrimPrefix(perr.Command, "DELE ")); err == nil {
				out[n] = true
			}
		}
	}
	return out
}
