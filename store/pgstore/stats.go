package pgstore

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// Stats are a Store's counters and its pool's state, for metrics.
type Stats struct {
	// The connection pool now.
	AcquiredConns, IdleConns, TotalConns, MaxConns int32
	// LeaseRenewals and LeaseRenewalFailures count the statements that
	// renewed the leases of the node's open sessions, and those that
	// failed (the database did not answer in time).
	LeaseRenewals, LeaseRenewalFailures uint64
	// LeasesLost counts sessions whose lease was found taken over at
	// renewal (they delete nothing).
	LeasesLost uint64
	// LeasesTakenOver counts logins that took an expired lease over:
	// a session of a node that died or lost the database.
	LeasesTakenOver uint64
	// LeaseReleaseFailures counts the statements that gave up leases of
	// ended sessions and failed (they are tried again).
	LeaseReleaseFailures uint64
}

type counters struct {
	renewals, renewalFailures, leasesLost, leasesTakenOver, releaseFailures atomic.Uint64
}

// Stats returns the Store's counters and its pool's state.
func (s *Store) Stats() Stats {
	ps := s.pool.Stat()
	return Stats{
		AcquiredConns:        ps.AcquiredConns(),
		IdleConns:            ps.IdleConns(),
		TotalConns:           ps.TotalConns(),
		MaxConns:             ps.MaxConns(),
		LeaseRenewals:        s.stats.renewals.Load(),
		LeaseRenewalFailures: s.stats.renewalFailures.Load(),
		LeasesLost:           s.stats.leasesLost.Load(),
		LeasesTakenOver:      s.stats.leasesTakenOver.Load(),
		LeaseReleaseFailures: s.stats.releaseFailures.Load(),
	}
}

// Ping makes a round trip to the database (waiting for a pooled
// connection included), bounded by Options.Timeout: nil when the
// database answered in time. For readiness checks.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.op(ctx)
	defer cancel()
	if err := s.pool.Ping(ctx); err != nil {
		return dbError("ping", err)
	}
	return nil
}

// roundTripTracer reports the duration of every statement and batch
// (pgx.QueryTracer, pgx.BatchTracer) to observe.
type roundTripTracer struct {
	observe func(time.Duration)
}

type startKey struct{}

func (t roundTripTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, startKey{}, time.Now())
}

func (t roundTripTracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	t.done(ctx)
}

func (t roundTripTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return context.WithValue(ctx, startKey{}, time.Now())
}

func (t roundTripTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (t roundTripTracer) TraceBatchEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchEndData) {
	t.done(ctx)
}

func (t roundTripTracer) done(ctx context.Context) {
	if start, ok := ctx.Value(startKey{}).(time.Time); ok {
		t.observe(time.Since(start))
	}
}
