package pop3server

import "sync/atomic"

// Stats are a server's counters since New, for metrics. Totals only grow;
// Sessions is the number of connections being served now.
type Stats struct {
	Sessions         int    // connections being served now
	SessionsTotal    uint64 // connections accepted
	Refused          uint64 // connections refused: caps, bans, shutdown
	TLSFailures      uint64 // TLS handshakes (implicit or STLS) that failed
	Logins           uint64 // successful logins (maildrop opened)
	AuthFailures     uint64 // failed logins (wrong name or password)
	InUse            uint64 // logins refused with [IN-USE]
	StoreErrors      uint64 // [SYS/TEMP] answers from store or auth trouble
	Retr             uint64 // RETR commands answered with the message
	RetrBytes        uint64 // octets of message sent by RETR
	RetrFromFile     uint64 // RETR answers sent from the message's file (sendfile)
	Top              uint64
	Deleted          uint64 // messages removed by completed QUITs
	BadCommands      uint64 // unknown, malformed or out-of-state commands
	AuthBackendFails uint64 // authenticator errors (not wrong passwords)
	AuthBusy         uint64 // logins refused: too many in progress from the address
	AuthDelayed      uint64 // failed logins answered after a failure delay
}

// counters are updated once per event, never per line sent.
type counters struct {
	sessionsTotal, refused, tlsFailures                  atomic.Uint64
	logins, authFailures, inUse, storeErrors, authErrors atomic.Uint64
	retr, retrBytes, top, deleted, bad                   atomic.Uint64
	authBusy, authDelayed, retrFromFile                  atomic.Uint64
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.conns)
	s.mu.Unlock()
	c := &s.stats
	return Stats{
		Sessions:         n,
		SessionsTotal:    c.sessionsTotal.Load(),
		Refused:          c.refused.Load(),
		TLSFailures:      c.tlsFailures.Load(),
		Logins:           c.logins.Load(),
		AuthFailures:     c.authFailures.Load(),
		InUse:            c.inUse.Load(),
		StoreErrors:      c.storeErrors.Load(),
		Retr:             c.retr.Load(),
		RetrBytes:        c.retrBytes.Load(),
		Top:              c.top.Load(),
		Deleted:          c.deleted.Load(),
		BadCommands:      c.bad.Load(),
		AuthBackendFails: c.authErrors.Load(),
		AuthBusy:         c.authBusy.Load(),
		AuthDelayed:      c.authDelayed.Load(),
		RetrFromFile:     c.retrFromFile.Load(),
	}
}
