package web

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// Sessions are kept in memory, server side; the cookie holds only a
// random id. A visitor who has not logged in gets a session too, for the
// CSRF token of the login form.
const (
	anonymousTTL = 30 * time.Minute // a login form left open
	idleTTL      = 30 * time.Minute // logged in, without a request
	absoluteTTL  = 8 * time.Hour    // logged in, at most
	maxSessions  = 20000
	// secureCookie is the cookie over HTTPS: __Host- makes the browser
	// refuse it unless Secure, Path=/ and no Domain (RFC 6265bis).
	secureCookie = "__Host-postie"
	// plainCookie is the cookie over plain HTTP from loopback, where
	// Secure cookies are not kept by every browser.
	plainCookie = "postie"
)

type session struct {
	id, csrf string
	user     string // "" before login
	admin    string // the admin logged in to /admin; "" for none
	created  time.Time
	seen     time.Time
	notice   string // shown once on the next page
}

type sessions struct {
	mu sync.Mutex
	m  map[string]*session
}

func newSessions() *sessions { return &sessions{m: map[string]*session{}} }

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (s *session) expired(now time.Time) bool {
	if s.user == "" && s.admin == "" {
		return now.Sub(s.seen) > anonymousTTL
	}
	return now.Sub(s.seen) > idleTTL || now.Sub(s.created) > absoluteTTL
}

// get returns the live session of id, or nil.
func (ss *sessions) get(id string, now time.Time) *session {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	s := ss.m[id]
	if s == nil {
		return nil
	}
	if s.expired(now) {
		delete(ss.m, id)
		return nil
	}
	s.seen = now
	return s
}

// create makes a new session for user ("" for a visitor). When the table
// is full, expired sessions go first, then the visitors' oldest, then
// the oldest of all.
func (ss *sessions) create(user string, now time.Time) *session {
	s := &session{id: randomToken(), csrf: randomToken(), user: user, created: now, seen: now}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if len(ss.m) >= maxSessions {
		ss.evict(now)
	}
	ss.m[s.id] = s
	return s
}

func (ss *sessions) evict(now time.Time) {
	for id, s := range ss.m {
		if s.expired(now) {
			delete(ss.m, id)
		}
	}
	for _, visitorsOnly := range []bool{true, false} {
		for len(ss.m) >= maxSessions {
			var oldest *session
			for _, s := range ss.m {
				if (!visitorsOnly || s.user == "" && s.admin == "") && (oldest == nil || s.seen.Before(oldest.seen)) {
					oldest = s
				}
			}
			if oldest == nil {
				break
			}
			delete(ss.m, oldest.id)
		}
	}
}

func (ss *sessions) delete(id string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.m, id)
}

// deleteUser ends every session of user but keep.
func (ss *sessions) deleteUser(user, keep string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for id, s := range ss.m {
		if s.user == user && id != keep {
			delete(ss.m, id)
		}
	}
}

func cookieName(secure bool) string {
	if secure {
		return secureCookie
	}
	return plainCookie
}

// session returns r's session, or nil.
func (h *Handler) session(r *http.Request, secure bool) *session {
	c, err := r.Cookie(cookieName(secure))
	if err != nil || len(c.Value) > 100 {
		return nil
	}
	return h.sessions.get(c.Value, time.Now())
}

func setCookie(w http.ResponseWriter, s *session, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(secure), Value: s.id, Path: "/",
		Secure: secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func clearCookie(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{
		Name: cookieName(secure), Value: "", Path: "/", MaxAge: -1,
		Secure: secure, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// validCSRF compares the form's token with the session's in constant time.
func validCSRF(s *session, token string) bool {
	return s != nil && subtle.ConstantTimeCompare([]byte(s.csrf), []byte(token)) == 1
}
