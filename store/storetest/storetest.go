// Package storetest is the behaviour suite every postie maildrop backend
// must pass: exact wire sizes and bytes, snapshot order and isolation,
// UIDL rules (RFC 1939 §7), the exclusive session lock, and the UPDATE
// state's deletions (RFC 1939 §6). A backend's tests call Run with a
// function that makes a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/postie-mail/postie/store"
)

// Run runs the behaviour suite against a backend. newStore returns a fresh,
// empty store each call.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"WireSizeAndBytes", testWireSizeAndBytes},
		{"LargeMessage", testLargeMessage},
		{"EmptyMaildrop", testEmptyMaildrop},
		{"Order", testOrder},
		{"UIDs", testUIDs},
		{"InUse", testInUse},
		{"DeliverDuringSession", testDeliverDuringSession},
		{"Commit", testCommit},
		{"CommitNothing", testCommitNothing},
		{"NoUIDReuse", testNoUIDReuse},
		{"CloseWithoutCommit", testCloseWithoutCommit},
		{"Closed", testClosed},
		{"OpenOutOfRange", testOpenOutOfRange},
		{"ConcurrentDeliveries", testConcurrentDeliveries},
		{"UsersIsolated", testUsersIsolated},
		{"FailedDelivery", testFailedDelivery},
		{"CanceledDelivery", testCanceledDelivery},
		{"BadUser", testBadUser},
		{"Usage", testUsage},
		{"Expire", testExpire},
		{"ExpireRecordsAtClose", testExpireRecordsAtClose},
		{"ExpireKeepsFirstRetrieval", testExpireKeepsFirstRetrieval},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// sizeCases are messages with their wire sizes, worked out by hand.
var sizeCases = []struct {
	name string
	body string
	size int64
}{
	{"LF", "From: a\nSubject: b\n\nbody\n", 29},
	{"CRLF", "From: a\r\nSubject: b\r\n\r\nbody\r\n", 29},
	{"MixedEnds", "a\r\nb\nc\r\n", 9},
	{"NoFinalNewline", "From: a\n\nbody", 17},
	{"NoFinalNewlineCRLF", "a\r\n\r\nb", 8},
	{"TrailingCR", "a\r", 3},
	{"CRCRLF", "a\r\r\n", 4},
	{"Empty", "", 0},
	{"OnlyNewline", "\n", 2},
	{"DotLines", ".\n..\n.x\nend\n", 16},
	{"DotOnly", ".", 3},
	{"Binary", "a\x00b\xff\n\r\x00\n", 10},
	{"NULs", "\x00\x00\x00", 5},
}

func testWireSizeAndBytes(t *testing.T, s store.Store) {
	var want []store.DeliveryInfo
	for _, c := range sizeCases {
		if got := refWireSize([]byte(c.body)); got != c.size {
			t.Fatalf("%s: suite bug: reference size %d, table %d", c.name, got, c.size)
		}
		info := deliver(t, s, "alice", []byte(c.body))
		if info.Size != c.size {
			t.Errorf("%s: Deliver size = %d, want %d", c.name, info.Size, c.size)
		}
		checkUID(t, info.UID)
		want = append(want, info)
	}
	md := open(t, s, "alice")
	defer md.Close()
	msgs := md.Messages()
	if len(msgs) != len(sizeCases) {
		t.Fatalf("snapshot has %d messages, want %d", len(msgs), len(sizeCases))
	}
	for i, c := range sizeCases {
		if msgs[i].UID != want[i].UID || msgs[i].Size != c.size {
			t.Errorf("%s: message %d = %+v, want {UID:%s Size:%d}", c.name, i, msgs[i], want[i].UID, c.size)
		}
		if got := read(t, md, i); !bytes.Equal(got, []byte(c.body)) {
			t.Errorf("%s: Open(%d) = %q, want %q", c.name, i, got, c.body)
		}
	}
}

