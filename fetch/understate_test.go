package fetch

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// understatingServer is a POP3 server on 127.0.0.1:0 with one message of
// body octets (lines of 1,024 'a's) that it lists as 100 octets. It
// records the commands it gets.
type understatingServer struct {
	addr string
	mu   sync.Mutex
	cmds []string
}

func startUnderstating(t *testing.T, body int) *understatingServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &understatingServer{addr: ln.Addr().String()}
	line := append(bytes.Repeat([]byte{'a'}, 1024), '\r', '\n')
	chunk := bytes.Repeat(line, 64) // 65,600 octets
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				bw := bufio.NewWriter(c)
				bw.WriteString("+OK fake POP3 server\r\n")
				bw.Flush()
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					cmd := strings.ToUpper(strings.TrimSpace(l))
					s.mu.Lock()
					s.cmds = append(s.cmds, cmd)
					s.mu.Unlock()
					switch {
					case cmd == "CAPA":
						bw.WriteString("+OK\r\nUSER\r\nUIDL\r\n.\r\n")
					case strings.HasPrefix(cmd, "USER"), strings.HasPrefix(cmd, "PASS"), strings.HasPrefix(cmd, "DELE"), cmd == "NOOP", cmd == "RSET":
						bw.WriteString("+OK\r\n")
					case cmd == "STAT":
						bw.WriteString("+OK 1 100\r\n")
					case cmd == "LIST":
						bw.WriteString("+OK 1 messages\r\n1 100\r\n.\r\n")
					case cmd == "LIST 1":
						bw.WriteString("+OK 1 100\r\n")
					case cmd == "UIDL":
						bw.WriteString("+OK\r\n1 big-1\r\n.\r\n")
					case cmd == "UIDL 1":
						bw.WriteString("+OK 1 big-1\r\n")
					case cmd == "RETR 1":
						bw.WriteString("+OK 100 octets\r\n")
						for n := 0; n < body; n += len(chunk) {
							bw.Write(chunk[:min(len(chunk), body-n)])
						}
						bw.WriteString(".\r\n")
					case cmd == "QUIT":
						bw.WriteString("+OK bye\r\n")
						bw.Flush()
						return
					default:
						bw.WriteString("-ERR unknown command\r\n")
					}
					bw.Flush()
				}
			}()
		}
	}()
	return s
}

func (s *understatingServer) got(prefix string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cmds {
		if strings.HasPrefix(c, prefix) {
			return true
		}
	}
	return false
}

func totalAlloc() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.TotalAlloc
}

// TestUnderstatedSize: a server that lists a message of 48 MiB as 100
// octets (issue 13, finding 7) gets it fetched whole into the Maildir
// while fetch allocates a fraction of it (the message moves from memory
// to tmp/ once it passes 1 MiB); with max_size below its true size, the
// message fails clearly once it passes max_size, nothing is delivered, and
// it stays on the server. fetch at 05cd549 held the whole message in
// memory (a 1 GiB one took 1.07 GB), max_size or not.
func TestUnderstatedSize(t *testing.T) {
	const lines = 49152
	const body = lines * 1026 // 48 MiB and a little
	const allocBound = 16 << 20

	t.Run("fetched", func(t *testing.T) {
		srv := startUnderstating(t, body)
		dir := filepath.Join(t.TempDir(), "Maildir")
		c := config(t, account("big", srv.addr, fmt.Sprintf("maildir = %q", dir)))
		before := totalAlloc()
		res := runOnce(t, c, Options{Logger: quiet()})[0]
		a := totalAlloc() - before
		if a > allocBound {
			t.Errorf("fetch allocated %d octets for a message of %d, bound %d", a, body, allocBound)
		}
		t.Logf("fetch allocated %d octets for a message of %d", a, body)
		if res.Fetched != 1 || res.Failed != 0 {
			t.Errorf("%s", res.Summary())
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "new"))
		if len(ents) != 1 {
			t.Fatalf("new/ holds %d files, want 1", len(ents))
		}
		fi, err := ents[0].Info()
		// LF line ends: one octet fewer a line.
		if want := int64(body - lines); err != nil || fi.Size() != want {
			t.Errorf("delivered %v octets (%v), want %d", fi.Size(), err, want)
		}
		if !strings.Contains(ents[0].Name(), fmt.Sprintf(",S=%d,", body-lines)) {
			t.Errorf("name %s does not carry the true size", ents[0].Name())
		}
	})

	t.Run("max_size", func(t *testing.T) {
		srv := startUnderstating(t, body)
		dir := filepath.Join(t.TempDir(), "Maildir")
		var logs captureLog
		c := config(t, account("big", srv.addr, fmt.Sprintf("maildir = %q", dir), `max_size = "10M"`))
		before := totalAlloc()
		res := runOnce(t, c, Options{Logger: logs.logger()})[0]
		if a := totalAlloc() - before; a > allocBound {
			t.Errorf("fetch allocated %d octets, bound %d", a, allocBound)
		}
		if res.Fetched != 0 || res.Failed != 1 {
			t.Errorf("%s; want 0 fetched, 1 failed", res.Summary())
		}
		for _, sub := range []string{"new", "cur", "tmp"} {
			if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
				t.Errorf("%s/ holds %d files", sub, len(ents))
			}
		}
		if srv.got("DELE") {
			t.Error("the message was deleted on the server")
		}
		if !strings.Contains(logs.String(), "more than max_size") {
			t.Errorf("no clear error logged:\n%s", logs.String())
		}
	})
}
