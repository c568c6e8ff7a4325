package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/postie-mail/postie/store"
)

func TestResolve(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		addr, user string
		kind       Kind // when user is ""
	}{
		{"alice@example.org", "alice", 0},
		{"ALICE@EXAMPLE.ORG", "alice", 0},
		{"Alice@example.net", "alice", 0},       // domains case-insensitive
		{"alice@example.org.", "alice", 0},      // a final dot is the same domain
		{"alice+lists@example.org", "alice", 0}, // subaddress
		{"alice+a+b@example.org", "alice", 0},   // the first delimiter splits
		{"a+b@example.org", "a+b", 0},           // a whole local part that is a user wins
		{"A+B@example.org", "a+b", 0},
		{"alice", "alice", 0}, // bare user name (deliver)
		{"BOB", "bob", 0},
		{"dave@example.org", "", KindNoUser},
		{"+alice@example.org", "", KindNoUser}, // empty user before the delimiter
		{"alice@example.com", "", KindNotLocal},
		{"alice@sub.example.org", "", KindNotLocal},
		{"alice@[127.0.0.1]", "", KindNotLocal},
		{"@example.org", "", KindBadAddress},
		{"", "", KindBadAddress},
		{"ali\x00ce@example.org", "", KindBadAddress},
		{"alice\r\nX: y@example.org", "", KindBadAddress},
		{"../alice", "", KindNoUser},
	} {
		r, err := e.d.Resolve(tc.addr)
		if tc.user != "" {
			if err != nil || r.User != tc.user {
				t.Errorf("Resolve(%q) = %+v, %v; want user %s", tc.addr, r, err, tc.user)
			}
			continue
		}
		var ie *Error
		if !errors.As(err, &ie) || ie.Kind != tc.kind {
			t.Errorf("Resolve(%q) = %+v, %v; want %v", tc.addr, r, err, tc.kind)
		}
	}
	// The address as given goes into Delivered-To; a bare user name
	// becomes the maildrop's name.
	if r, _ := e.d.Resolve("Alice+X@Example.org"); r.Address != "Alice+X@Example.org" {
		t.Errorf("Address = %q", r.Address)
	}
	if r, _ := e.d.Resolve("ALICE"); r.Address != "alice" {
		t.Errorf("Address of a bare name = %q", r.Address)
	}

	// Without local domains, every domain is local; without a delimiter,
	// no subaddressing.
	e = newEnv(t, func(o *Options) { o.LocalDomains, o.RecipientDelimiter = nil, "" })
	if r, err := e.d.Resolve("alice@anything.example"); err != nil || r.User != "alice" {
		t.Errorf("no local domains: %+v, %v", r, err)
	}
	if _, err := e.d.Resolve("alice+x@example.org"); !isKind(err, KindNoUser) {
		t.Errorf("no delimiter: alice+x resolved: %v", err)
	}
	e = newEnv(t, func(o *Options) { o.RecipientDelimiter = "-" })
	if r, err := e.d.Resolve("bob-news@example.org"); err != nil || r.User != "bob" {
		t.Errorf("delimiter '-': %+v, %v", r, err)
	}
}

func isKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}

