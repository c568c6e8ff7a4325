package pop3server

import (
	"net/netip"
	"testing"
	"time"
)

// The delays of failures, one after another, with a login in between:
// the owner's own mistakes are forgiven by their login, someone else's
// guessing is not.
func TestPenaltyUserSurvivesOwnerLogin(t *testing.T) {
	const base = time.Second
	l := &Limits{AuthFailDelay: base, MaxAuthFailDelay: 64 * base}
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	attacker := netip.MustParseAddr("192.0.2.1")
	attacker2 := netip.MustParseAddr("192.0.2.2")
	owner := netip.MustParseAddr("198.51.100.7")
	ownerV6 := netip.MustParseAddr("2001:db8:1:2::10")
	ownerV6b := netip.MustParseAddr("2001:db8:1:2::99") // the same /64

	type step struct {
		fail bool // a failure (else a login)
		addr netip.Addr
		user string
		want time.Duration // the failure's delay
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"guessing from elsewhere survives the owner's login", []step{
			{true, attacker, "alice", base},
			{true, attacker, "Alice", 2 * base},
			{false, owner, "alice", 0},
			// A fresh address: only the user's count can double it.
			{true, attacker2, "alice", 4 * base},
		}},
		{"the owner's own mistakes are forgotten by their login", []step{
			{true, owner, "alice", base},
			{true, owner, "alice", 2 * base},
			{false, owner, "alice", 0},
			{true, attacker, "alice", base},
		}},
		{"an IPv6 /64 is one address", []step{
			{true, ownerV6, "alice", base},
			{false, ownerV6b, "alice", 0},
			{true, attacker, "alice", base},
		}},
		{"the owner's mistakes mixed with someone else's are kept", []step{
			{true, owner, "alice", base},
			{true, attacker, "alice", 2 * base},
			{false, owner, "alice", 0},
			{true, attacker2, "alice", 4 * base},
		}},
		{"other users are not affected", []step{
			{true, attacker, "alice", base},
			{true, attacker2, "bob", base},
			{false, owner, "bob", 0},
			{true, owner, "alice", 2 * base},
		}},
		{"the attacker's address is forgiven only by its own login", []step{
			{true, attacker, "alice", base},
			{true, attacker, "bob", 2 * base},
			{false, owner, "alice", 0},
			{true, attacker, "carol", 4 * base},
			{false, attacker, "carol", 0},
			{true, attacker, "dave", base},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := newPenalties()
			at := now
			for i, s := range tc.steps {
				at = at.Add(time.Second)
				if !s.fail {
					ps.success(s.addr, s.user)
					continue
				}
				d, banned := ps.failure(s.addr, s.user, false, l, at)
				if d != s.want || banned {
					t.Errorf("step %d: failure of %s from %s waits %v (banned %v), want %v", i+1, s.user, s.addr, d, banned, s.want)
				}
			}
		})
	}
}

// Failures are forgotten after penaltyMemory without another.
func TestPenaltyMemory(t *testing.T) {
	l := &Limits{AuthFailDelay: time.Second, MaxAuthFailDelay: time.Minute}
	ps := newPenalties()
	a := netip.MustParseAddr("192.0.2.1")
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ps.failure(a, "alice", false, l, now)
	if d, _ := ps.failure(a, "alice", false, l, now.Add(penaltyMemory)); d != 2*time.Second {
		t.Errorf("second failure within the memory waits %v, want 2s", d)
	}
	if d, _ := ps.failure(a, "alice", false, l, now.Add(2*penaltyMemory+time.Second)); d != time.Second {
		t.Errorf("failure after the memory waits %v, want 1s", d)
	}
}
