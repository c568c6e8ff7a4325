package maildir

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/postie-mail/postie/store"
	"golang.org/x/sys/unix"
)

// The snapshot index is the snapshot cache kept on disk, for big maildrops:
// the first login after a restart (or after the cache let the entry go)
// reads one file, postie-index, instead of listing new/ and cur/, parsing
// and sorting every name. It is trusted exactly as a cached snapshot is:
// only when the stamps of new/ and cur/ are those it records, and its
// reading began at least snapMargin after them, and the clock is not
// before that beginning (see snapcache.go). It is written, for maildrops of
// indexMin messages or more, after a login that read the directories and
// found its snapshot trustworthy; only the holder of the session lock reads
// or writes it.
//
// Format (text, one line each):
//
//	postie-index 1
//	<new dev> <new ino> <new mtime> <new ctime> <cur dev> <cur ino> <cur mtime> <cur ctime> <began> <messages>
//	<n|c> <wire size> <file size or -1> <file name>     (one per message, in snapshot order)
//	end <CRC-32C of everything before this line, 8 hex digits>
//
// Times are nanoseconds since the epoch. The index is written to a
// temporary file and renamed into place, not fsynced: a file damaged by a
// crash fails its checksum and is ignored (then rewritten).
const (
	indexName   = "postie-index"
	indexHeader = "postie-index 1\n"
	// indexMin is the size from which a maildrop's snapshot is kept on
	// disk; smaller ones are read from their directories in a few
	// milliseconds.
	indexMin = 2000
	// maxIndexSize and maxIndexLine bound what an index may be, so that
	// a forged one cannot make a login take memory without end: a line
	// is a file name (at most 255 octets) and three fields.
	maxIndexSize = 1 << 30
	maxIndexLine = 255 + 48
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorruptIndex reports a snapshot index that cannot be used.
var errCorruptIndex = errors.New("maildir: corrupt snapshot index")

// indexStamps is the line after the header.
func indexStamps(newSt, curSt dirStamp, began int64, n int) []byte {
	b := make([]byte, 0, 200)
	for _, v := range []uint64{newSt.dev, newSt.ino, uint64(newSt.mtime), uint64(newSt.ctime), curSt.dev, curSt.ino, uint64(curSt.mtime), uint64(curSt.ctime)} {
		b = strconv.AppendUint(b, v, 10)
		b = append(b, ' ')
	}
	b = strconv.AppendInt(b, began, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, '\n')
}

// saveIndex writes snap, read from time began on when new/ and cur/ had the
// stamps newSt and curSt, as the snapshot index of the open Maildir d.
func saveIndex(d *mdir, newSt, curSt dirStamp, began int64, snap *snapshot) (err error) {
	size := len(indexHeader) + 200 + 20
	for _, k := range snap.pos {
		size += len(snap.files[k].name) + 32
	}
	b := make([]byte, 0, size)
	b = append(b, indexHeader...)
	b = append(b, indexStamps(newSt, curSt, began, len(snap.pos))...)
	for i, k := range snap.pos {
		m := &snap.files[k]
		if m.sub == dirNew {
			b = append(b, "n "...)
		} else {
			b = append(b, "c "...)
		}
		b = strconv.AppendInt(b, snap.infos[i].Size, 10)
		b = append(b, ' ')
		b = strconv.AppendInt(b, m.fsize, 10)
		b = append(b, ' ')
		b = append(b, m.name...)
		b = append(b, '\n')
	}
	b = append(b, "end "...)
	b = appendHex32(b, crc32.Checksum(b[:len(b)-len("end ")], castagnoli))
	b = append(b, '\n')

	const tmp = indexName + ".tmp"
	f, err := createNewAt(d.fd, tmp)
	if err != nil {
		return fmt.Errorf("maildir: snapshot index: %w", err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = renameAt(d.fd, tmp, d.fd, indexName)
	}
	if err != nil {
		unlinkAt(d.fd, tmp)
		return fmt.Errorf("maildir: snapshot index: %w", err)
	}
	return nil
}

func appendHex32(b []byte, v uint32) []byte {
	const digits = "0123456789abcdef"
	for shift := 28; shift >= 0; shift -= 4 {
		b = append(b, digits[v>>uint(shift)&0xf])
	}
	return b
}

// removeIndex removes the snapshot index of the open Maildir d, if any
// (whatever it is, but a directory: a symbolic link is removed, not
// followed).
func removeIndex(d *mdir) error {
	if err := unlinkAt(d.fd, indexName); err != nil {
		return fmt.Errorf("maildir: snapshot index: %w", err)
	}
	return nil
}

// loadIndex returns the snapshot kept in the index of the open Maildir d if
// it is the snapshot of new/ and cur/ with the stamps newSt and curSt, and
// trustworthy (see above) at time now, in nanoseconds since the epoch;
// else nil, with an error only when the index is damaged. Its beginning is
// read first: an index of other stamps is not read whole.
func loadIndex(d *mdir, newSt, curSt dirStamp, now, margin int64) (*snapshot, error) {
	// A symbolic link, FIFO or device put in its place is damage, not
	// something to follow or wait on.
	fd, _, err := openRegularAt(d.fd, indexName, unix.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("maildir: snapshot index: %w", err)
	}
	f := os.NewFile(uintptr(fd), indexName)
	defer f.Close()
	var head [512]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF {
		return nil, fmt.Errorf("maildir: snapshot index: %w", err)
	}
	rest, ok := bytes.CutPrefix(head[:n], []byte(indexHeader))
	if !ok {
		return nil, errCorruptIndex
	}
	line, _, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok {
		return nil, errCorruptIndex
	}
	fields := strings.Fields(string(line))
	if len(fields) != 10 {
		return nil, errCorruptIndex
	}
	var v [10]int64
	for i, s := range fields {
		x, err := strconv.ParseInt(s, 10, 64)
		if i < 8 && err != nil {
			// dev and ino are unsigned.
			var u uint64
			if u, err = strconv.ParseUint(s, 10, 64); err == nil {
				x = int64(u)
			}
		}
		if err != nil {
			return nil, errCorruptIndex
		}
		v[i] = x
	}
	recNew := dirStamp{uint64(v[0]), uint64(v[1]), v[2], v[3]}
	recCur := dirStamp{uint64(v[4]), uint64(v[5]), v[6], v[7]}
	began, count := v[8], v[9]
	if recNew != newSt || recCur != curSt || now < began || began-max(newSt.latest(), curSt.latest()) < margin {
		return nil, nil
	}
	if count < 0 || count > 1<<28 {
		return nil, errCorruptIndex
	}

	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("maildir: snapshot index: %w", err)
	}
	// Smaller than what was just read: cut meanwhile.
	if fi.Size() < int64(n) || fi.Size() > maxIndexSize || fi.Size() > int64(len(head))+count*maxIndexLine {
		return nil, errCorruptIndex
	}
	data := make([]byte, fi.Size())
	copy(data, head[:n])
	if n == len(head) {
		if _, err := io.ReadFull(f, data[n:]); err != nil {
			return nil, errCorruptIndex
		}
	} else if int64(n) != fi.Size() {
		return nil, errCorruptIndex
	}
	// The checksum line: "end " and 8 hex digits and a line end.
	const trailer = len("end 01234567\n")
	if len(data) < trailer || !bytes.HasPrefix(data[len(data)-trailer:], []byte("end ")) || data[len(data)-1] != '\n' {
		return nil, errCorruptIndex
	}
	body := data[:len(data)-trailer]
	sum, err := strconv.ParseUint(string(data[len(data)-trailer+4:len(data)-1]), 16, 32)
	if err != nil || uint32(sum) != crc32.Checksum(body, castagnoli) {
		return nil, errCorruptIndex
	}

	// One string for the whole index: names and UIDs are slices of it.
	text := string(body[len(indexHeader)+len(line)+1:])
	snap := &snapshot{
		files: make([]message, 0, count),
		pos:   make([]int32, 0, count),
		infos: make([]store.MessageInfo, 0, count),
	}
	for text != "" {
		var l string
		l, text, ok = strings.Cut(text, "\n")
		if !ok || len(l) < 2 || l[1] != ' ' {
			return nil, errCorruptIndex
		}
		var sub string
		switch l[0] {
		case 'n':
			sub = dirNew
		case 'c':
			sub = dirCur
		default:
			return nil, errCorruptIndex
		}
		ws, l, ok1 := strings.Cut(l[2:], " ")
		fs, name, ok2 := strings.Cut(l, " ")
		wsize, err1 := strconv.ParseInt(ws, 10, 64)
		fsize, err2 := strconv.ParseInt(fs, 10, 64)
		if !ok1 || !ok2 || err1 != nil || err2 != nil || wsize < 0 || fsize < -1 {
			return nil, errCorruptIndex
		}
		// Only what a directory read could have given: the index is
		// in the user's Maildir, and whoever can write there must not
		// make a session open a file elsewhere ("../") or list one
		// UID twice. parseName refuses NUL and other control octets.
		mn, ok := parseName(name)
		if !ok || name[0] == '.' || strings.IndexByte(name, '/') >= 0 {
			return nil, errCorruptIndex
		}
		if n := len(snap.files); n > 0 {
			// In snapshot order: by time, then unique part, each
			// unique part once.
			prev := &snap.files[n-1].n
			if mn.ts < prev.ts || mn.ts == prev.ts && mn.unique <= prev.unique {
				return nil, errCorruptIndex
			}
		}
		snap.pos = append(snap.pos, int32(len(snap.files)))
		snap.files = append(snap.files, message{sub: sub, name: name, n: mn, fsize: fsize})
		snap.infos = append(snap.infos, store.MessageInfo{UID: mn.uid(), Size: wsize})
	}
	if int64(len(snap.files)) != count {
		return nil, errCorruptIndex
	}
	return snap, nil
}
