// Package maildir is postie's default maildrop backend: one Maildir per
// user, shared safely with Postfix, Dovecot, mutt and every other Maildir
// tool (Maildir as described at https://cr.yp.to/proto/maildir.html).
//
// # On-disk layout
//
// For a user U and Options.Root R, the maildrop is the directory R/U:
//
//	R/U/tmp/            deliveries being written (never read by Open)
//	R/U/new/            delivered messages, not yet seen by an IMAP client
//	R/U/cur/            messages another program has seen; names carry ":2,FLAGS"
//	R/U/postie.lock     flock(2)ed exclusively while a POP3 session is open (never removed)
//	R/U/postie-sizes    wire sizes of messages whose names do not carry one
//	R/U/postie-index    the last snapshot of a maildrop of 2,000 messages or more
//	R/U/postie-update   the messages an UPDATE is removing (only while it
//	                    runs, or after a crash until the next Open ends it)
//	R/U/postie-uidls    the UIDLs answered in a maildrop taken over from
//	                    Dovecot or Courier (see "Taking over from Dovecot")
//
// Everything else in R/U (dovecot-uidlist, dovecot.index*,
// courierpop3dsizelist, courierimapuiddb, maildirfolder,
// subfolders whose names start with '.') belongs to other programs and is
// ignored. Directories are created with mode 0700, files with 0600.
//
// A message delivered by postie is written to tmp/ under a unique name,
//
//	<unix secs>.M<usec>P<pid>Q<counter>R<random hex>.<hostname>
//
// fsynced, and renamed to new/<unique>,S=<file size>,W=<wire size>,D=<dots>,
// after which new/ is fsynced. D= counts the lines that begin with '.'
// (those byte-stuffing doubles) and, when there are at most four, gives
// the offset of each one's '.': "D=0", "D=2.120.9000", "D=37". With S=
// equal to W= (CRLF line ends throughout), such a message can be sent
// from its file as it is, the dots added at those offsets
// (store.WireFile). Names without D= (other programs, older postie) are
// read as before; renaming a message for its true sizes drops its D=; a
// name too long for it goes without. The hostname has '/' written as \057, ':' as \072,
// ',' as \054 and any other byte outside 0x21–0x7E in the same octal form,
// and is cut to 128 octets.
// Other programs may later move it to cur/ and append ":2,FLAGS"; postie
// follows the message by its base name (the part before ':').
//
// A delivery killed before its rename leaves its file in tmp/, where no
// session looks. Open and Deliver remove files in tmp/ last modified more
// than 36 hours ago (the age the Maildir description gives), looking at a
// given Maildir at most once an hour per Store.
//
// # Snapshot cache
//
// A Store remembers the last snapshot of each maildrop (up to
// Options.SnapshotCache messages in all) with the stamps of new/ and cur/
// (device, inode, mtime, ctime) seen just before they were read. A login
// whose stat(2) of the two directories finds the same stamps uses it
// instead of reading them, provided the reading began at least two seconds
// after the stamps' times: a directory timestamp has one-second
// granularity on some file systems, and a change within the same tick
// would not move it. Anything another program does to new/ or cur/
// (delivery, deletion, rename, flags) moves a stamp, so the next login
// sees it, exactly as without the cache.
//
// For maildrops of 2,000 messages or more, the snapshot is also kept on
// disk, in postie-index, with the same stamps and under the same rules, so
// that the first login after a restart reads one file instead of listing,
// parsing and sorting the directories (about a sixth of the time for
// 100,000 messages). It carries a checksum: a damaged one is ignored and
// rewritten. Deleting it is always safe.
//
// # Usage
//
// Usage (store.Usager, for quotas) counts the messages in new/ and cur/
// and adds up their stored sizes from the S= fields of their names; for a
// name without one it takes the size from postie-sizes, else from stat(2).
// It opens no message.
//
// # Snapshot, UIDL and sizes
//
// Open reads the names in new/ and cur/ once; it stats no message and reads
// none whose wire size is known. The UIDL (RFC 1939 §7) is the base name
// with the ",KEY=value" fields (S=, W=, and whatever else Dovecot appends)
// removed, when that is 1–70 octets in 0x21–0x7E; otherwise it is "X"
// followed by 40 hex digits of the SHA-256 of that string. The wire size
// (RFC 1939 §11: CRLF line ends, a final line end, before byte-stuffing) is
// the W= field; for messages delivered by other programs it is computed once
// by reading the file and remembered in postie-sizes, one line per message:
//
//	<unique name> <wire size> <file size>
//
// after a "postie-sizes 1" header line. The file is rewritten atomically
// (temporary file, fsync, rename) only by the session holding the lock, and
// entries of messages that no longer exist are dropped then. A damaged file
// is ignored and rebuilt.
//
// Sizes in a name that cannot both be right (W= below S=, or above 2×S=+2)
// are not believed: the message is measured. A message whose file turns
// out to differ from its listed sizes (rewritten by another program, or a
// wrong name) is refused in the session that finds out, never sent short,
// and its true sizes are recorded for the next one: in its name (renamed
// with the true ,S= and ,W=, as Dovecot does; the UIDL stays) or in
// postie-sizes.
//
// # Hostile Maildirs
//
// A maildrop's user may write in it (mutt, a mailbox_command delivery)
// while postie runs as root, so every name in R/U is treated as hostile.
// R (Options.Root, the administrator's) may be or lie below a symbolic
// link; R/U, tmp/, new/ and cur/ may not: each is opened with
// O_NOFOLLOW|O_DIRECTORY, and everything else is done relative to those
// descriptors (openat, unlinkat, renameat, fstatat without following).
// A POP3 session keeps none of them open between commands (an idle
// session holds its socket and postie.lock only): each command that
// needs the Maildir opens R/U again, refused unless it is the directory
// the session locked (same device and inode), and the folders it needs
// relative to it; a folder replaced by a symbolic link meanwhile makes
// that command fail, and nothing is read or removed through it.
// A Maildir or folder that is a symbolic link is refused (Open, Deliver
// and Usage fail with an error saying so; a tmp/ that is one is not
// cleaned). A message or one of postie's files is opened with
// O_NOFOLLOW|O_NONBLOCK and used only if it is a regular file: a symbolic
// link, FIFO or device in a message's place is not listed, or, if put
// there during a session, is a message gone; in place of postie-sizes,
// postie-index or postie-update it is ignored as damage, and in place of
// postie.lock it makes Open fail. postie's files are read up to a bound
// (postie-sizes: what the maildrop's messages could need; postie-update:
// 64 MiB; postie-index: see "Snapshot cache"), and written afresh under a temporary
// name, never through a link.
//
// # Taking over from Dovecot
//
// With Options.DovecotUIDLFormat set (Dovecot's pop3_uidl_format), a
// message listed in the maildrop's dovecot-uidlist (version 3) is answered
// the UIDL Dovecot's POP3 server gave it: its P field (pop3_save_uidl) if
// it has one, else the format expanded with its IMAP UID, the file's
// UIDVALIDITY, its GUID and its file name (dovecot_uidlist.go). A message
// Dovecot never listed keeps postie's own UIDL. What was answered is
// recorded in postie-uidls (dovecot_uidls.go), and a message keeps it for
// as long as it exists, whatever happens to dovecot-uidlist later; the
// record is rebuilt from dovecot-uidlist when lost. dovecot-uidlist is
// read in the Maildir, or, with Options.DovecotControlPath set, in .INBOX/
// of the user's control directory, as Dovecot 2.3 keeps it there (neither
// opened through a symbolic link in its last component; a missing one is
// a uidlist missing), only when a
// message has no recorded UIDL, and as postie's own
// files are (a regular file, never through a symbolic link, at most 64
// MiB), then parsed strictly; one postie cannot use is logged, and the
// messages not yet recorded are then answered postie's own UIDLs without
// recording them. Sizes stay postie's: the octets RETR sends, which is
// Dovecot's W field for every message that ends with a line end (Dovecot
// lists one that does not at 2 octets less than it sends). postie writes
// none of Dovecot's files.
//
// # Taking over from Courier
//
// With Options.CourierUIDLs set, a message listed in the maildrop's
// courierpop3dsizelist (list version 2 or 3, courier-imap 2.1 and later)
// is answered the UIDL Courier's POP3 server gave it, "UID<n>-<v>" from
// its record (courier_sizelist.go); a message Courier never listed keeps
// postie's own UIDL. It is recorded in postie-uidls exactly as Dovecot's
// are, and the file is read under the same rules (at most 64 MiB). Its
// header is parsed strictly (one postie cannot use is logged, as a bad
// dovecot-uidlist is); a record line postie cannot read exactly is
// skipped, as Courier skips those it cannot read, and its message gets
// postie's own UIDL. When both servers' files are there, dovecot-uidlist
// is asked first. Courier's IMAP UIDs (courierimapuiddb) have nothing
// to do with its POP3 UIDLs and are not read; postie writes none of
// Courier's files.
//
// A message delivered with a UIDL of the caller's choosing (DeliverUIDL,
// for postie migrate pop3) carries it in its name, in a ",U=" field after
// the unique part (uidl.go). UIDLs are kept unique whatever names say.
package maildir

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/postie-mail/postie/internal/maildirname"
	"github.com/postie-mail/postie/store"
)