// testLargeMessage crosses every buffer size a backend might use with line
// ends (LF, CRLF, and CR LF split across reads) in all positions.
func testLargeMessage(t *testing.T, s store.Store) {
	var b bytes.Buffer
	for i := 0; b.Len() < 3<<20; i++ {
		b.WriteString(fmt.Sprintf("%d:%s", i, bytes.Repeat([]byte{'x'}, i%97)))
		switch i % 3 {
		case 0:
			b.WriteString("\n")
		case 1:
			b.WriteString("\r\n")
		default:
			b.WriteString("\r\x00\n")
		}
	}
	b.WriteString(".last line without end\r")
	body := b.Bytes()
	want := refWireSize(body)
	// A reader that returns odd-sized pieces, so a CR and its LF come in
	// different reads.
	info, err := s.Deliver(t.Context(), "alice", &choppyReader{data: body})
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if info.Size != want {
		t.Errorf("Deliver size = %d, want %d", info.Size, want)
	}
	md := open(t, s, "alice")
	defer md.Close()
	if got := md.Messages(); len(got) != 1 || got[0].Size != want || got[0].UID != info.UID {
		t.Fatalf("Messages() = %+v, want [{%s %d}]", got, info.UID, want)
	}
	if got := read(t, md, 0); !bytes.Equal(got, body) {
		t.Errorf("Open(0) returned %d octets that differ from the %d delivered", len(got), len(body))
	}
}

func testEmptyMaildrop(t *testing.T, s store.Store) {
	md, err := s.Open(t.Context(), "nobody-yet")
	if errors.Is(err, store.ErrNoSuchUser) {
		return // a backend may insist on a delivery or an account first
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer md.Close()
	if n := len(md.Messages()); n != 0 {
		t.Errorf("new maildrop has %d messages", n)
	}
	if err := md.Commit(t.Context(), nil); err != nil {
		t.Errorf("Commit(nil): %v", err)
	}
}

func testOrder(t *testing.T, s store.Store) {
	var want []string
	for i := range 20 {
		want = append(want, deliver(t, s, "alice", fmt.Appendf(nil, "message %d\n", i)).UID)
	}
	md := open(t, s, "alice")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, want) {
		t.Errorf("snapshot order\n got %q\nwant %q", got, want)
	}
	for i := range want {
		if got, w := string(read(t, md, i)), fmt.Sprintf("message %d\n", i); got != w {
			t.Errorf("Open(%d) = %q, want %q", i, got, w)
		}
	}
}

func testUIDs(t *testing.T, s store.Store) {
	for i := range 30 {
		deliver(t, s, "alice", fmt.Appendf(nil, "m%d\n", i%3)) // same bytes, distinct UIDs
	}
	var first []string
	for round := range 3 {
		md := open(t, s, "alice")
		got := uids(md)
		md.Close()
		seen := map[string]bool{}
		for _, u := range got {
			checkUID(t, u)
			if seen[u] {
				t.Errorf("UID %q appears twice", u)
			}
			seen[u] = true
		}
		if round == 0 {
			first = got
			if len(got) != 30 {
				t.Fatalf("snapshot has %d messages, want 30", len(got))
			}
		} else if !slices.Equal(got, first) {
			t.Errorf("UIDs changed across sessions\n got %q\nwant %q", got, first)
		}
	}
}

func testInUse(t *testing.T, s store.Store) {
	ctx := t.Context()
	deliver(t, s, "alice", []byte("x\n"))
	md := open(t, s, "alice")
	for range 2 {
		md2, err := s.Open(ctx, "alice")
		if !errors.Is(err, store.ErrInUse) {
			if md2 != nil {
				md2.Close()
			}
			t.Fatalf("second Open: err = %v, want ErrInUse", err)
		}
	}
	// Another user's maildrop is not affected.
	deliver(t, s, "bob", []byte("y\n"))
	other := open(t, s, "bob")
	other.Close()
	if err := md.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	md = open(t, s, "alice") // the lock was released
	// ... also after Commit then Close.
	if err := md.Commit(ctx, nil); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()
	open(t, s, "alice").Close()
}

func testDeliverDuringSession(t *testing.T, s store.Store) {
	a := deliver(t, s, "alice", []byte("a\n"))
	md := open(t, s, "alice")
	// Deliver must not wait for the session lock.
	done := make(chan store.DeliveryInfo, 1)
	go func() {
		info, err := s.Deliver(t.Context(), "alice", bytes.NewReader([]byte("b\n")))
		if err != nil {
			t.Errorf("Deliver during session: %v", err)
		}
		done <- info
	}()
	var b store.DeliveryInfo
	select {
	case b = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("Deliver blocked while a session was open")
	}
	if got := uids(md); !slices.Equal(got, []string{a.UID}) {
		t.Errorf("current session sees %q, want only %q", got, a.UID)
	}
	if err := md.Commit(t.Context(), nil); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()
	md = open(t, s, "alice")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, []string{a.UID, b.UID}) {
		t.Errorf("next session sees %q, want %q", got, []string{a.UID, b.UID})
	}
	if got := string(read(t, md, 1)); got != "b\n" {
		t.Errorf("Open(1) = %q", got)
	}
}

