// Package privdrop switches a process that started as root to an
// unprivileged account: it resolves the account (os/user), and then sets
// the supplementary groups to none, the group, then the user, in that
// order (setuid last, since it gives up the right to do the others).
//
// On Linux, Go's syscall.Setgroups, Setgid and Setuid apply to every
// thread of the process (Go 1.16 and later), so no goroutine keeps root.
package privdrop

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
)

// Account is a resolved user and group.
type Account struct {
	User  string // as configured
	Group string // as configured, or the user's primary group name
	UID   int
	GID   int
}

// Lookup resolves name (an account name or a numeric id) and group (a
// group name or a numeric id; "" = the user's primary group).
func Lookup(name, group string) (Account, error) {
	var a Account
	if name == "" {
		return a, errors.New("no user given")
	}
	u, err := user.Lookup(name)
	if err != nil {
		if !isID(name) {
			return a, fmt.Errorf("user %q: %w", name, err)
		}
		if u, err = user.LookupId(name); err != nil {
			return a, fmt.Errorf("user %q: %w", name, err)
		}
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return a, fmt.Errorf("user %q: uid %q is not a number", name, u.Uid)
	}
	a.User, a.UID = name, uid
	gidStr := u.Gid
	a.Group = gidStr
	if group != "" {
		g, err := user.LookupGroup(group)
		if err != nil {
			if !isID(group) {
				return a, fmt.Errorf("group %q: %w", group, err)
			}
			if g, err = user.LookupGroupId(group); err != nil {
				return a, fmt.Errorf("group %q: %w", group, err)
			}
		}
		gidStr, a.Group = g.Gid, group
	} else if g, err := user.LookupGroupId(gidStr); err == nil {
		a.Group = g.Name
	}
	if a.GID, err = strconv.Atoi(gidStr); err != nil {
		return a, fmt.Errorf("group %q: gid %q is not a number", a.Group, gidStr)
	}
	return a, nil
}

// isID reports whether s is a user or group id: a decimal number that
// fits in 32 bits (libc's lookup would wrap a bigger one round to
// another account).
func isID(s string) bool {
	_, err := strconv.ParseUint(s, 10, 32)
	return err == nil
}

// Drop makes the process run as a: no supplementary groups, then a.GID,
// then a.UID. It then checks that root cannot be taken back. A process
// left half-switched by an error must exit.
func Drop(a Account) error {
	if err := setgroups(nil); err != nil {
		return fmt.Errorf("dropping supplementary groups: %w", err)
	}
	if err := setgid(a.GID); err != nil {
		return fmt.Errorf("setgid %d: %w", a.GID, err)
	}
	if err := setuid(a.UID); err != nil {
		return fmt.Errorf("setuid %d: %w", a.UID, err)
	}
	if os.Getuid() != a.UID || os.Geteuid() != a.UID || os.Getgid() != a.GID || os.Getegid() != a.GID {
		return fmt.Errorf("still uid %d/%d gid %d/%d after switching to %d:%d",
			os.Getuid(), os.Geteuid(), os.Getgid(), os.Getegid(), a.UID, a.GID)
	}
	if a.UID != 0 && setuid(0) == nil {
		return errors.New("could take uid 0 back after switching")
	}
	if gs, err := os.Getgroups(); err != nil || len(gs) > 0 {
		return fmt.Errorf("supplementary groups %v left after switching (%v)", gs, err)
	}
	return nil
}

// IsRoot reports whether the process runs with effective uid 0.
func IsRoot() bool { return os.Geteuid() == 0 }
