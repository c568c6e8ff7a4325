package main

import (
	"context"
	"log/slog"
	"net"
	"sort"
	"strings"

	"github.com/postie-mail/postie/internal/exitcode"
	"github.com/postie-mail/postie/internal/systemd"
)

// service is serve's link to systemd: the sockets it passed in and the
// status messages of a Type=notify service. Outside systemd it does
// nothing.
type service struct {
	n      *systemd.Notifier
	log    *slog.Logger
	cancel context.CancelFunc
}

// newService takes the sockets systemd passed in (nil when none) and
// starts the watchdog pings when WatchdogSec= asks for them.
func newService(log *slog.Logger) (*service, map[string][]net.Listener, error) {
	activated, err := systemd.Listeners()
	if err != nil {
		return nil, nil, withCode(exitcode.Config, err)
	}
	if len(activated) > 0 {
		var names []string
		for name, lns := range activated {
			for range lns {
				names = append(names, name)
			}
		}
		sort.Strings(names)
		log.Info("sockets passed in by systemd", "names", strings.Join(names, ","))
	}
	n, err := systemd.NewNotifier()
	if err != nil {
		log.Error("not talking to systemd", "err", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &service{n: n, log: log, cancel: cancel}
	if iv := n.WatchdogInterval(); iv > 0 {
		log.Info("systemd watchdog", "timeout", iv.String())
		go n.Watchdog(ctx, nil)
	}
	return s, activated, nil
}

func (s *service) send(err error) {
	if err != nil {
		s.log.Warn("telling systemd", "err", err)
	}
}

// ready: serving (READY=1), also at the end of a reload.
func (s *service) ready(status string) { s.send(s.n.Ready(status)) }

// reloading: a SIGHUP reload started.
func (s *service) reloading() { s.send(s.n.Reloading()) }

// stopping: shutting down.
func (s *service) stopping() { s.send(s.n.Stopping()) }

// close stops the watchdog pings.
func (s *service) close() { s.cancel() }