func testCommit(t *testing.T, s store.Store) {
	var all []string
	for i := range 5 {
		all = append(all, deliver(t, s, "alice", fmt.Appendf(nil, "message %d\n", i)).UID)
	}
	md := open(t, s, "alice")
	if err := md.Commit(t.Context(), []int{3, 1}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := md.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	want := []string{all[0], all[2], all[4]}
	for range 2 {
		md := open(t, s, "alice")
		if got := uids(md); !slices.Equal(got, want) {
			t.Errorf("after Commit: %q, want %q", got, want)
		}
		for i, n := range []int{0, 2, 4} {
			if got, w := string(read(t, md, i)), fmt.Sprintf("message %d\n", n); got != w {
				t.Errorf("Open(%d) = %q, want %q", i, got, w)
			}
		}
		md.Close()
	}
	// Deleting the rest, with duplicates in the list, empties it.
	md = open(t, s, "alice")
	if err := md.Commit(t.Context(), []int{0, 1, 2, 0}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()
	md = open(t, s, "alice")
	defer md.Close()
	if got := uids(md); len(got) != 0 {
		t.Errorf("after deleting all: %q", got)
	}
}

func testCommitNothing(t *testing.T, s store.Store) {
	a := deliver(t, s, "alice", []byte("a\n"))
	md := open(t, s, "alice")
	if err := md.Commit(t.Context(), nil); err != nil {
		t.Fatalf("Commit(nil): %v", err)
	}
	md.Close()
	md = open(t, s, "alice")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, []string{a.UID}) {
		t.Errorf("after empty Commit: %q", got)
	}
}

func testNoUIDReuse(t *testing.T, s store.Store) {
	used := map[string]bool{}
	for round := range 4 {
		for i := range 3 {
			info := deliver(t, s, "alice", fmt.Appendf(nil, "message %d\n", i)) // same bytes every round
			if used[info.UID] {
				t.Errorf("round %d: UID %q reused", round, info.UID)
			}
			used[info.UID] = true
		}
		md := open(t, s, "alice")
		if n := len(md.Messages()); n != 3 {
			t.Fatalf("round %d: %d messages, want 3", round, n)
		}
		if err := md.Commit(t.Context(), []int{0, 1, 2}); err != nil {
			t.Fatalf("Commit: %v", err)
		}
		md.Close()
	}
}

func testCloseWithoutCommit(t *testing.T, s store.Store) {
	var want []string
	for i := range 3 {
		want = append(want, deliver(t, s, "alice", fmt.Appendf(nil, "%d\n", i)).UID)
	}
	md := open(t, s, "alice")
	read(t, md, 0)
	if err := md.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	md = open(t, s, "alice")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, want) {
		t.Errorf("after Close without Commit: %q, want %q", got, want)
	}
}

func testClosed(t *testing.T, s store.Store) {
	ctx := t.Context()
	deliver(t, s, "alice", []byte("a\n"))
	md := open(t, s, "alice")
	if err := md.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := md.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := md.Commit(ctx, []int{0}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Commit after Close: %v, want ErrClosed", err)
	}
	if r, err := md.Open(ctx, 0); !errors.Is(err, store.ErrClosed) {
		if r != nil {
			r.Close()
		}
		t.Errorf("Open after Close: %v, want ErrClosed", err)
	}
	md = open(t, s, "alice")
	defer md.Close()
	if n := len(md.Messages()); n != 1 {
		t.Errorf("Commit after Close deleted something: %d messages", n)
	}
}

func testOpenOutOfRange(t *testing.T, s store.Store) {
	deliver(t, s, "alice", []byte("a\n"))
	md := open(t, s, "alice")
	defer md.Close()
	for _, i := range []int{-1, 1, 1 << 30} {
		if r, err := md.Open(t.Context(), i); err == nil {
			r.Close()
			t.Errorf("Open(%d) succeeded", i)
		}
	}
	if err := md.Commit(t.Context(), []int{0, 1}); err == nil {
		t.Errorf("Commit with index out of range succeeded")
	}
}

