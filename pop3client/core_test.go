package pop3client_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3"
	"github.com/postie-mail/postie/pop3client"
)

// peer is a server the core test runs against.
type peer struct {
	addr  string
	opts  *pop3client.Options
	user  string
	login func(ctx context.Context, c *pop3client.Client) error
	// quitDone, if set, waits until the server has finished a session
	// that QUIT (see postieCore).
	quitDone func()
	// listSize is the size LIST must report for corpus message i; by
	// default the length of its wire form.
	listSize func(i int) int64
}

// coreResult is what a core run saw, to compare servers.
type coreResult struct {
	sizes  []int64
	bodies []string
	tops   []string
}

// runCore runs the client's core against a server whose maildrop holds
// the corpus: login, STAT, LIST, UIDL, RETR byte-exact, TOP, DELE with
// RSET, DELE with QUIT, and a second session that sees the deletion.
func runCore(t *testing.T, p peer) coreResult {
	t.Helper()
	ctx := ctxT(t)
	listSize := p.listSize
	if listSize == nil {
		listSize = func(i int) int64 { return int64(len(corpus[i].wire)) }
	}
	var want int64
	for i := range corpus {
		want += listSize(i)
	}
	var res coreResult

	c, err := pop3client.Dial(ctx, p.addr, p.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, cp := range []string{pop3.CapTop, pop3.CapUIDL, pop3.CapUser, pop3.CapPipelining} {
		if !caps.Has(cp) {
			t.Errorf("capabilities lack %s: %v", cp, caps)
		}
	}
	if err := p.login(ctx, c); err != nil {
		t.Fatal(err)
	}
	n, size, err := c.Stat(ctx)
	if err != nil || n != 3 || size != want {
		t.Fatalf("Stat = %d, %d, %v; want 3, %d", n, size, err, want)
	}
	all, err := c.ListAndUIDL(ctx)
	if err != nil || len(all) != 3 {
		t.Fatalf("ListAndUIDL = %v, %v", all, err)
	}
	seen := map[string]bool{}
	for i, m := range all {
		if m.Num != i+1 || m.Size != listSize(i) || m.UID == "" || seen[m.UID] {
			t.Errorf("ListAndUIDL[%d] = %+v; want number %d, size %d, a new UID", i, m, i+1, listSize(i))
		}
		seen[m.UID] = true
		res.sizes = append(res.sizes, m.Size)
	}
	list, err := c.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	uidl, err := c.UIDL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range all {
		if list[i].Num != all[i].Num || list[i].Size != all[i].Size || uidl[i].Num != all[i].Num || uidl[i].UID != all[i].UID {
			t.Errorf("message %d: LIST %+v, UIDL %+v, together %+v", i+1, list[i], uidl[i], all[i])
		}
	}
	if s, err := c.ListOne(ctx, 2); err != nil || s != listSize(1) {
		t.Errorf("ListOne(2) = %d, %v; want %d", s, err, listSize(1))
	}
	if u, err := c.UIDLOne(ctx, 3); err != nil || u != all[2].UID {
		t.Errorf("UIDLOne(3) = %q, %v; want %q", u, err, all[2].UID)
	}
	for i, m := range corpus {
		r, err := c.Retr(ctx, i+1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if string(b) != m.wire {
			t.Errorf("RETR %d:\n got %q\nwant %q", i+1, b, m.wire)
		}
		res.bodies = append(res.bodies, string(b))
	}
	for _, tc := range []struct {
		n, lines int
		want     string
	}{
		{1, 0, "From: a@example.com\r\nSubject: one\r\n\r\n"},
		{3, 2, "Subject: three\r\n\r\nline1\r\nline2\r\n"},
		{2, 100, corpus[1].wire},
	} {
		r, err := c.Top(ctx, tc.n, tc.lines)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(b) != tc.want {
			t.Errorf("TOP %d %d = %q, %v; want %q", tc.n, tc.lines, b, err, tc.want)
		}
		res.tops = append(res.tops, string(b))
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}

	// DELE, then RSET brings the message back.
	if err := c.Dele(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if n, size, err := c.Stat(ctx); err != nil || n != 2 || size != want-listSize(1) {
		t.Errorf("Stat after DELE = %d, %d, %v", n, size, err)
	}
	_, err = c.ListOne(ctx, 2)
	var perr *pop3.Error
	var cerr *pop3client.Error
	if !errors.As(err, &perr) || !errors.As(err, &cerr) || cerr.Command != "LIST 2" {
		t.Errorf("ListOne of a deleted message = %v; want an -ERR for LIST 2", err)
	}
	if err := c.Rset(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.Stat(ctx); err != nil || n != 3 {
		t.Errorf("Stat after RSET = %d, %v", n, err)
	}

	// DELE and QUIT remove it for good.
	if err := c.DeleMany(ctx, []int{2}); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(ctx); !errors.Is(err, pop3client.ErrClosed) {
		t.Errorf("Noop after Quit = %v, want ErrClosed", err)
	}
	if p.quitDone != nil {
		p.quitDone()
	}

	c, err = pop3client.Dial(ctx, p.addr, p.opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := p.login(ctx, c); err != nil {
		t.Fatal(err)
	}
	after, err := c.UIDL(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, m := range after {
		uids = append(uids, m.UID)
	}
	if !slices.Equal(uids, []string{all[0].UID, all[2].UID}) {
		t.Errorf("UIDs after deleting message 2: %q; want %q", uids, []string{all[0].UID, all[2].UID})
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	return res
}

func loginUserPass(user, pass string) func(context.Context, *pop3client.Client) error {
	return func(ctx context.Context, c *pop3client.Client) error { return c.Login(ctx, user, pass) }
}

func loginSASL(mech func() pop3client.SASLMechanism) func(context.Context, *pop3client.Client) error {
	return func(ctx context.Context, c *pop3client.Client) error { return c.Auth(ctx, mech()) }
}

// postieCore runs the core against postie and returns what it saw.
func postieCore(t *testing.T) coreResult {
	s := startPostie(t, nil)
	for _, m := range corpus {
		s.deliver(t, "user1", m.stored)
	}
	return runCore(t, peer{addr: s.addr, user: "user1", login: loginUserPass("user1", "pass1"), quitDone: func() { waitSessions(t, s, 0) }})
}

func TestCorePostie(t *testing.T) {
	postieCore(t)
}

// waitSessions waits until the server has n sessions. pop3server sends
// "+OK" to QUIT before it releases the maildrop lock, so a client that
// logs in again at once can meet [IN-USE] from its own previous session.
func waitSessions(t testing.TB, s *postie, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.srv.Sessions() != n {
		if time.Now().After(deadline) {
			t.Fatalf("server has %d sessions, want %d", s.srv.Sessions(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