// TestTraceHeader pins the exact bytes of the fields a delivery adds.
func TestTraceHeader(t *testing.T) {
	e := newEnv(t, nil)
	rcpt := Recipient{Address: "alice+lists@example.org", User: "alice"}
	for _, tc := range []struct {
		name string
		env  Envelope
		eol  string
		dt   bool
		want string
	}{
		{"LMTP", Envelope{From: "bob@example.net", Proto: "LMTP", Helo: "mx.example.org", RemoteIP: "192.0.2.7", ID: "0123456789ABCDEF"}, "\r\n", true,
			"Return-Path: <bob@example.net>\r\n" +
				"Delivered-To: alice+lists@example.org\r\n" +
				"Received: from mx.example.org ([192.0.2.7])\r\n" +
				"\tby mail.example.org (postie) with LMTP id 0123456789ABCDEF\r\n" +
				"\tfor <alice+lists@example.org>; Tue, 14 Jan 2025 10:00:00 +0100\r\n"},
		{"unix socket, null sender", Envelope{Proto: "LMTP", Helo: "mx", ID: "1"}, "\r\n", true,
			"Return-Path: <>\r\n" +
				"Delivered-To: alice+lists@example.org\r\n" +
				"Received: from mx\r\n" +
				"\tby mail.example.org (postie) with LMTP id 1\r\n" +
				"\tfor <alice+lists@example.org>; Tue, 14 Jan 2025 10:00:00 +0100\r\n"},
		{"local LF, MTA wrote Delivered-To", Envelope{From: "bob@example.net", Proto: "local", ID: "2"}, "\n", false,
			"Return-Path: <bob@example.net>\n" +
				"Received: by mail.example.org (postie) with local id 2\n" +
				"\tfor <alice+lists@example.org>; Tue, 14 Jan 2025 10:00:00 +0100\n"},
		{"hostile names", Envelope{From: "x>\r\nBcc: y@z", Proto: "ESMTPS", Helo: "evil\r\nX-Injected: 1 (", RemoteIP: "::1", ID: "3"}, "\r\n", true,
			"Return-Path: <\"x>??Bcc: y\"@z>\r\n" +
				"Delivered-To: alice+lists@example.org\r\n" +
				"Received: from evil??X-Injected:?1?? ([::1])\r\n" +
				"\tby mail.example.org (postie) with ESMTPS id 3\r\n" +
				"\tfor <alice+lists@example.org>; Tue, 14 Jan 2025 10:00:00 +0100\r\n"},
		{"quoted local part", Envelope{From: `john "j" doe@example.net`, Proto: "LMTP", Helo: "mx", ID: "4"}, "\r\n", true,
			"Return-Path: <\"john \\\"j\\\" doe\"@example.net>\r\n" +
				"Delivered-To: alice+lists@example.org\r\n" +
				"Received: from mx\r\n" +
				"\tby mail.example.org (postie) with LMTP id 4\r\n" +
				"\tfor <alice+lists@example.org>; Tue, 14 Jan 2025 10:00:00 +0100\r\n"},
	} {
		got := string(e.d.TraceHeader(tc.env, rcpt, tc.eol, tc.dt, fixedNow))
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// TestReadLocalMessage: what deliver does with the top of its input.
func TestReadLocalMessage(t *testing.T) {
	for _, tc := range []struct {
		name, in, rest, sender string
		hasSender              bool
		eol                    string
		dt                     bool // has Delivered-To: alice@example.org
	}{
		{"plain", "Subject: x\n\nbody\n", "Subject: x\n\nbody\n", "", false, "\n", false},
		{"CRLF", "Subject: x\r\n\r\nbody\r\n", "Subject: x\r\n\r\nbody\r\n", "", false, "\r\n", false},
		{"empty", "", "", "", false, "\n", false},
		{"no newline", "x", "x", "", false, "\n", false},
		{"mbox From_ line", "From bob@example.net  Tue Jan 14 10:00:00 2025\nSubject: x\n\nb\n", "Subject: x\n\nb\n", "bob@example.net", true, "\n", false},
		{"From_ of a bounce", "From MAILER-DAEMON Tue Jan 14 10:00:00 2025\nX: y\n", "X: y\n", "", true, "\n", false},
		{"From: is a header", "From: bob@example.net\n\nb\n", "From: bob@example.net\n\nb\n", "", false, "\n", false},
		{"Postfix local(8) prefix",
			"From bob@example.net  Tue Jan 14 10:00:00 2025\nReturn-Path: <bob@example.net>\n\tcontinued\nX-Original-To: alice@example.org\nDelivered-To: alice@example.org\nReceived: by mx\nSubject: s\n\nReturn-Path: <body>\n",
			"X-Original-To: alice@example.org\nDelivered-To: alice@example.org\nReceived: by mx\nSubject: s\n\nReturn-Path: <body>\n",
			"bob@example.net", true, "\n", true},
		{"Return-Path alone", "return-path: <b@x>\nSubject: s\n", "Subject: s\n", "b@x", true, "\n", false},
		{"Return-Path not at the top stays", "Subject: s\nReturn-Path: <b@x>\n\n", "Subject: s\nReturn-Path: <b@x>\n\n", "", false, "\n", false},
		{"Delivered-To with brackets", "Delivered-To: <ALICE@example.org>\nS: s\n", "Delivered-To: <ALICE@example.org>\nS: s\n", "", false, "\n", true},
	} {
		m, err := ReadLocalMessage(strings.NewReader(tc.in))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		rest, _ := io.ReadAll(m.Message().Body)
		if string(rest) != tc.rest || m.Sender != tc.sender || m.HasSender != tc.hasSender || m.EOL != tc.eol {
			t.Errorf("%s: rest %q sender %q/%v eol %q; want %q %q/%v %q", tc.name, rest, m.Sender, m.HasSender, m.EOL, tc.rest, tc.sender, tc.hasSender, tc.eol)
		}
		if got := m.hasDeliveredTo("alice@example.org"); got != tc.dt {
			t.Errorf("%s: hasDeliveredTo = %v, want %v", tc.name, got, tc.dt)
		}
	}
}

func TestDecideQuota(t *testing.T) {
	for _, tc := range []struct {
		q          Quota
		msgs       int
		used, size int64
		room       int64
		ok         bool
	}{
		{Quota{}, 1e6, 1e12, 1e9, Unlimited, true},
		{Quota{Messages: 3}, 2, 0, 10, Unlimited, true},
		{Quota{Messages: 3}, 3, 0, 10, 0, false},
		{Quota{Bytes: 100}, 0, 0, 100, 100, true}, // exactly full is fine
		{Quota{Bytes: 100}, 0, 1, 100, 99, false},
		{Quota{Bytes: 100}, 5, 60, -1, 40, true}, // unknown size: room to stream into
		{Quota{Bytes: 100}, 5, 100, -1, 0, false},
		{Quota{Bytes: 100}, 5, 150, 1, 0, false}, // over already (a quota lowered)
		{Quota{Bytes: 100, Messages: 2}, 1, 50, 50, 50, true},
		{Quota{Bytes: 100, Messages: 2}, 2, 50, 10, 0, false},
	} {
		room, ok := decideQuota(tc.q, tc.msgs, tc.used, tc.size)
		if room != tc.room || ok != tc.ok {
			t.Errorf("decideQuota(%+v, %d msgs, %d used, size %d) = %d, %v; want %d, %v", tc.q, tc.msgs, tc.used, tc.size, room, ok, tc.room, tc.ok)
		}
	}
}

func TestQuotaFor(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Quota = Quota{Bytes: 1000, Messages: 10}
		o.QuotaOverrides = map[string]Quota{"Bob": {Bytes: 5}, "carol": {}}
	})
	for user, want := range map[string]Quota{"alice": {1000, 10}, "bob": {Bytes: 5}, "Bob": {Bytes: 5}, "carol": {}} {
		if got := e.d.QuotaFor(user); got != want {
			t.Errorf("QuotaFor(%s) = %+v, want %+v", user, got, want)
		}
	}
}