// Options configure a Store.
type Options struct {
	// Root holds one Maildir per user (Root/U). Required; it must exist.
	Root string
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Hostname goes into the unique names of deliveries; default
	// os.Hostname().
	Hostname string
	// Now is the clock of the delivery times in unique names; default
	// time.Now. Names stay unique whatever it does (steps back, stands
	// still, jumps): tests set one that does.
	Now func() time.Time
	// SnapshotCache bounds the snapshot cache: the most messages kept in
	// the cached snapshots of all maildrops together (see "Snapshot
	// cache" above). 0 means DefaultSnapshotCache; negative disables the
	// cache, so that every login reads new/ and cur/.
	SnapshotCache int
	// DovecotUIDLFormat is the pop3_uidl_format of the Dovecot whose
	// Maildirs these are (see "Taking over from Dovecot"); "" answers
	// postie's own UIDLs and never reads Dovecot's files.
	DovecotUIDLFormat string
	// CourierUIDLs answers the UIDLs Courier's POP3 server gave, from
	// courierpop3dsizelist (see "Taking over from Courier"); false never
	// reads Courier's files.
	CourierUIDLs bool
	// DovecotControlPath is where the Dovecot whose Maildirs these are
	// kept each user's dovecot-uidlist, when not in the Maildir (the
	// CONTROL= of its mail_location): a template with the variables of
	// PathTemplate, relative to Root unless absolute. "" reads
	// dovecot-uidlist in the Maildir.
	DovecotControlPath string
	// PathTemplate says where a user's Maildir is, with Dovecot's
	// variables %u, %n, %d and %h (see path.go), relative to Root unless
	// absolute; "" means DefaultPathTemplate (Root/U).
	PathTemplate string
	// Home returns a user's home directory, for %h; required when the
	// template uses %h. Its error (the user database not answering)
	// fails the operation as a temporary error, not as ErrBadUser.
	Home func(user string) (home string, ok bool, err error)
}

