package maildir

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/postie-mail/postie/store"
	"golang.org/x/sys/unix"
)

var _ store.Usager = (*Store)(nil)

// Usage returns the number of messages in user's Maildir and the octets
// they occupy on disk. It reads new/ and cur/ once and opens no message:
// sizes come from the S= fields of the names, else from the size cache,
// else from fstatat(2). A message seen in both new/ and cur/ (moved while
// being listed) counts once; nothing is followed or opened (a symbolic
// link counts with its own size). A Maildir that does
// not exist is empty; one, or a folder, that is a symbolic link gives an
// error wrapping errUnsafe.
func (s *Store) Usage(ctx context.Context, user string) (msgs int, bytes int64, err error) {
	dir, err := s.Path(user)
	if err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("maildir: usage: %w", err)
	}
	d, err := openMdir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("maildir: usage: %w", err)
	}
	defer d.close()
	var unknown []place // names without S=
	seen := map[string]bool{}
	for _, sub := range []string{dirNew, dirCur} {
		fd, err := d.sub(sub)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("maildir: usage: %w", err)
		}
		err = readDirFD(fd, func(b []byte, _ bool) {
			if b[0] == '.' {
				return
			}
			name := string(b)
			n, ok := parseName(name)
			if !ok || seen[n.unique] {
				return
			}
			seen[n.unique] = true
			msgs++
			if n.fsize >= 0 {
				bytes += n.fsize
			} else {
				unknown = append(unknown, place{sub, name})
			}
		})
		if err != nil {
			return 0, 0, fmt.Errorf("maildir: usage: %w", err)
		}
	}
	if len(unknown) == 0 {
		return msgs, bytes, nil
	}
	// Messages delivered by other programs: the size cache knows most of
	// them; it is written atomically, so reading it without the session
	// lock is safe.
	cache, err := loadSizes(d.fd, maxSizesFor(msgs))
	if err != nil {
		cache = nil
	}
	for _, e := range unknown {
		n, _ := parseName(e.name)
		if c, ok := cache[n.unique]; ok {
			bytes += c.file
			continue
		}
		fd, _ := d.sub(e.sub)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, e.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			// Gone meanwhile (deleted or moved): its other name, if
			// any, was counted or will be next time.
			if err == unix.ENOENT {
				msgs--
			}
			continue
		}
		bytes += st.Size
	}
	return msgs, bytes, nil
}