func testConcurrentDeliveries(t *testing.T, s store.Store) {
	const n = 50
	infos := make([]store.DeliveryInfo, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			info, err := s.Deliver(t.Context(), "alice", bytes.NewReader(fmt.Appendf(nil, "message %d\n", i)))
			if err != nil {
				t.Errorf("Deliver %d: %v", i, err)
			}
			infos[i] = info
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	byUID := map[string]int{}
	for i, info := range infos {
		checkUID(t, info.UID)
		if j, dup := byUID[info.UID]; dup {
			t.Errorf("deliveries %d and %d both got UID %q", j, i, info.UID)
		}
		byUID[info.UID] = i
	}
	md := open(t, s, "alice")
	defer md.Close()
	msgs := md.Messages()
	if len(msgs) != n {
		t.Fatalf("snapshot has %d messages, want %d", len(msgs), n)
	}
	for k, m := range msgs {
		i, ok := byUID[m.UID]
		if !ok {
			t.Errorf("message %d has unknown UID %q", k, m.UID)
			continue
		}
		delete(byUID, m.UID)
		want := fmt.Sprintf("message %d\n", i)
		if got := string(read(t, md, k)); got != want || m.Size != int64(len(want)+1) {
			t.Errorf("message %d (%s): %q size %d, want %q size %d", k, m.UID, got, m.Size, want, len(want)+1)
		}
	}
}

func testUsersIsolated(t *testing.T, s store.Store) {
	a := deliver(t, s, "alice", []byte("for alice\n"))
	b := deliver(t, s, "bob", []byte("for bob\n"))
	for _, c := range []struct {
		user, uid, body string
	}{{"alice", a.UID, "for alice\n"}, {"bob", b.UID, "for bob\n"}} {
		md := open(t, s, c.user)
		if got := uids(md); !slices.Equal(got, []string{c.uid}) {
			t.Errorf("%s sees %q, want [%q]", c.user, got, c.uid)
		} else if got := string(read(t, md, 0)); got != c.body {
			t.Errorf("%s reads %q", c.user, got)
		}
		md.Close()
	}
}

// testFailedDelivery: a delivery whose input fails leaves nothing behind.
func testFailedDelivery(t *testing.T, s store.Store) {
	ok := deliver(t, s, "alice", []byte("good\n"))
	boom := errors.New("input broke")
	r := io.MultiReader(bytes.NewReader(bytes.Repeat([]byte("partial line\n"), 10000)), &errReader{boom})
	if _, err := s.Deliver(t.Context(), "alice", r); err == nil {
		t.Fatal("Deliver with a failing reader succeeded")
	}
	md := open(t, s, "alice")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, []string{ok.UID}) {
		t.Errorf("after a failed delivery: %q, want [%q]", got, ok.UID)
	}
}

func testCanceledDelivery(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.Deliver(ctx, "alice", bytes.NewReader([]byte("x\n"))); err == nil {
		t.Error("Deliver with a canceled context succeeded")
	}
	deliver(t, s, "alice", []byte("y\n"))
	md := open(t, s, "alice")
	defer md.Close()
	if n := len(md.Messages()); n != 1 {
		t.Errorf("%d messages, want 1 (the canceled delivery must not land)", n)
	}
}

func testBadUser(t *testing.T, s store.Store) {
	for _, u := range []string{"../x", "a/b", "", "..", ".", "a\x00b", "a\nb", "/etc"} {
		if md, err := s.Open(t.Context(), u); !errors.Is(err, store.ErrBadUser) {
			if md != nil {
				md.Close()
			}
			t.Errorf("Open(%q): %v, want ErrBadUser", u, err)
		}
		if _, err := s.Deliver(t.Context(), u, bytes.NewReader([]byte("x\n"))); !errors.Is(err, store.ErrBadUser) {
			t.Errorf("Deliver(%q): %v, want ErrBadUser", u, err)
		}
	}
}

// Helpers.