// maxHost bounds the host name part of unique names.
const maxHost = 128

// Store is a directory of Maildirs, one per user.
type Store struct {
	root string
	log  *slog.Logger
	host string // escaped for use in file names

	mu       sync.Mutex // guards the fields below (unique names)
	counter  uint64
	lastSec  int64
	lastUsec int64

	// wrapTmp, when set (tests only), wraps the writer of a delivery's
	// temporary file.
	wrapTmp func(io.Writer) io.Writer
	// noJournal, when set (benchmarks only), makes Commit remove
	// messages without the update journal.
	noJournal bool

	// now is the clock of the tmp/ cleanup and the snapshot cache
	// (time.Now; tests change it).
	now func() time.Time
	// nameNow is the clock of unique names (Options.Now).
	nameNow func() time.Time

	cleanMu sync.Mutex           // guards cleaned
	cleaned map[string]time.Time // Maildir → when its tmp/ was last cleaned

	path pathTemplate                       // Options.PathTemplate
	home func(string) (string, bool, error) // Options.Home

	// dovecot is the parsed Options.DovecotUIDLFormat; nil when unset.
	dovecot *UIDLFormat
	// courier is Options.CourierUIDLs.
	courier bool
	// control is the parsed Options.DovecotControlPath; its raw is ""
	// when unset.
	control pathTemplate

	// snaps caches the last snapshot of each maildrop; nil when disabled.
	snaps *snapCache
	// statDir stats folder sub of a Maildir for the snapshot cache
	// (statDirAt; tests change it to imitate coarse timestamps).
	statDir func(d *mdir, sub string) (dirStamp, error)
}

var _ store.Store = (*Store)(nil)

