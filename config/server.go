package config

import "strings"

// Server configures the process of `postie serve`: the account it runs
// as. Started as root, serve binds its listeners and then switches to
// User and Group (dropping every supplementary group) before it reads a
// message or a user's maildrop. Started as root without User, serve
// refuses to run (except with --dev).
type Server struct {
	// User is the account (name or numeric id) serve runs as once its
	// listeners are bound; "" = no switch.
	User string `toml:"user"`
	// Group is the group (name or numeric id) serve runs as; "" = the
	// primary group of User.
	Group string `toml:"group"`
	// Node names this node in every log line, in the metrics
	// (postie_node_info) and in the PostgreSQL store's lease rows; ""
	// = the host name.
	Node string `toml:"node"`
}

func (c *Config) serverProblems(bad func(key, format string, args ...any)) {
	for _, kv := range []struct{ key, v string }{{"server.user", c.Server.User}, {"server.group", c.Server.Group}} {
		if strings.ContainsFunc(kv.v, func(r rune) bool { return r <= ' ' || r == ':' || r == 0x7f }) {
			bad(kv.key, "%q is not an account name or number", kv.v)
		}
	}
	if n := c.Server.Node; len(n) > 255 || strings.ContainsFunc(n, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("server.node", "%q: want up to 255 characters without spaces or control characters", n)
	}
	if c.Server.User == "" && c.Server.Group != "" {
		bad("server.group", "needs server.user")
	}
}
