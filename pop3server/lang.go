package pop3server

import (
	"strconv"
	"strings"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/pop3"
)

// RFC 6856 §3 LANG. A session speaks i-default (RFC 2277: English, meant
// for no one language's speakers) until the client chooses a language.
// From then on the human-readable text of every reply, +OK and -ERR, is
// taken from the language's catalog (RFC 6856 §3.2: "all subsequent +OK
// and -ERR responses"); a text the catalog lacks stays English. The
// catalog is keyed by the English texts: the text* constants below and
// the Text of the pop3.Error values; catalog lists them all. Texts with
// numbers are templates in which {1}, {2} stand for the numbers, so that
// a translation can move them. What is not text stays as it is: the
// status, response codes, the tag LANG chose, a number that starts a
// reply (STAT, LIST n, UIDL n, RETR's octet count, LAST) and the lines
// of multi-line replies. The greeting goes out before a client can send
// LANG, so it is always English. postie ships English only, so its
// catalogs are empty; a translation is a language with texts.

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

// The +OK texts, and the templates of the -ERR texts made from an
// argument.
const (
	textLangListing  = "language listing follows"
	textLangChanged  = "language changed"
	textMechanisms   = "mechanisms follow"
	textSendPass     = "send PASS"
	textLoggedIn     = "logged in, {1} messages ({2} octets)"
	textBeginTLS     = "begin TLS negotiation"
	textBye          = "bye"
	textByeDeleted   = "bye, {1} messages deleted"
	textCapabilities = "capability list follows"
	textUTF8Enabled  = "UTF8 enabled"
	textListing      = "{1} messages ({2} octets)"
	textUIDListing   = "unique-id listing follows"
	textOctets       = "octets" // after RETR's count: "+OK 120 octets"
	textTop          = "top of message follows"
	textDeleted      = "message {1} deleted"
	textRset         = "maildrop has {1} messages ({2} octets)"
	textUsage        = "usage: {1}"             // {1}: the command's syntax
	textNoArgs       = "{1} takes no arguments" // {1}: the command
)

var (
	errLangUnsupported = &pop3.Error{Text: "unsupported language"}
	errLangRange       = &pop3.Error{Text: "invalid language range"}
)

// catalog is every English text a translation has to cover.
var catalog = []string{
	textLangListing, textLangChanged, textMechanisms, textSendPass, textLoggedIn,
	textBeginTLS, textBye, textByeDeleted, textCapabilities, textUTF8Enabled,
	textListing, textUIDListing, textOctets, textTop, textDeleted, textRset,
	textUsage, textNoArgs,
	errUnknownCommand.Text, errLineTooLong.Text, errNotBeforeLogin.Text,
	errAlreadyLoggedIn.Text, errTooManyBad.Text, errTooManyArgs.Text,
	errBadMessageNumber.Text, errNoSuchMessage.Text, errMessageDeleted.Text,
	errBadLineCount.Text, errAutologoutLogin.Text, errAutologoutIdle.Text,
	errInternal.Text, errCleartext.Text, errSendUserFirst.Text, errNoUserName.Text,
	errAPOPDisabled.Text, errBadPassword.Text, errNoSTLS.Text, errAlreadyTLS.Text,
	errLoginTooSoon.Text, errUnknownMechanism.Text, errSASLFailed.Text,
	errSASLTooLong.Text, errSASLLineTooLong.Text, errSASLCanceled.Text,
	errSASLBase64.Text, errSASLBase64IR.Text, errShuttingDown.Text,
	errTooManyConns.Text, errTooManyPerAddr.Text, errBanned.Text,
	errChecksBusy.Text, errMessageGone.Text, errMaildropInUse.Text,
	errLangUnsupported.Text, errLangRange.Text, errNeedsUTF8.Text,
	ops[opAuthenticate].reply.Text, ops[opOpenMaildrop].reply.Text,
	ops[opOpenMessage].reply.Text, ops[opCommit].reply.Text,
}

// text is the session's form of the English reply text en.
func (ss *session) text(en string) string {
	if l := ss.lang; l != nil {
		if t, ok := l.texts[en]; ok {
			return t
		}
	}
	return en
}

// textf is text for a template: {1}, {2}... replaced by args.
func (ss *session) textf(en string, args ...string) string {
	t := ss.text(en)
	for i, a := range args {
		t = strings.Replace(t, "{"+strconv.Itoa(i+1)+"}", a, 1)
	}
	return t
}

// translated reports whether the session's language has texts of its
// own; until then the replies on hot paths skip the catalog.
func (ss *session) translated() bool { return ss.lang != nil && len(ss.lang.texts) > 0 }

// translateErr is the session's form of the English -ERR text en: from
// the catalog, or by the template it was made from (usage, noArgs).
func (ss *session) translateErr(en string) string {
	if t, ok := ss.lang.texts[en]; ok {
		return t
	}
	if syntax, ok := strings.CutPrefix(en, "usage: "); ok {
		return ss.textf(textUsage, syntax)
	}
	if verb, ok := strings.CutSuffix(en, " takes no arguments"); ok {
		return ss.textf(textNoArgs, verb)
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
