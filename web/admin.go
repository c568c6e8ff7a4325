package web

import (
	"context"
	"net/http"
	"time"

	"github.com/postie-mail/postie/pop3server"
)

// Admin configures /admin, the operators' read-only overview; the one
// thing it changes is "disconnect session". Its accounts are not mail
// users.
type Admin struct {
	// Accounts checks the admins' passwords (through the same
	// per-address bounds and delays as every login).
	Accounts pop3server.Authenticator
	// Overview gathers what the page shows.
	Overview func(ctx context.Context) (Overview, error)
	// Disconnect closes a POP3 session by id; false when there is none.
	Disconnect func(id string) bool
}

// Overview is what /admin shows.
type Overview struct {
	Users        []UserUse
	Sessions     []pop3server.SessionInfo
	Deliveries   []Delivery
	Certificates []Certificate
}

// UserUse is a user's mailbox against its quota.
type UserUse struct {
	Name string
	Mailbox
}

// Delivery is one recent delivery attempt; Result is "ok" or why not.
type Delivery struct {
	Time   time.Time
	Proto  string
	User   string
	Size   int64
	Result string
}

// Certificate is one certificate in use and when it expires.
type Certificate struct {
	File     string
	Names    string
	NotAfter time.Time
}

func (h *Handler) adminRoutes() {
	if h.opts.Admin == nil {
		return
	}
	m := h.mux
	m.HandleFunc("GET /admin", h.admin)
	m.Handle("POST /admin/login", h.cop.Handler(http.HandlerFunc(h.adminLogin)))
	m.Handle("POST /admin/disconnect", h.cop.Handler(http.HandlerFunc(h.adminDisconnect)))
	m.Handle("POST /admin/logout", h.cop.Handler(http.HandlerFunc(h.logout)))
}

// lookuper is what Admin.Accounts may offer besides Authenticate
// (auth.DB does): with it, the session of an admin who is one no longer
// (deleted from the file, which was reloaded) ends at its next request.
type lookuper interface {
	LookupContext(ctx context.Context, user string) (canonical string, ok bool, err error)
}

// stillAdmin reports whether s is logged in as an admin who still is
// one; a session whose admin is gone is logged out.
func (h *Handler) stillAdmin(r *http.Request, s *session) bool {
	if s.admin == "" {
		return false
	}
	l, ok := h.opts.Admin.Accounts.(lookuper)
	if !ok {
		return true
	}
	name, found, err := l.LookupContext(r.Context(), s.admin)
	if err != nil {
		h.log.Error("web: looking up an admin", "admin", s.admin, "err", err)
		return false
	}
	if found && name == s.admin {
		return true
	}
	h.log.Info("web: admin session ended: no longer an admin", "admin", s.admin, "remote", h.clientAddr(r).String())
	s.admin = ""
	return false
}

type adminPage struct {
	Overview
	Now time.Time
}

func (h *Handler) admin(w http.ResponseWriter, r *http.Request) {
	s, ok := h.visit(w, r)
	if !ok {
		return
	}
	if !h.stillAdmin(r, s) {
		h.render(w, http.StatusOK, "login", page{Title: "Admin log in", CSRF: s.csrf, Action: "/admin/login"})
		return
	}
	h.showAdmin(w, r, s)
}

func (h *Handler) showAdmin(w http.ResponseWriter, r *http.Request, s *session) {
	p := page{Title: "postie admin", CSRF: s.csrf, User: s.admin, Notice: s.notice}
	s.notice = ""
	ov, err := h.opts.Admin.Overview(r.Context())
	if err != nil {
		h.log.Error("web: admin overview", "err", err)
		p.Error = "Some figures are not available: " + "see the server log."
	}
	p.Admin = &adminPage{Overview: ov, Now: time.Now()}
	h.render(w, http.StatusOK, "admin", p)
}

func (h *Handler) adminLogin(w http.ResponseWriter, r *http.Request) {
	s, secure, ok := h.form(w, r)
	if !ok {
		return
	}
	name, password := r.PostFormValue("user"), r.PostFormValue("password")
	fail := func(status int, msg string) {
		h.render(w, status, "login", page{Title: "Admin log in", CSRF: s.csrf, Action: "/admin/login", Error: msg})
	}
	if name == "" || password == "" || len(name) > 255 || len(password) > 1024 {
		fail(http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	canonical, err := h.opts.Logins.CheckPasswordWith(r.Context(), h.opts.Admin.Accounts, h.clientAddr(r), "web-admin", name, password)
	if err != nil {
		status, msg := h.checkError(err)
		fail(status, msg)
		return
	}
	h.log.Info("admin login", "admin", canonical, "remote", h.clientAddr(r).String())
	h.sessions.delete(s.id)
	ns := h.sessions.create("", time.Now())
	ns.admin = canonical
	setCookie(w, ns, secure)
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}

func (h *Handler) adminDisconnect(w http.ResponseWriter, r *http.Request) {
	s, _, ok := h.form(w, r)
	if !ok {
		return
	}
	if !h.stillAdmin(r, s) {
		http.Redirect(w, r, "/admin", http.StatusSeeOther)
		return
	}
	id := r.PostFormValue("session")
	if len(id) > 20 || !h.opts.Admin.Disconnect(id) {
		s.notice = "That session had ended already."
	} else {
		h.log.Info("admin disconnected a session", "admin", s.admin, "session", id)
		s.notice = "Session " + id + " disconnected."
	}
	http.Redirect(w, r, "/admin", http.StatusSeeOther)
}
