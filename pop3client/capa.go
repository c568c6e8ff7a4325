package pop3client

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/postie-mail/postie/pop3"
)

// Caps is a server's capability list (RFC 2449 §5): each capability name,
// upper-cased, with its arguments. Names are the pop3.Cap* constants and
// whatever else a server announces.
type Caps map[string][]string

// Has reports whether the server announced the capability.
func (c Caps) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// Args returns the capability's arguments (nil if it has none or is
// absent).
func (c Caps) Args(name string) []string { return c[strings.ToUpper(name)] }

// SASL returns the announced SASL mechanisms (RFC 5034 §6), upper-cased.
func (c Caps) SASL() []string {
	var m []string
	for _, a := range c[pop3.CapSASL] {
		m = append(m, strings.ToUpper(a))
	}
	return m
}

// HasSASL reports whether the SASL mechanism mech is announced.
func (c Caps) HasSASL(mech string) bool {
	return slices.Contains(c.SASL(), strings.ToUpper(mech))
}

// Capabilities returns the server's capabilities, asking with CAPA once
// per state: the answer is kept until STLS or login, after which the
// server may announce different ones (RFC 2449 §5, RFC 2595 §4). A server
// without CAPA (it answers -ERR) has no capabilities: that is not an
// error.
func (c *Client) Capabilities(ctx context.Context) (Caps, error) {
	if c.caps == nil {
		if err := c.op(ctx, "CAPA", c.capa); err != nil {
			return nil, err
		}
	} else if err := c.usable(); err != nil {
		return nil, err
	}
	return maps.Clone(c.caps), nil
}

// capa asks CAPA and stores the result.
func (c *Client) capa() error {
	caps := Caps{}
	if _, err := c.command("CAPA", "CAPA", "CAPA"); err != nil {
		var perr *Error
		if errors.As(err, &perr) {
			c.caps = caps
			return nil
		}
		return err
	}
	err := c.readListing("CAPA", func(line []byte) error {
		f := strings.Fields(string(line))
		if len(f) > 0 {
			caps[strings.ToUpper(f[0])] = f[1:]
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.trace("S", "(capabilities: "+strings.Join(slices.Sorted(maps.Keys(caps)), " ")+")")
	c.caps = caps
	return nil
}

// ensureCaps asks CAPA if the capabilities of the current state are not
// known yet.
func (c *Client) ensureCaps() error {
	if c.caps != nil {
		return nil
	}
	return c.capa()
}

// pipelining reports whether commands may be sent in batches (RFC 2449
// §6.6). The capabilities must be known.
func (c *Client) pipelining() bool { return c.caps.Has(pop3.CapPipelining) }

// STLS upgrades the connection to TLS (RFC 2595 §4), verifying the server
// as Options say, then asks CAPA again, as the RFC requires: what the
// server announced in the clear is forgotten. A refusal is an *Error and
// leaves the plain connection usable.
func (c *Client) STLS(ctx context.Context) error {
	return c.op(ctx, "STLS", func() error {
		if c.isTLS {
			return &opError{cmd: "STLS", err: errors.New("connection already uses TLS"), usable: true}
		}
		if err := c.stls(ctx); err != nil {
			return err
		}
		return c.capa()
	})
}

func (c *Client) stls(ctx context.Context) error {
	if _, err := c.command("STLS", "STLS", "STLS"); err != nil {
		return err
	}
	if n := c.br.Buffered(); n > 0 {
		// Whatever follows +OK in the clear would be read as if it came
		// from inside TLS (the client side of CVE-2011-0411).
		b, _ := c.br.Peek(n)
		return protoErr("STLS", ErrUnexpectedData, b)
	}
	if err := c.handshake(ctx); err != nil {
		return err
	}
	c.caps = nil
	return nil
}
