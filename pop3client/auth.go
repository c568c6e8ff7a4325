package pop3client

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"strings"

	"github.com/postie-mail/postie/pop3"
)

// Login authenticates with USER and PASS (RFC 1939 §7). A wrong password
// is an *Error, usually with code [AUTH]; a locked maildrop has [IN-USE].
func (c *Client) Login(ctx context.Context, user, pass string) error {
	if err := checkArg("USER", user); err != nil {
		return err
	}
	if err := checkArg("PASS", pass); err != nil {
		return err
	}
	if !c.secure() {
		return ErrInsecure
	}
	return c.op(ctx, "USER", func() error {
		if _, err := c.command("USER", "USER "+user, "USER "+user); err != nil {
			return err
		}
		if _, err := c.command("PASS", "PASS "+pass, "PASS ***"); err != nil {
			return err
		}
		c.loggedIn("USER/PASS")
		return nil
	})
}

// APOP authenticates with the MD5 digest of the greeting's timestamp and
// the shared secret (RFC 1939 §7), which does not send the secret itself
// (but MD5 digests are cheap to attack offline: prefer TLS and SASL). It
// fails with ErrNoAPOP if the greeting had no timestamp.
func (c *Client) APOP(ctx context.Context, user, secret string) error {
	if err := checkArg("APOP", user); err != nil {
		return err
	}
	if c.timestamp == "" {
		return ErrNoAPOP
	}
	sum := md5.Sum([]byte(c.timestamp + secret))
	digest := hex.EncodeToString(sum[:])
	return c.op(ctx, "APOP", func() error {
		if _, err := c.command("APOP", "APOP "+user+" "+digest, "APOP "+user+" ***"); err != nil {
			return err
		}
		c.loggedIn("APOP")
		return nil
	})
}

// Auth authenticates with a SASL mechanism (RFC 5034). The initial
// response goes on the AUTH line only when the whole line fits in 255
// octets; otherwise it is sent after the server's empty "+ " challenge.
// When the mechanism fails on a challenge, the exchange is canceled with
// "*" and the mechanism's error returned; the connection stays usable.
// A refusal is an *Error; for OAUTHBEARER and XOAUTH2 its Details hold
// the server's reason, an *OAuthError. Mechanisms are used once.
func (c *Client) Auth(ctx context.Context, mech SASLMechanism) error {
	if b, ok := mech.(interface{ setTLS(*tls.ConnectionState) }); ok {
		if st, ok := c.TLSConnectionState(); ok {
			b.setTLS(&st)
		}
	}
	name, ir, err := mech.Start()
	if err != nil {
		return &opError{cmd: "AUTH", err: err, usable: true}
	}
	cmd := "AUTH " + name
	if name == "" || !printable(name) {
		return &opError{cmd: "AUTH", err: errors.New("invalid mechanism name"), usable: true}
	}
	if cleartextMech(name) && !c.secure() {
		return ErrInsecure
	}
	return c.op(ctx, cmd, func() error { return c.auth(ctx, cmd, mech, ir) })
}

func (c *Client) auth(ctx context.Context, cmd string, mech SASLMechanism, ir []byte) error {
	line, shown := cmd, cmd
	var pending string // the initial response, when too long for the AUTH line
	if ir != nil {
		enc := "=" // RFC 5034 §4: an empty initial response
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc)+2 <= pop3.MaxCommandLine {
			line, shown = line+" "+enc, shown+" ***"
		} else {
			pending = enc
		}
	}
	if len(line)+2 > pop3.MaxCommandLine {
		return &opError{cmd: cmd, err: errors.New("mechanism name too long"), usable: true}
	}
	c.writeLine(line, shown)
	if err := c.flush(cmd); err != nil {
		return err
	}
	for {
		raw, err := c.readLine(c.br, cmd, maxChallenge)
		if err != nil {
			return err
		}
		c.trace("S", string(raw))
		chal, isChal := challenge(raw)
		if !isChal {
			if len(raw)+2 > maxStatusLine {
				return protoErr(cmd, ErrLineTooLong, nil)
			}
			if _, err := parseStatus(cmd, raw); err != nil {
				var perr *Error
				if errors.As(err, &perr) {
					if d, ok := mech.(interface{ serverError() error }); ok {
						perr.Details = d.serverError()
					}
				}
				return err
			}
			return c.authDone(cmd, mech)
		}
		var resp string
		if pending != "" {
			// The empty challenge that asks for the initial response.
			resp, pending = pending, ""
		} else {
			data, err := decodeChallenge(chal)
			if err != nil {
				return c.cancelAuth(cmd, protoErr(cmd, ErrMalformed, raw))
			}
			r, err := next(ctx, mech, data)
			if cerr := ctxErr(ctx); cerr != nil {
				return &opError{cmd: cmd, err: cerr}
			}
			if err != nil {
				return c.cancelAuth(cmd, err)
			}
			resp = base64.StdEncoding.EncodeToString(r)
		}
		// Continuation lines are not bound by the 255-octet limit: long
		// OAuth tokens travel here (RFC 5034 §4).
		c.writeLine(resp, "***")
		if err := c.flush(cmd); err != nil {
			return err
		}
	}
}

