//go:build !linux

package posixacl

// Read returns nil: ACLs are read on Linux only.
func Read(path string) (ACL, error) { return nil, nil }