// TestDeliverQuota: the quota counts stored octets (trace fields
// included) and messages, read fresh at each delivery, so a deletion
// frees space at once; a stream of unknown size is cut at the quota and
// leaves nothing behind.
func TestDeliverQuota(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.Quota = Quota{Bytes: 1000, Messages: 3}
		o.QuotaOverrides = map[string]Quota{"bob": {Bytes: 600}}
	})
	ctx := t.Context()
	env := Envelope{From: "x@example.net", Proto: "LMTP", Helo: "mx", ID: "Q"}
	alice, _ := e.d.Resolve("alice@example.org")
	body := "Subject: q\r\n\r\n" + strings.Repeat("x", 100) + "\r\n"
	deliver := func(r Recipient, body string, size int64) error {
		_, err := e.d.Deliver(ctx, env, r, Message{Body: strings.NewReader(body), Size: size, EOL: "\r\n"})
		return err
	}
	for i := range 3 {
		if err := deliver(alice, body, int64(len(body))); err != nil {
			t.Fatalf("delivery %d: %v", i, err)
		}
	}
	err := deliver(alice, body, int64(len(body)))
	if !isKind(err, KindOverQuota) || classify(err).Temporary {
		t.Fatalf("4th message: %v, want a permanent over-quota error", err)
	}
	if r := reply(err, true); r.Code != 552 || r.EnhancedCode != (smtp.EnhancedCode{5, 2, 2}) {
		t.Errorf("reply %+v", r)
	}
	if ExitCode(err) != ExitCantCreat || DSN(err) != "5.2.2" {
		t.Errorf("exit %d dsn %s", ExitCode(err), DSN(err))
	}
	// A POP3 deletion frees quota at once.
	md, err := e.st.Open(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := md.Commit(ctx, []int{0}); err != nil {
		t.Fatal(err)
	}
	md.Close()
	if err := deliver(alice, body, int64(len(body))); err != nil {
		t.Errorf("after a deletion: %v", err)
	}

	// bob: 600 octets. A stream of unknown size over the room is cut and
	// nothing of it stays, in new/ or tmp/.
	bob, _ := e.d.Resolve("bob@example.org")
	big := "Subject: big\r\n\r\n" + strings.Repeat("y", 700) + "\r\n"
	if err := deliver(bob, big, -1); !isKind(err, KindOverQuota) {
		t.Errorf("stream over quota: %v", err)
	}
	assertEmpty(t, e.root, "bob")
	if err := deliver(bob, body, -1); err != nil {
		t.Errorf("small stream: %v", err)
	}
	msgs, used, _ := e.st.Usage(ctx, "bob")
	if msgs != 1 || used <= int64(len(body)) {
		t.Errorf("bob's usage %d, %d: the trace fields count", msgs, used)
	}
}

