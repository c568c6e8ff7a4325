//go:build unix

package privdrop

import "syscall"

func setgroups(gids []int) error { return syscall.Setgroups(gids) }
func setgid(gid int) error       { return syscall.Setgid(gid) }
func setuid(uid int) error       { return syscall.Setuid(uid) }
