package maildir

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/postie-mail/postie/store"
)

// DefaultPathTemplate keeps one Maildir per user directly in Root.
const DefaultPathTemplate = "%u"

// pathTemplate is a parsed Options.PathTemplate: where a user's Maildir
// is, with Dovecot's variables %u (the user name), %n (its part before
// the first '@'), %d (its part after it), %h (the user's home, from
// Options.Home) and %% for '%'. A template that is not absolute is
// relative to Root.
type pathTemplate struct {
	raw     string
	absPath bool // the template starts with '/' or %h
	usesH   bool
}

// parsePathTemplate checks a Maildir path template.
func parsePathTemplate(t string) (pathTemplate, error) {
	p := pathTemplate{raw: t}
	if t == "" {
		return p, errors.New("empty")
	}
	if strings.ContainsAny(t, "\x00\r\n") {
		return p, errors.New("control character")
	}
	vars := 0
	for i := 0; i < len(t); i++ {
		if t[i] != '%' {
			continue
		}
		i++
		if i == len(t) {
			return p, errors.New("'%' at the end")
		}
		switch t[i] {
		case '%':
		case 'u', 'n', 'd':
			vars++
		case 'h':
			if i != 1 {
				return p, errors.New("%h (the home directory) must begin the template")
			}
			p.usesH = true
			vars++
		default:
			return p, fmt.Errorf("%%%c is not a supported variable (%%u, %%n, %%d, %%h)", t[i])
		}
	}
	if vars == 0 {
		return p, errors.New("no variable: every user would share one Maildir")
	}
	for _, comp := range strings.Split(t, "/") {
		if comp == "." || comp == ".." {
			return p, errors.New("'.' and '..' are not allowed")
		}
	}
	p.absPath = p.usesH || strings.HasPrefix(t, "/")
	return p, nil
}

// expand returns the Maildir of user. home is the user's home (used by
// %h only). Every variable must be a usable path component: %u as
// checkUser says, %n and %d non-empty, without '/' and not starting with
// '.', the home absolute; otherwise the error wraps store.ErrBadUser.
func (p pathTemplate) expand(root, user string, home func(string) (string, bool, error)) (string, error) {
	if err := checkUser(user); err != nil {
		return "", err
	}
	local, domain, _ := strings.Cut(user, "@")
	var b strings.Builder
	t := p.raw
	for i := 0; i < len(t); i++ {
		c := t[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		i++
		var v string
		switch t[i] {
		case '%':
			b.WriteByte('%')
			continue
		case 'u':
			v = user
		case 'n':
			v = local
		case 'd':
			v = domain
		case 'h':
			h, ok := "", false
			if home != nil {
				var err error
				if h, ok, err = home(user); err != nil {
					return "", fmt.Errorf("maildir: user %q: home directory for %%h: %w", user, err)
				}
			}
			if !ok || !filepath.IsAbs(h) {
				return "", fmt.Errorf("maildir: user %q: no absolute home directory for %%h: %w", user, store.ErrBadUser)
			}
			b.WriteString(filepath.Clean(h))
			continue
		}
		if v == "" || v[0] == '.' || strings.ContainsAny(v, "/\\") {
			return "", fmt.Errorf("maildir: user %q: %%%c would be %q, not a directory name: %w", user, t[i], v, store.ErrBadUser)
		}
		b.WriteString(v)
	}
	dir := filepath.Clean(b.String())
	if !p.absPath {
		dir = filepath.Join(root, dir)
		if rel, err := filepath.Rel(root, dir); err != nil || rel == "." || rel == ".." || strings.HasPrefix(rel, "../") {
			return "", fmt.Errorf("maildir: user %q: Maildir outside the root: %w", user, store.ErrBadUser)
		}
	}
	if dir == "/" {
		return "", fmt.Errorf("maildir: user %q: Maildir would be /: %w", user, store.ErrBadUser)
	}
	return dir, nil
}

// ExpandPath returns the Maildir of user for a Store with the given root,
// path template and home directories, without making a Store (for
// commands that only report where mail is).
func ExpandPath(root, template, user string, home func(string) (string, bool, error)) (string, error) {
	if template == "" {
		template = DefaultPathTemplate
	}
	p, err := parsePathTemplate(template)
	if err != nil {
		return "", fmt.Errorf("maildir: path template %q: %w", template, err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return "", err
	}
	return p.expand(root, user, home)
}