// testUsage holds a store.Usager to its promise: counts and stored octets
// of what was delivered, a deletion seen at once, an empty answer for a
// user with no maildrop. Stores without Usager skip it.
func testUsage(t *testing.T, s store.Store) {
	u, ok := s.(store.Usager)
	if !ok {
		t.Skip("store does not implement store.Usager")
	}
	usage := func(user string) (int, int64) {
		t.Helper()
		n, b, err := u.Usage(t.Context(), user)
		if err != nil {
			t.Fatalf("Usage(%s): %v", user, err)
		}
		return n, b
	}
	if n, b := usage("nobody-yet"); n != 0 || b != 0 {
		t.Errorf("Usage of a user without a maildrop = %d, %d; want 0, 0", n, b)
	}
	bodies := []string{"a\n", "LF ends\nbody\n", "CRLF ends\r\n\r\nbody\r\n"}
	var total int64
	for _, body := range bodies {
		deliver(t, s, "alice", []byte(body))
		total += int64(len(body))
	}
	deliver(t, s, "bob", []byte("not alice's\n"))
	if n, b := usage("alice"); n != len(bodies) || b != total {
		t.Errorf("Usage(alice) = %d, %d; want %d, %d (the stored octets)", n, b, len(bodies), total)
	}
	// A deletion frees its space at once.
	md := open(t, s, "alice")
	if err := md.Commit(t.Context(), []int{1}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	md.Close()
	if n, b := usage("alice"); n != 2 || b != total-int64(len(bodies[1])) {
		t.Errorf("Usage(alice) after deleting message 2 = %d, %d; want 2, %d", n, b, total-int64(len(bodies[1])))
	}
	if _, _, err := u.Usage(t.Context(), "../alice"); !errors.Is(err, store.ErrBadUser) {
		t.Errorf("Usage(../alice) = %v, want ErrBadUser", err)
	}
}

func deliver(t *testing.T, s store.Store, user string, body []byte) store.DeliveryInfo {
	t.Helper()
	info, err := s.Deliver(t.Context(), user, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Deliver(%s): %v", user, err)
	}
	return info
}

func open(t *testing.T, s store.Store, user string) store.Maildrop {
	t.Helper()
	md, err := s.Open(t.Context(), user)
	if err != nil {
		t.Fatalf("Open(%s): %v", user, err)
	}
	return md
}

func read(t *testing.T, md store.Maildrop, i int) []byte {
	t.Helper()
	r, err := md.Open(t.Context(), i)
	if err != nil {
		t.Fatalf("Open(%d): %v", i, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading message %d: %v", i, err)
	}
	return b
}

func uids(md store.Maildrop) []string {
	var u []string
	for _, m := range md.Messages() {
		u = append(u, m.UID)
	}
	return u
}

// checkUID checks RFC 1939 §7: 1 to 70 characters in 0x21–0x7E.
func checkUID(t *testing.T, uid string) {
	t.Helper()
	if len(uid) < 1 || len(uid) > 70 {
		t.Errorf("UID %q: length %d not in 1..70", uid, len(uid))
	}
	for i := 0; i < len(uid); i++ {
		if c := uid[i]; c < 0x21 || c > 0x7e {
			t.Errorf("UID %q: octet %#x at %d not in 0x21..0x7E", uid, c, i)
			break
		}
	}
}

// refWireSize is the wire size written as plainly as possible: every LF not
// preceded by CR gains one, and a message not ending in LF gets a line end
// (just the LF when it ends in CR).
func refWireSize(b []byte) int64 {
	n := int64(len(b))
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			n++
		}
	}
	switch {
	case len(b) == 0 || b[len(b)-1] == '\n':
	case b[len(b)-1] == '\r':
		n++
	default:
		n += 2
	}
	return n
}

// choppyReader returns its data in pieces of varying odd sizes.
type choppyReader struct {
	data []byte
	k    int
}

