package pop3server

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"log/slog"

	"github.com/postie-mail/postie/internal/wire"
	"github.com/postie-mail/postie/sasl"
)

// maxSASLLine bounds a SASL continuation line: OAuth tokens run to several
// KB and some clients send them only as a continuation (RFC 5034 §4 sets
// no limit on responses; 255 octets applies to the AUTH line itself).
const maxSASLLine = 16 << 10

// maxAuthLine bounds an AUTH command line with its initial response.
const maxAuthLine = maxSASLLine + 64

// conn describes this connection to the mechanisms.
func (ss *session) conninfo() sasl.Conn {
	if ss.auth.saslConn != nil {
		return *ss.auth.saslConn
	}
	c := sasl.Conn{TLS: ss.conn.tls, AllowCleartext: ss.conn.cleartext}
	if tc, ok := ss.conn.nc.(interface{ ConnectionState() tls.ConnectionState }); ok {
		cs := tc.ConnectionState()
		c.ChannelBinding = sasl.ChannelBindingFromTLS(&cs)
		if f := ss.srv.opts.ClientCertUser; f != nil && len(cs.VerifiedChains) > 0 {
			c.ExternalIdentity = f(&cs)
		}
	}
	ss.auth.saslConn = &c
	return c
}

func (ss *session) saslNames() []string {
	if ss.srv.opts.SASL == nil {
		return nil
	}
	return ss.srv.opts.SASL.Names(ss.conninfo())
}

// RFC 5034 AUTH mechanism [initial-response]. Without arguments it lists
// the mechanisms, as many clients (fetchmail among them) probe that way.
func (ss *session) cmdAuth(c *wire.Command) error {
	names := ss.saslNames()
	if len(c.Args) == 0 {
		ss.reply("+OK " + ss.text(textMechanisms) + "\r\n")
		for _, n := range names {
			ss.reply(n + "\r\n")
		}
		return ss.ok(".\r\n")
	}
	if len(c.Args) > 2 {
		return usage("AUTH mechanism [initial-response]")
	}
	if ss.srv.opts.SASL == nil {
		return badCommand(errUnknownMechanism)
	}
	mech, err := ss.srv.opts.SASL.New(c.Args[0], ss.conninfo())
	if err != nil {
		// sasl.ErrCleartextRefused: told why; else simply unknown.
		return err
	}
	var resp []byte // nil: no initial response
	if len(c.Args) == 2 {
		if resp, err = decodeResponse(c.Args[1]); err != nil {
			return badCommand(errSASLBase64IR)
		}
	}
	mechAttr := slog.String("mech", c.Args[0])
	for step := 0; ; step++ {
		if step > 10 {
			return badCommand(errSASLTooLong)
		}
		// Each step may check credentials: bounded per address and
		// cancelled when the client hangs up, as PASS is.
		var challenge []byte
		var done bool
		if err := ss.check(func(ctx context.Context) (err error) {
			challenge, done, err = mech.Next(ctx, resp)
			switch {
			case errors.Is(err, sasl.ErrAuthFailed) || errors.Is(err, sasl.ErrMalformed):
				return ss.saslFailed(mech, c.Args[0])
			case err != nil:
				return failed(opAuthenticate, err, mechAttr)
			}
			return nil
		}); err != nil {
			return err
		}
		if done && challenge == nil {
			return ss.saslDone(mech)
		}
		// A challenge; or additional data with success, which POP3 sends
		// as a challenge answered by an empty response (RFC 5034 §4).
		ss.conn.w.WriteString("+ " + base64.StdEncoding.EncodeToString(challenge) + "\r\n")
		if ss.tracing {
			ss.trace("s", "+ "+redacted)
		}
		if !ss.flush() {
			return errWriteFailed
		}
		line, err := readLongLine(ss.conn.br, maxSASLLine)
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				return badCommand(errSASLLineTooLong)
			}
			ss.endOnReadError(err)
			return endSession("")
		}
		if ss.tracing {
			ss.trace("c", redacted)
		}
		if string(line) == "*" {
			return badCommand(errSASLCanceled)
		}
		if resp, err = decodeResponse(string(line)); err != nil {
			return badCommand(errSASLBase64)
		}
		if done {
			if len(resp) != 0 {
				return ss.saslFailed(mech, c.Args[0])
			}
			return ss.saslDone(mech)
		}
	}
}

// saslFailed is a failed exchange, counted and logged against the user
// the client named (the user name of PLAIN, LOGIN and SCRAM), as a
// failed PASS is: the per-user delay applies to guesses through AUTH
// too, and one user's failures never slow another's login.
func (ss *session) saslFailed(mech sasl.Server, name string) error {
	return &authFailure{user: sasl.AttemptedUser(mech), mech: name, reply: errSASLFailed}
}

// saslDone opens the maildrop after a successful exchange. As after PASS,
// the failures forgotten are those of the name the client gave.
func (ss *session) saslDone(mech sasl.Server) error {
	typed := sasl.AttemptedUser(mech)
	if typed == "" {
		typed = mech.User()
	}
	return ss.openMaildrop(typed, mech.User())
}

// decodeResponse decodes a base64 client response; "=" is the empty
// response (RFC 5034 §4).
func decodeResponse(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// readLongLine reads a line of up to max octets, which may exceed the
// reader's buffer (RFC 5034 continuation lines carry OAuth tokens).
func readLongLine(br *bufio.Reader, max int) ([]byte, error) {
	var acc []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(acc)+len(frag) > max {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil {
				return nil, err
			}
			return nil, wire.ErrLineTooLong
		}
		acc = append(acc, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return nil, err
		}
		acc = acc[:len(acc)-1]
		if n := len(acc); n > 0 && acc[n-1] == '\r' {
			acc = acc[:n-1]
		}
		return acc, nil
	}
}
