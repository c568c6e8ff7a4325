package systemd

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// listenFDsStart is the first file descriptor systemd passes
// (SD_LISTEN_FDS_START).
const listenFDsStart = 3

// Listeners returns the listening sockets systemd passed to this process
// (socket activation), by their FileDescriptorName= ("unknown" when not
// named), or nil when it passed none. It removes $LISTEN_PID, $LISTEN_FDS
// and $LISTEN_FDNAMES from the environment and marks the descriptors
// close-on-exec. A passed descriptor that is not a listening stream
// socket is an error.
func Listeners() (map[string][]net.Listener, error) {
	pid, nfds, names := os.Getenv("LISTEN_PID"), os.Getenv("LISTEN_FDS"), os.Getenv("LISTEN_FDNAMES")
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	if pid == "" || nfds == "" {
		return nil, nil
	}
	if pid != strconv.Itoa(os.Getpid()) {
		return nil, nil // meant for another process (our parent)
	}
	n, err := strconv.Atoi(nfds)
	if err != nil || n < 0 || n > 1024 {
		return nil, fmt.Errorf("socket activation: LISTEN_FDS %q is not a number of descriptors", nfds)
	}
	var nameList []string
	if names != "" {
		nameList = strings.Split(names, ":")
		if len(nameList) != n {
			return nil, fmt.Errorf("socket activation: LISTEN_FDNAMES has %d names for %d descriptors", len(nameList), n)
		}
	}
	out := map[string][]net.Listener{}
	fail := func(err error) (map[string][]net.Listener, error) {
		for _, lns := range out {
			for _, ln := range lns {
				ln.Close()
			}
		}
		return nil, err
	}
	for i := range n {
		fd := listenFDsStart + i
		name := "unknown"
		if nameList != nil && nameList[i] != "" {
			name = nameList[i]
		}
		syscall.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), name)
		ln, err := net.FileListener(f)
		f.Close() // FileListener holds its own copy
		if err != nil {
			return fail(fmt.Errorf("socket activation: descriptor %d (%s) is not a listening stream socket: %w", fd, name, err))
		}
		out[name] = append(out[name], ln)
	}
	return out, nil
}