// New returns a Store rooted at opts.Root.
func New(opts Options) (*Store, error) {
	if opts.Root == "" {
		return nil, errors.New("maildir: Options.Root is required")
	}
	root, err := filepath.Abs(opts.Root)
	if err != nil {
		return nil, fmt.Errorf("maildir: root: %w", err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("maildir: root: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("maildir: root %s is not a directory", root)
	}
	s := &Store{root: root, log: opts.Logger, host: opts.Hostname, now: time.Now, nameNow: opts.Now, cleaned: map[string]time.Time{}, statDir: statSub}
	if s.nameNow == nil {
		s.nameNow = time.Now
	}
	if opts.PathTemplate == "" {
		opts.PathTemplate = DefaultPathTemplate
	}
	if s.path, err = parsePathTemplate(opts.PathTemplate); err != nil {
		return nil, fmt.Errorf("maildir: path template %q: %w", opts.PathTemplate, err)
	}
	if s.path.usesH && opts.Home == nil {
		return nil, fmt.Errorf("maildir: path template %q uses %%h but no home directories are known", opts.PathTemplate)
	}
	s.home = opts.Home
	if opts.DovecotUIDLFormat != "" {
		f, err := ParseUIDLFormat(opts.DovecotUIDLFormat)
		if err != nil {
			return nil, fmt.Errorf("maildir: Dovecot UIDL format %q: %w", opts.DovecotUIDLFormat, err)
		}
		s.dovecot = &f
	}
	s.courier = opts.CourierUIDLs
	if opts.DovecotControlPath != "" {
		if s.control, err = parsePathTemplate(opts.DovecotControlPath); err != nil {
			return nil, fmt.Errorf("maildir: Dovecot control path %q: %w", opts.DovecotControlPath, err)
		}
		if s.control.usesH && opts.Home == nil {
			return nil, fmt.Errorf("maildir: Dovecot control path %q uses %%h but no home directories are known", opts.DovecotControlPath)
		}
	}
	switch {
	case opts.SnapshotCache == 0:
		s.snaps = newSnapCache(DefaultSnapshotCache)
	case opts.SnapshotCache > 0:
		s.snaps = newSnapCache(opts.SnapshotCache)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.host == "" {
		if s.host, err = os.Hostname(); err != nil || s.host == "" {
			s.host = "localhost"
		}
	}
	// Keep names well under the 255 octets a file name may have; time,
	// pid, counter and random part keep them unique.
	if s.host = maildirname.EscapeHost(s.host); len(s.host) > maxHost {
		s.host = s.host[:maxHost]
	}
	return s, nil
}

// Path returns the Maildir directory of user (Options.PathTemplate
// expanded), or an error wrapping store.ErrBadUser when the name could not
// safely name a directory in Root, or the template needs a home the user
// does not have.
func (s *Store) Path(user string) (string, error) {
	return s.path.expand(s.root, user, s.home)
}

// checkUser refuses names that could escape Root or hide the maildrop: empty,
// leading '.', path separators, NUL and other control characters, and names
// longer than a file name may be.
func checkUser(user string) error {
	if user == "" || len(user) > 255 || user[0] == '.' {
		return fmt.Errorf("maildir: user %q: %w", user, store.ErrBadUser)
	}
	for i := 0; i < len(user); i++ {
		if c := user[i]; c < 0x20 || c == 0x7f || c == '/' || c == '\\' {
			return fmt.Errorf("maildir: user %q: %w", user, store.ErrBadUser)
		}
	}
	return nil
}

// statSub is the default Store.statDir.
func statSub(d *mdir, sub string) (dirStamp, error) { return statDirAt(d.fd, sub) }

// Subdirectories of a Maildir.
const (
	dirTmp = "tmp"
	dirNew = "new"
	dirCur = "cur"
)

// ensure creates the Maildir dir (Root/U) and its subdirectories where
// missing, and makes the new directory entries durable. A symbolic link in
// place of the Maildir or of a subdirectory is not followed (an error
// wrapping errUnsafe, or left for the open that follows to refuse).
func ensure(dir string) error {
	created, err := mkdir(dir)
	if errors.Is(err, os.ErrNotExist) {
		// A template's directories above the Maildir (%d/%n: the
		// domain's) are made as Dovecot makes them.
		if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
			return fmt.Errorf("maildir: %w", err)
		}
		created, err = mkdir(dir)
	}
	if err != nil {
		return err
	}
	if created {
		// Root is the administrator's: its path may be followed.
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	d, err := openMdir(dir)
	if err != nil {
		return err
	}
	defer d.close()
	return ensureSubs(d)
}

// ensureSubs creates the subdirectories of the open Maildir d where
// missing, and makes the new entries durable.
func ensureSubs(d *mdir) error {
	made := false
	for _, sub := range []string{dirCur, dirNew, dirTmp} {
		c, err := mkdirAt(d.fd, sub)
		if err != nil {
			return err
		}
		made = made || c
	}
	if made {
		return syncFD(d.fd)
	}
	return nil
}

func mkdir(dir string) (created bool, err error) {
	err = os.Mkdir(dir, 0o700)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	return false, fmt.Errorf("maildir: %w", err)
}

// syncDir makes the entries of directory dir durable (fsync(2) on the
// directory, as the Maildir delivery protocol requires after a rename).
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("maildir: sync dir: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("maildir: sync dir: %w", err)
	}
	return nil
}