// next runs mech.Next so that ctx is heeded even while a mechanism
// computes (SCRAM's PBKDF2 takes as many iterations as the server asks
// for); a step abandoned this way finishes in the background.
func next(ctx context.Context, mech SASLMechanism, challenge []byte) ([]byte, error) {
	if ctx.Done() == nil {
		return mech.Next(challenge)
	}
	type result struct {
		resp []byte
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := mech.Next(challenge)
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		return r.resp, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// challenge recognizes a server challenge line, "+ " and base64, or a
// bare "+" for an empty one.
func challenge(line []byte) ([]byte, bool) {
	switch {
	case len(line) == 1 && line[0] == '+':
		return nil, true
	case len(line) >= 2 && line[0] == '+' && line[1] == ' ':
		return line[2:], true
	}
	return nil, false
}

func decodeChallenge(b []byte) ([]byte, error) {
	s := strings.TrimSpace(string(b))
	data, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		// Some servers leave out the padding.
		data, err = base64.RawStdEncoding.DecodeString(s)
	}
	return data, err
}

// cancelAuth answers a challenge with "*" (RFC 5034 §4) and reads the
// server's -ERR. The mechanism's error is returned; the connection stays
// in step.
func (c *Client) cancelAuth(cmd string, cause error) error {
	c.writeLine("*", "*")
	if err := c.flush(cmd); err != nil {
		return err
	}
	_, err := c.readStatus(cmd)
	var perr *Error
	if !errors.As(err, &perr) {
		if err == nil {
			// Logged in after all, by a server that ignored "*".
			return &opError{cmd: cmd, err: errors.New("server accepted a canceled authentication: " + cause.Error())}
		}
		return err
	}
	var pe *ProtocolError
	if errors.As(cause, &pe) {
		return cause
	}
	return &opError{cmd: cmd, err: cause, usable: true}
}

// authDone completes a login accepted with +OK. A mechanism that
// authenticates the server too (SCRAM) must have seen proof of it; if not,
// the connection is dropped.
func (c *Client) authDone(cmd string, mech SASLMechanism) error {
	if v, ok := mech.(interface{ verified() error }); ok {
		if err := v.verified(); err != nil {
			return &opError{cmd: cmd, err: err}
		}
	}
	c.loggedIn(strings.TrimPrefix(cmd, "AUTH "))
	return nil
}

// loggedIn notes the move to the TRANSACTION state, where the
// capabilities may differ (RFC 2449 §5).
func (c *Client) loggedIn(how string) {
	c.caps = nil
	c.log.Debug("pop3 logged in", "method", how)
}

// cleartextMech reports whether a mechanism puts the password or token
// itself on the wire.
func cleartextMech(name string) bool {
	switch strings.ToUpper(name) {
	case "PLAIN", "LOGIN", "XOAUTH2", "OAUTHBEARER":
		return true
	}
	return false
}

// secure reports whether credentials may be sent: over TLS, to a loopback
// or local-socket peer, or when the options allow it.
func (c *Client) secure() bool {
	if c.isTLS || c.opts.AllowInsecureAuth {
		return true
	}
	switch a := c.raw.RemoteAddr().(type) {
	case *net.TCPAddr:
		return a.IP.IsLoopback()
	case *net.UnixAddr:
		return true
	}
	return false
}
