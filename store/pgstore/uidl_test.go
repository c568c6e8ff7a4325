package pgstore

import (
	"io"
	"strings"
	"testing"
)

// TestDeliverUIDL: messages delivered with a UIDL, one and several chunks
// long, are listed under it and read back whole; a UIDL already in the
// maildrop is not taken twice; an invalid one is refused.
func TestDeliverUIDL(t *testing.T) {
	s := newTestStore(t, pg.DB(t), "node-a")
	big := strings.Repeat("x", 3*chunkSize+17) + "\n"
	for _, c := range []struct{ uidl, body string }{
		{"000000016b15e6f0", "Subject: a\n\nsmall\n"},
		{"a/b:c,d%e", big},
		{"", ""},
	} {
		if c.uidl == "" {
			continue
		}
		info, err := s.DeliverUIDL(t.Context(), "u", c.uidl, strings.NewReader(c.body))
		if err != nil || info.UID != c.uidl {
			t.Fatalf("DeliverUIDL(%q) = %+v, %v", c.uidl, info, err)
		}
	}
	again, err := s.DeliverUIDL(t.Context(), "u", "000000016b15e6f0", strings.NewReader("dup\n"))
	if err != nil || again.UID == "000000016b15e6f0" {
		t.Errorf("a UIDL taken twice: %+v %v", again, err)
	}
	for _, bad := range []string{"", "sp ace", strings.Repeat("y", 71)} {
		if _, err := s.DeliverUIDL(t.Context(), "u", bad, strings.NewReader("x\n")); err == nil {
			t.Errorf("UIDL %q accepted", bad)
		}
	}
	md, err := s.Open(t.Context(), "u")
	if err != nil {
		t.Fatal(err)
	}
	defer md.Close()
	msgs := md.Messages()
	if len(msgs) != 3 || msgs[0].UID != "000000016b15e6f0" || msgs[1].UID != "a/b:c,d%e" || msgs[2].UID != again.UID {
		t.Fatalf("listed %+v", msgs)
	}
	r, err := md.Open(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	r.Close()
	if string(b) != big {
		t.Errorf("read back %d octets, delivered %d", len(b), len(big))
	}
}
