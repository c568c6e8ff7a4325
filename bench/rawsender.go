package bench

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/postie-mail/postie/internal/wire"
)

// RawSender is the ceiling for RETR: a trivial POP3 responder holding the
// messages of one Maildir in memory, already in wire form (CRLF, stuffed,
// terminated), so that RETR is a single write of prepared octets. It
// accepts any USER and PASS and knows STAT, LIST, UIDL, RETR, NOOP and
// QUIT; it is a measuring instrument, not a server.
type RawSender struct {
	msgs  [][]byte // status line + wire form + ".\r\n"
	sizes []int64
	total int64

	mu    sync.Mutex
	lns   map[net.Listener]bool
	conns map[net.Conn]bool
	done  bool
}

// NewRawSender loads the messages in dir's new/ and cur/, ordered by name.
func NewRawSender(dir string) (*RawSender, error) {
	var files []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, fmt.Errorf("bench: raw sender: %w", err)
		}
		for _, e := range ents {
			if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
				files = append(files, filepath.Join(sub, e.Name()))
			}
		}
	}
	slices.SortFunc(files, func(a, b string) int { return strings.Compare(filepath.Base(a), filepath.Base(b)) })
	r := &RawSender{lns: map[net.Listener]bool{}, conns: map[net.Conn]bool{}}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return nil, fmt.Errorf("bench: raw sender: %w", err)
		}
		var out bytes.Buffer
		out.Grow(len(data) + len(data)/20 + 64)
		dw := wire.NewDotWriter(&out, 64<<10)
		if _, err := dw.Write(data); err != nil {
			return nil, err
		}
		dw.EndLine()
		size := dw.Size()
		dw.Close()
		dw.Flush()
		head := "+OK " + strconv.FormatInt(size, 10) + " octets\r\n"
		msg := make([]byte, 0, len(head)+out.Len())
		msg = append(append(msg, head...), out.Bytes()...)
		r.msgs = append(r.msgs, msg)
		r.sizes = append(r.sizes, size)
		r.total += size
	}
	if len(r.msgs) == 0 {
		return nil, fmt.Errorf("bench: raw sender: no messages in %s", dir)
	}
	return r, nil
}

// Messages returns the number of messages and their total wire size.
func (r *RawSender) Messages() (int, int64) { return len(r.msgs), r.total }

// ErrRawSenderClosed is returned by Serve after Close.
var ErrRawSenderClosed = errors.New("bench: raw sender closed")

// Serve answers the connections of ln (wrap it with tls.NewListener for
// implicit TLS) until Close.
func (r *RawSender) Serve(ln net.Listener) error {
	r.mu.Lock()
	if r.done {
		r.mu.Unlock()
		ln.Close()
		return ErrRawSenderClosed
	}
	r.lns[ln] = true
	r.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			r.mu.Lock()
			done := r.done
			r.mu.Unlock()
			if done {
				return ErrRawSenderClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		r.mu.Lock()
		r.conns[c] = true
		r.mu.Unlock()
		go func() {
			r.serve(c)
			r.mu.Lock()
			delete(r.conns, c)
			r.mu.Unlock()
		}()
	}
}

// Close stops the listeners and closes every connection.
func (r *RawSender) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	for ln := range r.lns {
		ln.Close()
	}
	for c := range r.conns {
		c.Close()
	}
	return nil
}

func (r *RawSender) serve(c net.Conn) {
	defer c.Close()
	if tc, ok := c.(*tls.Conn); ok {
		tc.SetDeadline(time.Now().Add(30 * time.Second))
		if err := tc.Handshake(); err != nil {
			return
		}
		tc.SetDeadline(time.Time{})
	}
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	bw.WriteString("+OK raw sender ready\r\n")
	var args []string
	for {
		if bw.Flush() != nil {
			return
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Minute))
		line, err := wire.ReadLine(br, 512)
		if err != nil {
			return
		}
		cmd, ok := wire.ParseCommand(line, args)
		if !ok {
			bw.WriteString("-ERR unknown command\r\n")
			continue
		}
		args = cmd.Args
		switch cmd.Verb {
		case "CAPA":
			bw.WriteString("+OK\r\nUSER\r\nPIPELINING\r\nUIDL\r\n.\r\n")
		case "USER", "PASS", "NOOP", "RSET":
			bw.WriteString("+OK\r\n")
		case "STAT":
			fmt.Fprintf(bw, "+OK %d %d\r\n", len(r.msgs), r.total)
		case "LIST", "UIDL":
			if len(cmd.Args) > 0 {
				i, ok := r.number(cmd.Args[0])
				if !ok {
					bw.WriteString("-ERR no such message\r\n")
					continue
				}
				fmt.Fprintf(bw, "+OK %d %s\r\n", i+1, r.field(cmd.Verb, i))
				continue
			}
			bw.WriteString("+OK\r\n")
			for i := range r.msgs {
				fmt.Fprintf(bw, "%d %s\r\n", i+1, r.field(cmd.Verb, i))
			}
			bw.WriteString(".\r\n")
		case "RETR":
			if len(cmd.Args) != 1 {
				bw.WriteString("-ERR usage: RETR n\r\n")
				continue
			}
			i, ok := r.number(cmd.Args[0])
			if !ok {
				bw.WriteString("-ERR no such message\r\n")
				continue
			}
			if bw.Flush() != nil {
				return
			}
			c.SetWriteDeadline(time.Now().Add(time.Minute))
			if _, err := c.Write(r.msgs[i]); err != nil {
				return
			}
		case "QUIT":
			bw.WriteString("+OK bye\r\n")
			bw.Flush()
			return
		default:
			bw.WriteString("-ERR unknown command\r\n")
		}
	}
}

func (r *RawSender) number(s string) (int, bool) {
	n, ok := wire.ParseNumber(s)
	if !ok || n < 1 || n > len(r.msgs) {
		return 0, false
	}
	return n - 1, true
}

func (r *RawSender) field(verb string, i int) string {
	if verb == "LIST" {
		return strconv.FormatInt(r.sizes[i], 10)
	}
	return "raw" + strconv.Itoa(i+1)
}