// assertEmpty fails when user's new/, cur/ or tmp/ holds a file.
func assertEmpty(t *testing.T, root, user string) {
	t.Helper()
	for _, sub := range []string{"new", "cur", "tmp"} {
		if n := countFiles(t, root, user, sub); n != 0 {
			t.Errorf("%s/%s holds %d files, want none", user, sub, n)
		}
	}
}

func TestQuotaTempfail(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Quota = Quota{Messages: 1}; o.QuotaTempfail = true })
	alice, _ := e.d.Resolve("alice")
	m := func() Message { return Message{Body: strings.NewReader("x\n"), Size: 2, EOL: "\n"} }
	if _, err := e.d.Deliver(t.Context(), Envelope{Proto: "local"}, alice, m()); err != nil {
		t.Fatal(err)
	}
	_, err := e.d.Deliver(t.Context(), Envelope{Proto: "local"}, alice, m())
	if r := reply(err, true); r.Code != 452 || r.EnhancedCode != (smtp.EnhancedCode{4, 2, 2}) || ExitCode(err) != ExitTempFail || DSN(err) != "4.2.2" {
		t.Errorf("over quota with QuotaTempfail: %+v, exit %d", r, ExitCode(err))
	}
}

func TestMaxMessageSize(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.MaxMessageSize = 50 })
	alice, _ := e.d.Resolve("alice")
	_, err := e.d.Deliver(t.Context(), Envelope{Proto: "local"}, alice, Message{Body: strings.NewReader(strings.Repeat("z", 51)), Size: -1, EOL: "\n"})
	if !isKind(err, KindTooBig) || ExitCode(err) != ExitUnavailable || DSN(err) != "5.3.4" {
		t.Errorf("51 octets, limit 50: %v (exit %d)", err, ExitCode(err))
	}
	assertEmpty(t, e.root, "alice")
	// The limit is on the message as received, not the trace fields.
	info, err := e.d.Deliver(t.Context(), Envelope{Proto: "local"}, alice, Message{Body: strings.NewReader(strings.Repeat("z", 50)), Size: -1, EOL: "\n"})
	if err != nil {
		t.Errorf("50 octets: %v", err)
	}
	// One refusal, one delivery of the stored size: what metrics report.
	if got, want := e.d.Stats(), (Stats{Delivered: 1, DeliveredBytes: uint64(info.Size), Refused: 1}); got != want || info.Size <= 50 {
		t.Errorf("Stats() = %+v, want %+v", got, want)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
		ec   smtp.EnhancedCode
		exit int
	}{
		{fmt.Errorf("maildir: %w", &pathError{syscall.ENOSPC}), 452, smtp.EnhancedCode{4, 3, 1}, ExitTempFail},
		{fmt.Errorf("maildir: %w", syscall.EDQUOT), 452, smtp.EnhancedCode{4, 3, 1}, ExitTempFail},
		{fmt.Errorf("maildir: %w", syscall.EIO), 451, smtp.EnhancedCode{4, 3, 0}, ExitTempFail},
		{fmt.Errorf("maildir: %w", context.Canceled), 451, smtp.EnhancedCode{4, 3, 2}, ExitTempFail},
		{fmt.Errorf("maildir: %w", store.ErrBadUser), 550, smtp.EnhancedCode{5, 1, 1}, ExitNoUser},
		{newError(KindNotLocal, nil), 550, smtp.EnhancedCode{5, 1, 2}, ExitNoUser},
	} {
		r := reply(tc.err, true)
		if r.Code != tc.code || r.EnhancedCode != tc.ec || ExitCode(tc.err) != tc.exit {
			t.Errorf("%v: %d %v exit %d; want %d %v exit %d", tc.err, r.Code, r.EnhancedCode, ExitCode(tc.err), tc.code, tc.ec, tc.exit)
		}
	}
	if r := reply(newError(KindNotLocal, nil), false); r.Code != 550 || r.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) {
		t.Errorf("SMTP, not local: %+v, want 550 5.7.1", r)
	}
}

type pathError struct{ err error }

func (p *pathError) Error() string { return "write: " + p.err.Error() }
func (p *pathError) Unwrap() error { return p.err }
