package main

import (
	"log/slog"

	"github.com/postie-mail/postie/pop3client"
)

// levelNames names the levels below Debug in log lines: the protocol
// trace of --debug is "TRACE", not slog's "DEBUG-4".
func levelNames(groups []string, a slog.Attr) slog.Attr {
	if a.Key != slog.LevelKey || len(groups) > 0 {
		return a
	}
	if lvl, ok := a.Value.Any().(slog.Level); ok && lvl == pop3client.LevelTrace {
		return slog.String(slog.LevelKey, "TRACE")
	}
	return a
}
