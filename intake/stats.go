package intake

import "sync/atomic"

// Stats are a Deliverer's counters since New, for metrics: one count per
// recipient delivery, whatever the way in (LMTP, SMTP, deliver).
type Stats struct {
	Delivered      uint64 // messages stored
	DeliveredBytes uint64 // their octets as stored, trace fields included
	Refused        uint64 // permanent failures at delivery (over quota, too big)
	Deferred       uint64 // temporary failures (4xx, EX_TEMPFAIL): disk full, I/O errors
}

type counters struct {
	delivered, deliveredBytes, refused, deferred atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (d *Deliverer) Stats() Stats {
	return Stats{
		Delivered:      d.stats.delivered.Load(),
		DeliveredBytes: d.stats.deliveredBytes.Load(),
		Refused:        d.stats.refused.Load(),
		Deferred:       d.stats.deferred.Load(),
	}
}
