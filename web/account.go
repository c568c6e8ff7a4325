package web

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/postie-mail/postie/pop3server"
)

//go:embed static/style.css
var styleCSS []byte

//go:embed pages.html
var pagesHTML string

var pages = template.Must(template.New("pages").Funcs(template.FuncMap{
	"size": humanSize,
	"when": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") },
	"percent": func(n, of int64) string {
		if of <= 0 {
			return ""
		}
		return fmt.Sprintf("%d%%", n*100/of)
	},
	"int64": func(n int) int64 { return int64(n) },
	"days":  func(t, now time.Time) int { return int(t.Sub(now).Hours() / 24) },
}).Parse(pagesHTML))

func serveStyle(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	w.Write(styleCSS)
}

// Password rules for the account page (postie user passwd, run by an
// admin, takes anything but an empty password).
const (
	minPasswordRunes = 10
	maxPasswordBytes = 256
	maxFormBytes     = 8 << 10
)

// page is what the templates are given.
type page struct {
	Title   string
	CSRF    string
	User    string
	Error   string
	Notice  string
	Mailbox *Mailbox
	Logins  []pop3server.Login
	Mail    MailServer
	Address string // for the Apple profile link; "" when unknown
	CanSet  bool
	Action  string     // of the login form: "/account/login" by default
	Admin   *adminPage // the /admin overview
}

