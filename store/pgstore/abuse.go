package pgstore

import (
	"context"
	"net/netip"
	"sync"
	"time"
)

// Abuse is the login abuse state shared by the nodes of a cluster in the
// database (postie_abuse_addrs, postie_abuse_users, postie_login_times):
// failure counts, bans and the LOGIN-DELAY clock. It implements
// pop3server.AbuseStore; each call is one round trip bounded by
// Options.Timeout.
type Abuse struct {
	s *Store

	mu        sync.Mutex
	lastSweep time.Time
}

// sweepEvery is how often Bans also deletes the failures that expired.
const sweepEvery = time.Minute

// Abuse returns the Store's shared abuse state.
func (s *Store) Abuse() *Abuse { return &Abuse{s: s} }

func seconds(d time.Duration) float64 { return d.Seconds() }

func fromSeconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }

// LoginFailure records a failed login (see pop3server.AbuseStore).
func (a *Abuse) LoginFailure(ctx context.Context, addr netip.Addr, user string, memory time.Duration, banAfter int, banFor time.Duration) (addrFails, userFails int, banLeft time.Duration, err error) {
	ctx, cancel := a.s.op(ctx)
	defer cancel()
	var left float64
	err = a.s.pool.QueryRow(ctx, `SELECT addr_fails, user_fails, ban_left FROM postie_login_failure($1::inet, $2, make_interval(secs => $3), $4, make_interval(secs => $5))`,
		addr.String(), user, seconds(memory), banAfter, seconds(banFor)).Scan(&addrFails, &userFails, &left)
	if err != nil {
		return 0, 0, 0, dbError("login failure", err)
	}
	return addrFails, userFails, fromSeconds(left), nil
}

// LoginSuccess records a login and applies LOGIN-DELAY (see
// pop3server.AbuseStore).
func (a *Abuse) LoginSuccess(ctx context.Context, addr netip.Addr, user, maildrop string, delay time.Duration) (bool, error) {
	ctx, cancel := a.s.op(ctx)
	defer cancel()
	var ok bool
	err := a.s.pool.QueryRow(ctx, `SELECT postie_login_success($1::inet, $2, $3, make_interval(secs => $4))`,
		addr.String(), user, maildrop, seconds(delay)).Scan(&ok)
	if err != nil {
		return false, dbError("login", err)
	}
	return ok, nil
}

// maxBans bounds the bans read at once.
const maxBans = 100000

// Bans returns the addresses banned now (see pop3server.AbuseStore). Once
// a minute it first deletes the failures forgotten.
func (a *Abuse) Bans(ctx context.Context) (map[netip.Addr]time.Duration, error) {
	ctx, cancel := a.s.op(ctx)
	defer cancel()
	a.mu.Lock()
	sweep := time.Since(a.lastSweep) >= sweepEvery
	if sweep {
		a.lastSweep = time.Now()
	}
	a.mu.Unlock()
	if sweep {
		_, err := a.s.pool.Exec(ctx, `WITH a AS (DELETE FROM postie_abuse_addrs WHERE expires < now() AND banned_until < now())
			DELETE FROM postie_abuse_users WHERE expires < now()`)
		if err != nil {
			return nil, dbError("sweeping abuse state", err)
		}
	}
	rows, err := a.s.pool.Query(ctx, `SELECT host(addr), extract(epoch FROM banned_until - now())::float8 FROM postie_abuse_addrs
		WHERE banned_until > now() ORDER BY banned_until DESC LIMIT $1`, maxBans)
	if err != nil {
		return nil, dbError("bans", err)
	}
	defer rows.Close()
	bans := map[netip.Addr]time.Duration{}
	for rows.Next() {
		var host string
		var left float64
		if err := rows.Scan(&host, &left); err != nil {
			return nil, dbError("bans", err)
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			bans[ip] = fromSeconds(left)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, dbError("bans", err)
	}
	return bans, nil
}
