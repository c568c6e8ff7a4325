package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/postie-mail/postie/internal/exitcode"
)

// mdaDest runs a command for each message, "sh -c COMMAND", with the
// message on its standard input (LF line ends) and POSTIE_FETCH_ACCOUNT,
// POSTIE_FETCH_ID and POSTIE_FETCH_SENDER in its environment. Exit 0: the
// message is delivered; 75 (EX_TEMPFAIL): not delivered, retried next run;
// anything else: not delivered, an error. The message stays on the server
// unless the MDA exits 0.
//
// A pending record is written before the command runs. If the run dies
// while it runs, the next run cannot know whether the MDA delivered: it
// runs it again (at least once, never lost) and logs a warning.
type mdaDest struct {
	command string
	account string
}

var _ destination = (*mdaDest)(nil)

func (d *mdaDest) wantsPending()        {}
func (d *mdaDest) has(*message) bool    { return false }
func (d *mdaDest) staged() (int, int64) { return 0, 0 }
func (d *mdaDest) detach() func() error { return nil }
func (d *mdaDest) close() error         { return nil }

func (d *mdaDest) deliver(ctx context.Context, m *message, r io.Reader) (bool, error) {
	br := bufio.NewReaderSize(r, maxHeaderPeek)
	cmd := exec.Command("/bin/sh", "-c", d.command)
	cmd.Env = append(os.Environ(),
		"POSTIE_FETCH_ACCOUNT="+d.account,
		"POSTIE_FETCH_ID="+m.id,
		"POSTIE_FETCH_SENDER="+envelopeSender(peekHeader(br)))
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return false, fmt.Errorf("mda: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return false, fmt.Errorf("mda: %w", err)
	}
	lw := &lfWriter{w: stdin}
	_, cerr := io.Copy(lw, br)
	if cerr != nil && !isBrokenPipe(cerr) {
		// The message could not be read whole: the MDA must not see an
		// end of file and deliver a truncated message.
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		return false, cerr
	}
	if cerr == nil {
		lw.finish()
	}
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err2 error
	select {
	case err2 = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return false, ctx.Err()
	}
	if err2 == nil {
		return true, nil
	}
	var ee *exec.ExitError
	if !errors.As(err2, &ee) {
		return false, fmt.Errorf("mda: %w", err2)
	}
	msg := strings.TrimSpace(stderr.String())
	if msg != "" {
		msg = ": " + msg
	}
	if ee.ExitCode() == exitcode.TempFail {
		return false, &refusal{temp: true, err: fmt.Errorf("mda exited %d (try again later)%s", exitcode.TempFail, msg)}
	}
	return false, &refusal{err: fmt.Errorf("mda %s%s", ee.ProcessState, msg)}
}

func isBrokenPipe(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrClosed)
}

// limitedBuffer keeps the first 2 KiB written to it.
type limitedBuffer struct{ b bytes.Buffer }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := 2048 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return l.b.String() }

// lmtpDest hands each message to an LMTP server (RFC 2033) for one
// recipient, over one connection kept for the run. The envelope sender is
// the message's Return-Path. 2xx: delivered; 4xx: retried next run; 5xx:
// an error, the message stays on the server. As with an MDA, a delivery
// interrupted by the death of the run is repeated: at least once.
type lmtpDest struct {
	addr      string // host:port or unix:/path
	recipient string
	timeout   time.Duration
	c         *smtp.Client
	conn      net.Conn
}

var _ destination = (*lmtpDest)(nil)

func (d *lmtpDest) wantsPending()        {}
func (d *lmtpDest) has(*message) bool    { return false }
func (d *lmtpDest) staged() (int, int64) { return 0, 0 }
func (d *lmtpDest) detach() func() error { return nil }

func (d *lmtpDest) dial(ctx context.Context) error {
	network, addr := "tcp", d.addr
	if p, ok := strings.CutPrefix(d.addr, "unix:"); ok {
		network, addr = "unix", p
	}
	dl := net.Dialer{Timeout: d.timeout}
	conn, err := dl.DialContext(ctx, network, addr)
	if err != nil {
		return fmt.Errorf("lmtp: %w", err)
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	c := smtp.NewClientLMTP(conn)
	c.CommandTimeout = d.timeout
	c.SubmissionTimeout = d.timeout
	if err := c.Hello(host); err != nil {
		conn.Close()
		return fmt.Errorf("lmtp: %w", err)
	}
	d.c, d.conn = c, conn
	return nil
}

func (d *lmtpDest) deliver(ctx context.Context, m *message, r io.Reader) (bool, error) {
	if d.c == nil {
		if err := d.dial(ctx); err != nil {
			return false, err
		}
	}
	conn := d.conn
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	br := bufio.NewReaderSize(r, maxHeaderPeek)
	from := envelopeSender(peekHeader(br))
	if err := d.c.Mail(from, nil); err != nil {
		// A connection kept from an earlier message may have timed out:
		// one more try on a new one.
		var se *smtp.SMTPError
		if errors.As(err, &se) || ctx.Err() != nil {
			return d.fail(ctx, err)
		}
		d.drop()
		if err := d.dial(ctx); err != nil {
			return false, err
		}
		conn := d.conn
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		if err := d.c.Mail(from, nil); err != nil {
			return d.fail(ctx, err)
		}
	}
	if err := d.c.Rcpt(d.recipient, nil); err != nil {
		return d.fail(ctx, err)
	}
	w, err := d.c.Data()
	if err != nil {
		return d.fail(ctx, err)
	}
	if _, err := io.Copy(w, br); err != nil {
		// Never send the final dot of a message not read whole.
		d.drop()
		return false, err
	}
	if _, err := w.CloseWithLMTPResponse(); err != nil {
		var le smtp.LMTPDataError
		if errors.As(err, &le) {
			for _, se := range le {
				return d.fail(ctx, se)
			}
		}
		return d.fail(ctx, err)
	}
	if err := d.c.Reset(); err != nil {
		d.drop()
	}
	return true, nil
}

// fail sorts out an LMTP error: a reply is a refusal (4xx temporary), and
// the session goes on; anything else drops the connection.
func (d *lmtpDest) fail(ctx context.Context, err error) (bool, error) {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		// The session is still in step: start afresh next time.
		if rerr := d.c.Reset(); rerr != nil {
			d.drop()
		}
		return false, &refusal{temp: se.Code/100 == 4, err: fmt.Errorf("lmtp: %w", err)}
	}
	d.drop()
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return false, fmt.Errorf("lmtp: %w", err)
}

func (d *lmtpDest) drop() {
	if d.c != nil {
		d.c.Close()
		d.c, d.conn = nil, nil
	}
}

func (d *lmtpDest) close() error {
	if d.c != nil {
		d.c.Quit()
		d.drop()
	}
	return nil
}