func (h *Handler) render(w http.ResponseWriter, status int, name string, p page) {
	if p.Action == "" {
		p.Action = "/account/login"
	}
	var b bytes.Buffer
	if err := pages.ExecuteTemplate(&b, name, p); err != nil {
		h.log.Error("web: page", "page", name, "err", err)
		http.Error(w, "Internal error.", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// refusePlain answers a request for the account pages that came over
// plain HTTP from elsewhere than loopback.
func refusePlain(w http.ResponseWriter) {
	http.Error(w, "The account page is served over HTTPS only.", http.StatusForbidden)
}

// visit starts a GET of a page: it refuses plain HTTP from elsewhere than
// loopback (ok false, the answer written), marks the answer not to be
// stored, and returns the visitor's session, a new one without a user
// (its cookie set) for a visitor who has none.
func (h *Handler) visit(w http.ResponseWriter, r *http.Request) (s *session, ok bool) {
	secure, ok := h.private(r)
	if !ok {
		refusePlain(w)
		return nil, false
	}
	w.Header().Set("Cache-Control", "no-store")
	s = h.session(r, secure)
	if s == nil {
		s = h.sessions.create("", time.Now())
		setCookie(w, s, secure)
	}
	return s, true
}

// account is GET /account: the login form, or the account's page.
func (h *Handler) account(w http.ResponseWriter, r *http.Request) {
	s, ok := h.visit(w, r)
	if !ok {
		return
	}
	if s.user == "" {
		h.render(w, http.StatusOK, "login", page{Title: "Log in", CSRF: s.csrf})
		return
	}
	h.showAccount(w, r, s, http.StatusOK, "")
}

func (h *Handler) showAccount(w http.ResponseWriter, r *http.Request, s *session, status int, errMsg string) {
	p := page{Title: "Your mailbox", CSRF: s.csrf, User: s.user, Error: errMsg, Notice: s.notice,
		Mail: h.opts.Mail, Logins: h.opts.Logins.RecentLogins(s.user), CanSet: h.opts.Passwords != nil}
	s.notice = ""
	if h.opts.Mailbox != nil {
		mb, err := h.opts.Mailbox(r.Context(), s.user)
		if err != nil {
			h.log.Error("web: mailbox figures", "user", s.user, "err", err)
		} else {
			p.Mailbox = &mb
		}
	}
	if d := h.opts.Mail.Domains; len(d) > 0 {
		p.Address = s.user + "@" + strings.TrimSuffix(d[0], ".")
	}
	h.render(w, status, "account", p)
}

// form checks what every POST of the account pages needs: HTTPS (or
// loopback), a form of bounded size, a session, and the session's CSRF
// token (the Origin and Sec-Fetch-Site checks come before, from
// http.CrossOriginProtection). It answers the request itself when one
// fails.
func (h *Handler) form(w http.ResponseWriter, r *http.Request) (s *session, secure bool, ok bool) {
	secure, ok = h.private(r)
	if !ok {
		refusePlain(w)
		return nil, false, false
	}
	w.Header().Set("Cache-Control", "no-store")
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "Bad form.", http.StatusBadRequest)
		return nil, false, false
	}
	s = h.session(r, secure)
	if !validCSRF(s, r.PostFormValue("csrf")) {
		h.log.Warn("web: form without a valid session token refused", "remote", h.clientAddr(r).String(), "path", r.URL.Path)
		http.Error(w, "This form has expired or did not come from this site. Reload the page and try again.", http.StatusForbidden)
		return nil, false, false
	}
	return s, secure, true
}

// loginName is the user name to check for what was typed: an address of
// one of the domains served stands for its local part, the user's name.
func (h *Handler) loginName(typed string) string {
	typed = strings.TrimSpace(typed)
	if i := strings.LastIndexByte(typed, '@'); i > 0 && len(h.opts.Mail.Domains) > 0 && h.servesDomain(strings.ToLower(typed[i+1:])) {
		return typed[:i]
	}
	return typed
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	s, secure, ok := h.form(w, r)
	if !ok {
		return
	}
	user := h.loginName(r.PostFormValue("user"))
	password := r.PostFormValue("password")
	fail := func(status int, msg string) {
		h.render(w, status, "login", page{Title: "Log in", CSRF: s.csrf, Error: msg})
	}
	if user == "" || password == "" || len(user) > 255 || len(password) > 1024 {
		fail(http.StatusUnauthorized, "Wrong user name or password.")
		return
	}
	client := h.clientAddr(r)
	canonical, err := h.opts.Logins.CheckPassword(r.Context(), client, "web", user, password)
	if err != nil {
		status, msg := h.checkError(err)
		fail(status, msg)
		return
	}
	h.opts.Logins.RecordLogin(canonical, pop3server.Login{Time: time.Now(), Remote: client, Via: "web", Client: browserName(r.UserAgent())})
	// A new session, with a new id and token, for the logged-in user:
	// whatever id a visitor had (perhaps planted) is worth nothing now.
	h.sessions.delete(s.id)
	ns := h.sessions.create(canonical, time.Now())
	setCookie(w, ns, secure)
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// checkError turns an error of CheckPassword into a status and a message
// that says nothing of whether the user exists.
func (h *Handler) checkError(err error) (int, string) {
	switch {
	case errors.Is(err, pop3server.ErrLoginFailed):
		return http.StatusUnauthorized, "Wrong user name or password."
	case errors.Is(err, pop3server.ErrLoginBusy), errors.Is(err, pop3server.ErrBanned):
		return http.StatusTooManyRequests, "Too many failed logins from your address. Try again later."
	}
	return http.StatusServiceUnavailable, "Logins are not possible right now. Try again later."
}

func (h *Handler) password(w http.ResponseWriter, r *http.Request) {
	s, secure, ok := h.form(w, r)
	if !ok {
		return
	}
	if s.user == "" {
		http.Redirect(w, r, "/account", http.StatusSeeOther)
		return
	}
	if h.opts.Passwords == nil {
		http.Error(w, "Passwords cannot be changed here.", http.StatusForbidden)
		return
	}
	current, next, again := r.PostFormValue("current"), r.PostFormValue("new"), r.PostFormValue("again")
	if msg := checkNewPassword(current, next, again); msg != "" {
		h.showAccount(w, r, s, http.StatusUnprocessableEntity, msg)
		return
	}
	if _, err := h.opts.Logins.CheckPassword(r.Context(), h.clientAddr(r), "web", s.user, current); err != nil {
		status, msg := h.checkError(err)
		if status == http.StatusUnauthorized {
			msg = "Your current password is wrong."
		}
		h.showAccount(w, r, s, status, msg)
		return
	}
	if err := h.opts.Passwords.SetPassword(s.user, next, h.opts.Scheme); err != nil {
		h.log.Error("web: changing a password failed", "user", s.user, "err", err)
		h.showAccount(w, r, s, http.StatusInternalServerError, "The password could not be changed. Try again later.")
		return
	}
	h.log.Info("password changed", "via", "web", "user", s.user, "remote", h.clientAddr(r).String())
	// Every session of the user ends; this browser gets a new one.
	h.sessions.deleteUser(s.user, "")
	ns := h.sessions.create(s.user, time.Now())
	ns.notice = "Your password has been changed. Your mail programs need the new one from now on."
	setCookie(w, ns, secure)
	http.Redirect(w, r, "/account", http.StatusSeeOther)
}

// checkNewPassword returns what is wrong with a new password, or "".
func checkNewPassword(current, next, again string) string {
	switch {
	case current == "":
		return "Enter your current password."
	case next != again:
		return "The two new passwords differ."
	case !utf8.ValidString(next) || strings.ContainsFunc(next, unicode.IsControl):
		return "The new password must not contain control characters."
	case utf8.RuneCountInString(next) < minPasswordRunes:
		return fmt.Sprintf("The new password must have at least %d characters.", minPasswordRunes)
	case len(next) > maxPasswordBytes:
		return fmt.Sprintf("The new password must have at most %d characters.", maxPasswordBytes)
	case next == current:
		return "The new password is the current one."
	}
	return ""
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	s, secure, ok := h.form(w, r)
	if !ok {
		return
	}
	h.sessions.delete(s.id)
	clearCookie(w, secure)
	to := "/account"
	if r.URL.Path == "/admin/logout" {
		to = "/admin"
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// humanSize writes octets in binary units.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// browserName makes a User-Agent short enough to show among the last
// logins: "Firefox on Android". Unknown ones are cut to their first word.
func browserName(ua string) string {
	name := ""
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"Firefox/", "Firefox"}, {"HeadlessChrome/", "Headless Chrome"},
		{"Chromium/", "Chromium"}, {"Chrome/", "Chrome"}, {"Safari/", "Safari"},
	} {
		if strings.Contains(ua, b.token) {
			name = b.name
			break
		}
	}
	if name == "" {
		name, _, _ = strings.Cut(ua, " ")
		return name
	}
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			return name + " on " + o.name
		}
	}
	return name
}
