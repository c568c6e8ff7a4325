// Package posixacl reads a file's POSIX access ACL, as Linux keeps it in
// the system.posix_acl_access extended attribute, and answers who may
// access the file through it. It exists for `postie config check`, which
// must not call a secret private when an ACL entry lets others read it.
//
// The attribute is a little-endian header (the version, 2) followed by
// 8-byte entries: tag (16 bits), permissions (16 bits: 4 read, 2 write,
// 1 execute) and the uid or gid of a named entry (32 bits). A file
// without extended entries has no attribute: its mode bits are the ACL.
package posixacl

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Attr is the extended attribute that holds the access ACL.
const Attr = "system.posix_acl_access"

// version is the one format Linux writes (POSIX_ACL_XATTR_VERSION).
const version = 2

// Tags of the entries.
const (
	UserObj  = 0x01 // the owner: the mode's owner bits
	User     = 0x02 // a named user
	GroupObj = 0x04 // the owning group (limited by Mask)
	Group    = 0x08 // a named group
	Mask     = 0x10 // the most that User, GroupObj and Group grant; the mode's group bits
	Other    = 0x20 // everyone else: the mode's other bits
)

// Permission bits of an entry.
const (
	PermRead    = 4
	PermWrite   = 2
	PermExecute = 1
)

// Entry is one entry of an ACL; ID is the uid of a User entry or the gid
// of a Group entry.
type Entry struct {
	Tag  uint16
	Perm uint16
	ID   uint32
}

// ACL is an access ACL, its entries in the order stored.
type ACL []Entry

// Parse decodes the value of the system.posix_acl_access attribute. It
// refuses anything but the documented layout: another version, a length
// that is not a whole number of entries, an unknown tag or permission
// bit, the owner, owning group or others entry missing or repeated, or
// named entries without a mask.
func Parse(b []byte) (ACL, error) {
	if len(b) < 4 {
		return nil, fmt.Errorf("posixacl: %d bytes: too short for the header", len(b))
	}
	if v := binary.LittleEndian.Uint32(b); v != version {
		return nil, fmt.Errorf("posixacl: version %d, want %d", v, version)
	}
	b = b[4:]
	if len(b)%8 != 0 {
		return nil, fmt.Errorf("posixacl: %d bytes of entries: not a multiple of 8", len(b))
	}
	acl := make(ACL, 0, len(b)/8)
	count := map[uint16]int{}
	for ; len(b) > 0; b = b[8:] {
		e := Entry{Tag: binary.LittleEndian.Uint16(b), Perm: binary.LittleEndian.Uint16(b[2:]), ID: binary.LittleEndian.Uint32(b[4:])}
		switch e.Tag {
		case UserObj, User, GroupObj, Group, Mask, Other:
		default:
			return nil, fmt.Errorf("posixacl: entry %d: unknown tag %#x", len(acl)+1, e.Tag)
		}
		if e.Perm&^(PermRead|PermWrite|PermExecute) != 0 {
			return nil, fmt.Errorf("posixacl: entry %d: unknown permission bits %#x", len(acl)+1, e.Perm)
		}
		count[e.Tag]++
		acl = append(acl, e)
	}
	for _, tag := range []uint16{UserObj, GroupObj, Other} {
		if count[tag] != 1 {
			return nil, fmt.Errorf("posixacl: %d entries of tag %#x, want 1", count[tag], tag)
		}
	}
	if count[Mask] > 1 || (count[User]+count[Group] > 0 && count[Mask] == 0) {
		return nil, errors.New("posixacl: named entries need exactly one mask entry")
	}
	return acl, nil
}

// Extended reports whether the ACL says more than the mode bits can:
// it has named entries (or a mask).
func (a ACL) Extended() bool {
	for _, e := range a {
		if e.Tag == User || e.Tag == Group || e.Tag == Mask {
			return true
		}
	}
	return false
}

// mask returns the mask entry's permissions, all of them without one.
func (a ACL) mask() uint16 {
	for _, e := range a {
		if e.Tag == Mask {
			return e.Perm
		}
	}
	return PermRead | PermWrite | PermExecute
}

// Effective returns what e grants once the mask is applied (the mask
// limits named entries and the owning group, nothing else).
func (a ACL) Effective(e Entry) uint16 {
	switch e.Tag {
	case User, GroupObj, Group:
		return e.Perm & a.mask()
	}
	return e.Perm
}

// Allows reports whether a process of uid with the one group gid (and
// no supplementary groups) may access a file owned by owner and group
// with all of want, by the POSIX.1e access check Linux applies: the
// owner's entry, else a named user's, else the group entries that match
// (any one granting want suffices; matching but none granting denies),
// else the others' entry. Root's overrides are not applied.
func (a ACL) Allows(owner, group uint32, uid, gid uint32, want uint16) bool {
	for _, e := range a {
		if e.Tag == UserObj && uid == owner {
			return e.Perm&want == want
		}
	}
	for _, e := range a {
		if e.Tag == User && e.ID == uid {
			return a.Effective(e)&want == want
		}
	}
	matched := false
	for _, e := range a {
		if (e.Tag == GroupObj && gid == group) || (e.Tag == Group && e.ID == gid) {
			matched = true
			if a.Effective(e)&want == want {
				return true
			}
		}
	}
	if matched {
		return false
	}
	for _, e := range a {
		if e.Tag == Other {
			return e.Perm&want == want
		}
	}
	return false
}
