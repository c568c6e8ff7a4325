package pop3server

import (
	"strings"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
)

// RFC 6856 §3 LANG. A session speaks i-default (RFC 2277: English, meant
// for no one language's speakers) until the client chooses a language.
// From then on the text of every -ERR reply, and of the +OK that grants
// the choice, is taken from the language's catalog; a text the catalog
// lacks stays English. postie ships English only, so its catalogs are
// empty; a translation is a language with texts.

// A language is one LANG offers.
type language struct {
	tag  string // its language tag (RFC 5646)
	name string // its name in itself, for the language listing (UTF-8)
	// texts translates the English reply texts (pop3.Error.Text and the
	// texts below); a missing one stays English.
	texts map[string]string
}

// defaultLanguages are those every server offers, the preferred one
// first (the answer to "LANG *").
var defaultLanguages = []*language{
	{tag: "en", name: "English"},
	{tag: "i-default", name: "Default language"},
}

// Texts of the LANG replies, translated like the -ERR texts.
const (
	textLangListing = "language listing follows"
	textLangChanged = "language changed"
)

var (
	errLangUnsupported = &pop3.Error{Text: "unsupported language"}
	errLangRange       = &pop3.Error{Text: "invalid language range"}
)

// text is the session's form of the English reply text en.
func (ss *session) text(en string) string {
	if l := ss.lang; l != nil {
		if t, ok := l.texts[en]; ok {
			return t
		}
	}
	return en
}

// RFC 6856 §3 LANG [language-range], in both states.
func (ss *session) cmdLang(c *wire.Command) error {
	if !ss.srv.opts.UTF8 {
		return badCommand(errUnknownCommand)
	}
	switch len(c.Args) {
	case 0:
		ss.reply("+OK " + ss.text(textLangListing) + "\r\n")
		for _, l := range ss.srv.langs {
			ss.reply(l.tag + " " + l.name + "\r\n")
		}
		return ss.ok(".\r\n")
	case 1:
	default:
		return usage("LANG [language-range]")
	}
	rng := c.Args[0]
	if !validRange(rng) {
		return badCommand(errLangRange)
	}
	l := lookupLanguage(ss.srv.langs, rng)
	if l == nil {
		// The language in use stays (RFC 6856 §3).
		return errLangUnsupported
	}
	ss.lang = l
	// "+OK", the tag chosen, then text in that language.
	return ss.ok("+OK " + l.tag + " " + ss.text(textLangChanged) + "\r\n")
}

// validRange reports whether r is a basic language range (RFC 4647 §2.1):
// "*", or 1*8ALPHA *("-" 1*8alphanum).
func validRange(r string) bool {
	if r == "*" {
		return true
	}
	for i, sub := range strings.Split(r, "-") {
		if len(sub) < 1 || len(sub) > 8 {
			return false
		}
		for j := 0; j < len(sub); j++ {
			b := sub[j] | 0x20 // ASCII lower case; digits unchanged
			if !(b >= 'a' && b <= 'z' || i > 0 && sub[j] >= '0' && sub[j] <= '9') {
				return false
			}
		}
	}
	return true
}

// lookupLanguage picks the language for the basic range r by RFC 4647
// §3.4 lookup: the language whose tag equals r (ASCII
// case-insensitively), else r less its last subtag, and so on ("en-GB"
// finds "en"); "*" is the server's preferred language. nil: none.
func lookupLanguage(langs []*language, r string) *language {
	if r == "*" {
		return langs[0]
	}
	for {
		for _, l := range langs {
			if strings.EqualFold(l.tag, r) {
				return l
			}
		}
		i := strings.LastIndexByte(r, '-')
		if i < 0 {
			return nil
		}
		r = r[:i]
		// A single-letter subtag (an extension or private-use
		// introducer) goes with the one after it.
		if j := strings.LastIndexByte(r, '-'); j >= 0 && j == len(r)-2 {
			r = r[:j]
		}
	}
}