func (r *choppyReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	sizes := []int{1, 7, 4093, 32771, 65537, 2}
	n := min(sizes[r.k%len(sizes)], len(p), len(r.data))
	r.k++
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

type errReader struct{ err error }

func (r *errReader) Read([]byte) (int, error) { return 0, r.err }

// expirer returns md as a store.Expirer, failing the test when the
// backend does not implement it (every postie backend must).
func expirer(t *testing.T, md store.Maildrop) store.Expirer {
	t.Helper()
	e, ok := md.(store.Expirer)
	if !ok {
		t.Fatalf("%T does not implement store.Expirer", md)
	}
	return e
}

// t0 is a fixed instant for the EXPIRE records; the store keeps at
// least whole seconds.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// RFC 2449 §6.7: retrieval times recorded at Commit survive the session;
// Expire removes exactly the messages retrieved at or before the cutoff,
// at once and under the lock, leaving the others and the snapshot's
// numbering; a later session no longer sees them.
func testExpire(t *testing.T, s store.Store) {
	for i := range 4 {
		deliver(t, s, "u", []byte(fmt.Sprintf("Subject: %d\n\nbody %d\n", i, i)))
	}
	md := open(t, s, "u")
	all := uids(md)
	e := expirer(t, md)
	if got, err := e.Expire(context.Background(), t0.Add(365*24*time.Hour)); err != nil || len(got) != 0 {
		t.Fatalf("Expire with nothing retrieved = %v, %v; want none", got, err)
	}
	e.MarkRetrieved(0, t0)
	e.MarkRetrieved(2, t0.Add(48*time.Hour))
	e.MarkRetrieved(3, t0.Add(time.Hour))
	if err := md.Commit(context.Background(), []int{3}); err != nil {
		t.Fatal(err)
	}
	md.Close()

	md = open(t, s, "u")
	if got := uids(md); !slices.Equal(got, all[:3]) {
		t.Fatalf("after Commit: %q, want %q", got, all[:3])
	}
	e = expirer(t, md)
	// The cutoff is inclusive: message 0, retrieved at t0, goes; message
	// 2, retrieved two days later, stays; message 1 was never retrieved.
	got, err := e.Expire(context.Background(), t0)
	if err != nil || !slices.Equal(got, []int{0}) {
		t.Fatalf("Expire(t0) = %v, %v; want [0]", got, err)
	}
	if got := uids(md); !slices.Equal(got, all[:3]) {
		t.Errorf("Expire changed the snapshot: %q", got)
	}
	if !bytes.Equal(read(t, md, 1), []byte("Subject: 1\n\nbody 1\n")) {
		t.Errorf("message 1 changed")
	}
	// Commit still works, with the snapshot's indexes.
	if err := md.Commit(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	md.Close()

	md = open(t, s, "u")
	if got := uids(md); !slices.Equal(got, []string{all[1], all[2]}) {
		t.Fatalf("after Expire: %q, want %q", got, []string{all[1], all[2]})
	}
	e = expirer(t, md)
	got, err = e.Expire(context.Background(), t0.Add(48*time.Hour))
	if err != nil || !slices.Equal(got, []int{1}) {
		t.Fatalf("Expire(t0+48h) = %v, %v; want [1]", got, err)
	}
	md.Close()
	md = open(t, s, "u")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, []string{all[1]}) {
		t.Fatalf("after the second Expire: %q, want %q", got, []string{all[1]})
	}
}

// A session that ends without QUIT (Close, no Commit) still records what
// it retrieved.
func testExpireRecordsAtClose(t *testing.T, s store.Store) {
	deliver(t, s, "u", []byte("a\n"))
	deliver(t, s, "u", []byte("b\n"))
	md := open(t, s, "u")
	all := uids(md)
	expirer(t, md).MarkRetrieved(1, t0)
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	md = open(t, s, "u")
	got, err := expirer(t, md).Expire(context.Background(), t0)
	md.Close()
	if err != nil || !slices.Equal(got, []int{1}) {
		t.Fatalf("Expire = %v, %v; want [1]", got, err)
	}
	md = open(t, s, "u")
	defer md.Close()
	if got := uids(md); !slices.Equal(got, all[:1]) {
		t.Fatalf("left %q, want %q", got, all[:1])
	}
}

// A message retrieved again keeps the time of its first retrieval, in
// the same session and in a later one.
func testExpireKeepsFirstRetrieval(t *testing.T, s store.Store) {
	deliver(t, s, "u", []byte("a\n"))
	md := open(t, s, "u")
	e := expirer(t, md)
	e.MarkRetrieved(0, t0)
	e.MarkRetrieved(0, t0.Add(time.Hour))
	md.Close()
	md = open(t, s, "u")
	expirer(t, md).MarkRetrieved(0, t0.Add(2*time.Hour))
	md.Close()
	md = open(t, s, "u")
	defer md.Close()
	got, err := expirer(t, md).Expire(context.Background(), t0)
	if err != nil || !slices.Equal(got, []int{0}) {
		t.Fatalf("Expire(first retrieval) = %v, %v; want [0]", got, err)
	}
}
