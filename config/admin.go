package config

// Admin configures the operators' HTTP listener: Prometheus metrics on
// /metrics, liveness on /healthz and readiness on /readyz.
type Admin struct {
	// Listen is the host:port of the admin listener; "" runs none. It
	// has no authentication: keep it on loopback or a management network.
	Listen string `toml:"listen"`
}

func (c *Config) adminProblems(bad func(key, format string, args ...any)) {
	if c.Admin.Listen == "" {
		return
	}
	if err := checkListen(c.Admin.Listen); err != nil {
		bad("admin.listen", "%q: %v", c.Admin.Listen, err)
	}
}
