package pop3server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
)

// Errors of CheckPassword.
var (
	// ErrLoginFailed: wrong user name or password (which, is not said).
	ErrLoginFailed = errors.New("pop3server: authentication failed")
	// ErrLoginBusy: the address has too many checks in progress.
	ErrLoginBusy = errors.New("pop3server: too many logins in progress from this address")
	// ErrBanned: the address is banned after repeated failures.
	ErrBanned = errors.New("pop3server: address banned after repeated authentication failures")
)

// CheckPassword checks user and password for another front end of the
// same users (the web account page), under exactly the bounds of a POP3
// login from remote: a banned address is refused (ErrBanned); the check
// holds one of the address's Limits.MaxAuthChecksPerIP places, or waits
// for one among Limits.MaxAuthQueuePerIP others, or is refused at once
// (ErrLoginBusy); a failure is counted, logged ("authentication failed",
// with via, the user name typed, never the password) and answered
// ErrLoginFailed only once its failure delay has passed, the delay
// doubling with the recent failures of the address and of the user name,
// whichever front end they came through. A success forgets the failures
// as a POP3 login does; the caller records it with RecordLogin if it is a
// login (and not, say, the current password asked again). Trusted
// networks are not bounded, as for POP3. Any other error is the
// Authenticator's.
func (s *Server) CheckPassword(ctx context.Context, remote netip.Addr, via, user, password string) (canonical string, err error) {
	return s.CheckPasswordWith(ctx, s.opts.Authenticator, remote, via, user, password)
}

// CheckPasswordWith is CheckPassword against another Authenticator (the
// web admin's accounts), under the same bounds and penalties.
func (s *Server) CheckPasswordWith(ctx context.Context, authn Authenticator, remote netip.Addr, via, user, password string) (canonical string, err error) {
	remote = remote.Unmap()
	lim := &s.opts.Limits
	if s.abuse.banned(s, remote, time.Now()) {
		s.stats.refused.Add(1)
		return "", ErrBanned
	}
	trusted := s.trusted(remote)
	release := func() {}
	if !trusted {
		release, err = s.checks.acquire(ctx, addrKey(remote), lim.MaxAuthChecksPerIP, lim.MaxAuthQueuePerIP)
		if errors.Is(err, errChecksBusy) {
			s.stats.authBusy.Add(1)
			return "", ErrLoginBusy
		}
		if err != nil {
			return "", err
		}
	}
	defer release()
	canonical, ok, err := authn.Authenticate(ctx, user, password)
	if err != nil {
		s.stats.authErrors.Add(1)
		s.log.Error("authenticator failed", "via", via, "remote", remote.String(), "err", err)
		return "", fmt.Errorf("pop3server: checking the password: %w", err)
	}
	if !ok {
		s.stats.authFailures.Add(1)
		delay, banned := s.abuse.failure(s, remote, user, trusted, lim, time.Now())
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "authentication failed",
			slog.String("via", via), slog.String("remote", remote.String()),
			slog.String("user", user), slog.String("delay", max(delay, 0).String()))
		if banned {
			s.log.Warn("address banned after repeated authentication failures", "remote", remote.String(), "for", lim.BanDuration.String())
		}
		if delay > 0 {
			s.stats.authDelayed.Add(1)
			sleepCtx(ctx, s.ctx, delay)
		}
		return "", ErrLoginFailed
	}
	s.abuse.success(s, remote, user)
	return canonical, nil
}

// RecordLogin records a login of user (its canonical name) through
// another front end for RecentLogins, and logs it. l.Client is made
// printable and short.
func (s *Server) RecordLogin(user string, l Login) {
	s.logins.add(user, l)
	s.log.Info("login", "via", l.Via, "remote", l.Remote.String(), "user", user)
}

// sleepCtx waits d, or until a or b ends.
func sleepCtx(a, b context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-a.Done():
	case <-b.Done():
	}
}

// Login is one successful login, for RecentLogins.
type Login struct {
	Time   time.Time
	Remote netip.Addr
	// Via is the front end: "pop3", or what CheckPassword was given.
	Via string
	// Client describes the client: the login method and TLS for POP3
	// ("USER, TLS"), what CheckPassword was given otherwise.
	Client string
}

// RecentLogins returns the last logins of user (its canonical name), the
// newest first: at most recentPerUser, kept in memory only (a restart
// forgets them), for recentUsers users at most.
func (s *Server) RecentLogins(user string) []Login {
	return s.logins.get(user)
}

const (
	recentPerUser = 5
	recentUsers   = 10000
	maxClientLen  = 80
)

// recentLogins is the bounded in-memory record of RecentLogins: per user
// a ring of the last few, and when too many users are recorded the one
// whose last login is oldest is forgotten.
type recentLogins struct {
	mu sync.Mutex
	m  map[string][]Login
}

func (r *recentLogins) add(user string, l Login) {
	l.Client = cleanClient(l.Client)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string][]Login{}
	}
	if _, ok := r.m[user]; !ok && len(r.m) >= recentUsers {
		var oldest string
		var at time.Time
		for u, ls := range r.m {
			if oldest == "" || ls[0].Time.Before(at) {
				oldest, at = u, ls[0].Time
			}
		}
		delete(r.m, oldest)
	}
	ls := append([]Login{l}, r.m[user]...)
	if len(ls) > recentPerUser {
		ls = ls[:recentPerUser]
	}
	r.m[user] = ls
}

func (r *recentLogins) get(user string) []Login {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.m[user])
}

// cleanClient keeps a client description printable and short: it comes
// from the client (a User-Agent).
func cleanClient(s string) string {
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if r := []rune(s); len(r) > maxClientLen {
		s = string(r[:maxClientLen]) + "…"
	}
	return s
}

// SessionInfo describes an open POP3 session, for SessionList.
type SessionInfo struct {
	ID     string
	Remote netip.Addr
	User   string // "" before login
	Start  time.Time
}

// SessionList returns the open sessions, oldest first.
func (s *Server) SessionList() []SessionInfo {
	s.mu.Lock()
	out := make([]SessionInfo, 0, len(s.conns))
	for ss := range s.conns {
		si := SessionInfo{ID: ss.id, Remote: ss.conn.remote, Start: ss.start}
		if u := ss.loggedIn.Load(); u != nil {
			si.User = *u
		}
		out = append(out, si)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int { return a.Start.Compare(b.Start) })
	return out
}

// Disconnect closes the connection of the session id, as Close does for
// every session: a session in UPDATE finishes its deletions, any other
// deletes nothing. It reports whether there was such a session.
func (s *Server) Disconnect(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.conns {
		if ss.id == id {
			s.log.Info("session disconnected by an admin", "session", id, "remote", ss.conn.remote.String())
			ss.abort()
			return true
		}
	}
	return false
}
