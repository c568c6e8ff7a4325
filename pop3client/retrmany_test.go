package pop3client_test

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/postie-mail/postie/pop3client"
)

// RetrMany hands over every message whole and exactly, a refusal as the
// *Error of its -ERR, drains what the callback leaves unread, and leaves
// the connection usable; a callback's error stops it after the replies
// already asked for are read.
func TestRetrMany(t *testing.T) {
	s := startPostie(t, nil)
	for _, m := range corpus {
		s.deliver(t, "user1", m.stored)
	}
	big := "Subject: big\n\n" + strings.Repeat("a line of text\n", 20000)
	s.deliver(t, "user1", big)
	for _, ahead := range []int{0, 1, 3, 10} {
		c := dialLogin(t, s.addr, nil, "user1", "pass1")
		ctx := ctxT(t)
		nums := []int{4, 1, 9, 2, 3}
		var got []string
		err := c.RetrMany(ctx, nums, ahead, func(i int, body io.Reader, err error) error {
			if err != nil {
				var perr *pop3client.Error
				if !errors.As(err, &perr) || perr.Command != "RETR 9" || body != nil {
					t.Errorf("ahead %d: message %d: %v, body %v", ahead, nums[i], err, body)
				}
				got = append(got, "refused")
				return nil
			}
			if nums[i] == 4 { // read in part: the rest is drained
				buf := make([]byte, 10)
				_, err := io.ReadFull(body, buf)
				got = append(got, string(buf))
				return err
			}
			b, err := io.ReadAll(body)
			got = append(got, string(b))
			return err
		})
		if err != nil {
			t.Fatalf("ahead %d: %v", ahead, err)
		}
		want := []string{"Subject: b", corpus[0].wire, "refused", corpus[1].wire, corpus[2].wire}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("ahead %d: got %q, want %q", ahead, got, want)
		}
		if n, _, err := c.Stat(ctx); err != nil || n != 4 {
			t.Fatalf("ahead %d: Stat after RetrMany = %d, %v", ahead, n, err)
		}

		stop := errors.New("stop")
		calls := 0
		err = c.RetrMany(ctx, []int{4, 1, 2, 3}, ahead, func(i int, body io.Reader, err error) error {
			calls++
			return stop
		})
		if err != stop || calls != 1 {
			t.Fatalf("ahead %d: stopped RetrMany = %v after %d calls", ahead, err, calls)
		}
		r, err := c.Retr(ctx, 3)
		if err != nil {
			t.Fatal(err)
		}
		if b, err := io.ReadAll(r); err != nil || string(b) != corpus[2].wire {
			t.Fatalf("ahead %d: RETR after a stopped RetrMany: %q, %v", ahead, b, err)
		}
		if err := c.Quit(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// With PIPELINING announced, RetrMany sends the next RETR before it reads
// the reply to the one before: this server answers RETR 1 only once
// RETR 2 has arrived, and a client waiting for each reply would stall.
func TestRetrManyPipelines(t *testing.T) {
	addr := startFake(t, func(fc *fakeConn) {
		fc.send("+OK ready")
		for {
			l, ok := fc.line()
			if !ok {
				return
			}
			switch l {
			case "CAPA":
				fc.send("+OK", "PIPELINING", ".")
			case "RETR 1":
				if next, ok := fc.line(); !ok || next != "RETR 2" {
					fc.send("-ERR expected RETR 2 pipelined, got " + next)
					continue
				}
				fc.send("+OK", "one", ".", "+OK", "two", ".")
			case "QUIT":
				fc.send("+OK bye")
				return
			default:
				fc.send("-ERR unexpected " + l)
			}
		}
	})
	c := dial(t, addr)
	ctx := ctxT(t)
	var got []string
	err := c.RetrMany(ctx, []int{1, 2}, 1, func(i int, body io.Reader, err error) error {
		if err != nil {
			return err
		}
		b, err := io.ReadAll(body)
		got = append(got, string(b))
		return err
	})
	if err != nil || strings.Join(got, "|") != "one\r\n|two\r\n" {
		t.Fatalf("RetrMany = %q, %v", got, err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}
