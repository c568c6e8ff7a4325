package main

import (
	"context"
	"log/slog"

	"github.com/postie-mail/postie/config"
	"github.com/postie-mail/postie/pop3server"
)

// setTrace makes t select what the [log] trace keys of l name, and says
// so in the log; a selection that cannot show (the log level is above
// debug) is warned about.
func setTrace(t *pop3server.Trace, l config.Log, log *slog.Logger) {
	prefixes := l.TracePrefixes()
	t.Set(l.TraceUsers, prefixes)
	if len(l.TraceUsers) == 0 && len(prefixes) == 0 {
		return
	}
	log.Info("protocol trace", "users", l.TraceUsers, "addresses", prefixes)
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		log.Warn("log.trace_users or log.trace_addresses is set, but log.level is not debug: no trace is logged")
	}
}

// reloadTrace re-reads the trace selection from the configuration file
// (SIGHUP); the rest of the file is not applied until a restart.
func (a *app) reloadTrace(t *pop3server.Trace, log *slog.Logger) {
	c, err := a.loadConfig()
	if err != nil {
		log.Error("reloading the trace selection failed; keeping the previous one", "err", err)
		return
	}
	setTrace(t, c.Log, log)
	if len(c.Log.TraceUsers) == 0 && len(c.Log.TraceAddresses) == 0 {
		log.Info("protocol trace off")
	}
}
