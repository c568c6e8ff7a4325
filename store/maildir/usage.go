package maildir

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/postie-mail/postie/store"
)

var _ store.Usager = (*Store)(nil)

// Usage returns the number of messages in user's Maildir and the octets
// they occupy on disk. It reads new/ and cur/ once and opens no message:
// sizes come from the S= fields of the names, else from the size cache,
// else from stat(2). A message seen in both new/ and cur/ (moved while
// being listed) counts once. A Maildir that does not exist is empty.
func (s *Store) Usage(ctx context.Context, user string) (msgs int, bytes int64, err error) {
	dir, err := s.Path(user)
	if err != nil {
		return 0, 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, 0, fmt.Errorf("maildir: usage: %w", err)
	}
	var unknown []place // names without S=
	seen := map[string]bool{}
	for _, sub := range []string{dirNew, dirCur} {
		d, err := os.Open(filepath.Join(dir, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, 0, fmt.Errorf("maildir: usage: %w", err)
		}
		for {
			names, rerr := d.Readdirnames(4096)
			for _, name := range names {
				if name[0] == '.' {
					continue
				}
				n, ok := parseName(name)
				if !ok || seen[n.unique] {
					continue
				}
				seen[n.unique] = true
				msgs++
				if n.fsize >= 0 {
					bytes += n.fsize
				} else {
					unknown = append(unknown, place{sub, name})
				}
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				d.Close()
				return 0, 0, fmt.Errorf("maildir: usage: %w", rerr)
			}
		}
		d.Close()
	}
	if len(unknown) == 0 {
		return msgs, bytes, nil
	}
	// Messages delivered by other programs: the size cache knows most of
	// them; it is written atomically, so reading it without the session
	// lock is safe.
	cache, err := loadSizes(dir)
	if err != nil {
		cache = nil
	}
	for _, e := range unknown {
		n, _ := parseName(e.name)
		if c, ok := cache[n.unique]; ok {
			bytes += c.file
			continue
		}
		fi, err := os.Lstat(filepath.Join(dir, e.sub, e.name))
		if err != nil {
			// Gone meanwhile (deleted or moved): its other name, if
			// any, was counted or will be next time.
			if errors.Is(err, os.ErrNotExist) {
				msgs--
			}
			continue
		}
		bytes += fi.Size()
	}
	return msgs, bytes, nil
}
