//go:build !unix

package pop3server

// readable says yes at once where the socket cannot be peeked at: the
// session then waits in its read, with its reader.
func readable(uintptr) bool { return true }
