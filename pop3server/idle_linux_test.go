package pop3server_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/postie-mail/postie/pop3server"
)

// BenchmarkIdleSession measures what an idle authenticated session holds
// in the server: its Go heap and goroutine stack, after login and STAT,
// once the server waits for its next command. The clients are raw
// sockets, so that nothing of theirs is on the Go heap; the figure leaves
// out the kernel's socket and the process's other pages, which `postie
// bench idle` (PSS of the whole server) includes.
//
//	go test -run '^$' -bench IdleSession ./pop3server
func BenchmarkIdleSession(b *testing.B) {
	const n = 100 // pop3test's users, one maildrop each
	s := startPostie(b, func(o *pop3server.Options) { o.Limits.MaxConnsPerIP = n + 1 })
	for i := 1; i <= n; i++ {
		s.deliverCorpus(b, fmt.Sprintf("user%d", i))
	}
	ap, err := netip.ParseAddrPort(s.addr)
	if err != nil {
		b.Fatal(err)
	}
	port := int(ap.Port())
	var perSession float64
	for b.Loop() {
		before := liveMemory()
		fds := make([]int, 0, n)
		for i := 1; i <= n; i++ {
			fds = append(fds, rawLogin(b, port, i))
		}
		after := liveMemory()
		perSession = float64(after-before) / n
		for _, fd := range fds {
			rawSay(b, fd, "QUIT\r\n", "+OK bye")
			syscall.Close(fd)
		}
	}
	b.ReportMetric(perSession, "B/session")
}

// liveMemory is the heap in use and the goroutine stacks, after a full
// collection (two: sync.Pool keeps its contents for one).
func liveMemory() uint64 {
	time.Sleep(50 * time.Millisecond) // the sessions reach their read
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// rawLogin opens a session for userI on a raw socket, logs in and sends
// STAT, and returns the socket once the STAT reply came.
func rawLogin(b *testing.B, port int, i int) int {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Connect(fd, &syscall.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		b.Fatal(err)
	}
	rawSay(b, fd, "", "+OK postie")
	rawSay(b, fd, fmt.Sprintf("USER user%d\r\nPASS pass%d\r\n", i, i), "+OK send PASS\r\n+OK logged in")
	rawSay(b, fd, "STAT\r\n", "+OK 3 ")
	return fd
}

// rawSay writes cmd and reads until the reply, which must start with want,
// has ended with a CRLF.
func rawSay(b *testing.B, fd int, cmd, want string) {
	if cmd != "" {
		if _, err := syscall.Write(fd, []byte(cmd)); err != nil {
			b.Fatal(err)
		}
	}
	var got []byte
	buf := make([]byte, 512)
	for len(got) < len(want) || !bytes.HasSuffix(got, []byte("\r\n")) {
		k, err := syscall.Read(fd, buf)
		if err != nil || k == 0 {
			b.Fatalf("read: %v after %q", err, got)
		}
		got = append(got, buf[:k]...)
	}
	if !bytes.HasPrefix(got, []byte(want)) {
		b.Fatalf("got %q, want %q...", got, want)
	}
}
