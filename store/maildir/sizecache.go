package maildir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/postie-mail/postie/internal/maildirname"
)

// The size cache remembers the wire size of messages whose names carry no
// W= field, so that a login reads no message twice. See the package doc for
// its format. Only the holder of the session lock reads or writes it.
const (
	cacheName   = "postie-sizes"
	cacheHeader = "postie-sizes 1"
)

// sizes are the sizes known of one message.
type sizes struct {
	wire int64 // wire size
	file int64 // file size when the wire size was computed
}

// errCorruptCache reports a size cache that cannot be parsed.
var errCorruptCache = errors.New("maildir: corrupt size cache")

// cacheEntry is one line of the size cache.
type cacheEntry struct {
	unique string
	sizes
}

// maxCacheLine bounds a line of the size cache: a unique name (a file
// name, at most 255 octets) and two sizes of up to 18 digits.
const maxCacheLine = 255 + 2*(1+18) + 1

// maxSizesFor bounds the size cache of a maildrop of n messages: one line
// for each, and room for as many again of messages since removed.
func maxSizesFor(n int) int64 {
	return int64(len(cacheHeader)+1) + int64(2*n+1024)*maxCacheLine
}

// loadSizes reads the size cache of the open Maildir dirfd, of at most
// max octets. A missing cache is an empty one; a damaged one is reported
// with errCorruptCache; one that is not a regular file (a symbolic link,
// a FIFO), or is bigger than max, with an error, without reading it.
func loadSizes(dirfd int, max int64) (map[string]sizes, error) {
	data, err := readStateFile(dirfd, cacheName, max)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]sizes{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: size cache: %w", err)
	}
	// One string for the whole file: the keys are slices of it.
	text, ok := strings.CutPrefix(string(data), cacheHeader+"\n")
	if !ok || text != "" && text[len(text)-1] != '\n' {
		return nil, errCorruptCache
	}
	m := make(map[string]sizes, strings.Count(text, "\n"))
	for text != "" {
		var line string
		line, text, _ = strings.Cut(text, "\n")
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			return nil, errCorruptCache
		}
		j := strings.LastIndexByte(line[:i], ' ')
		if j <= 0 {
			return nil, errCorruptCache
		}
		key := line[:j]
		w, f := maildirname.ParseNumber(line[j+1:i]), maildirname.ParseNumber(line[i+1:])
		if w < 0 || f < 0 || strings.ContainsFunc(key, isControl) {
			return nil, errCorruptCache
		}
		m[key] = sizes{wire: w, file: f}
	}
	return m, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// saveSizes replaces the size cache of the open Maildir dirfd with
// entries, atomically: a temporary file, fsync, rename over the old one,
// fsync of the Maildir.
func saveSizes(dirfd int, entries []cacheEntry) error {
	err := replaceAt(dirfd, cacheName, func(bw *bufio.Writer) error {
		bw.WriteString(cacheHeader + "\n")
		var num []byte
		for _, e := range entries {
			bw.WriteString(e.unique)
			num = strconv.AppendInt(append(num[:0], ' '), e.wire, 10)
			num = strconv.AppendInt(append(num, ' '), e.file, 10)
			bw.Write(append(num, '\n'))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("maildir: size cache: %w", err)
	}
	return nil
}
