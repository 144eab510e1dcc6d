package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"
)

// Leadership is held by one process at a time among those sharing a
// store, for work that must not run twice (the reconciler).
type Leadership interface {
	// AcquireLeader blocks until this process leads for name (or ctx
	// ends). lost is closed if leadership is lost (the connection holding
	// it broke); release gives it up.
	AcquireLeader(ctx context.Context, name string) (lost <-chan struct{}, release func(), err error)
}

// AcquireLeader on SQLite leads at once: one process owns the file.
func (s *sqliteStore) AcquireLeader(ctx context.Context, name string) (<-chan struct{}, func(), error) {
	return make(chan struct{}), func() {}, nil
}

// Lease timing on PostgreSQL: a lease lasts leaseTTL past its last
// renewal; the leader renews every leaseRenew and gives up (lost) after
// two renewals failed in a row (three quarters of a lease without one), so
// it stops before another can take over; the others try every leaseRetry.
// A dead or stalled leader is so replaced within leaseTTL+leaseRetry
// (1.25 s). There is no fencing token: a leader paused (SIGSTOP) past its
// lease may act once more after it resumes, before its next renewal tells
// it the lease is gone — the reconciler's work is idempotent.
const (
	leaseTTL   = time.Second
	leaseRenew = 250 * time.Millisecond
	leaseRetry = 250 * time.Millisecond
)

// newLeaseHolder names a store's process in leader_leases: host, pid and
// a random part, so two stores in one process, or a restarted process with
// a reused pid, are different holders.
func newLeaseHolder() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b))
}

const dbNowMS = `CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)`

// AcquireLeader on PostgreSQL takes a lease in leader_leases (migration
// 0017) when it is free or expired, by the database's clock, and renews it
// until released. lost is closed when a renewal finds the lease taken over
// or renewals failed for too long; release deletes the lease, so a
// replica stopping cleanly hands over at once.
func (s *postgresStore) AcquireLeader(ctx context.Context, name string) (<-chan struct{}, func(), error) {
	ttl := leaseTTL.Milliseconds()
	for {
		var holder string
		err := s.db.QueryRowContext(ctx, `INSERT INTO leader_leases (name, holder, expires_at) VALUES ($1, $2, `+dbNowMS+` + $3)
			ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
			WHERE leader_leases.expires_at < `+dbNowMS+` OR leader_leases.holder = EXCLUDED.holder
			RETURNING holder`, name, s.holder, ttl).Scan(&holder)
		switch {
		case err == nil && holder == s.holder:
			return s.holdLease(name, ttl)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			if ctx.Err() != nil {
				return nil, nil, ctx.Err()
			}
			// The database is away: try again, like a taken lease.
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(leaseRetry):
		}
	}
}

// holdLease renews a lease just taken until release, or until it is lost.
func (s *postgresStore) holdLease(name string, ttl int64) (<-chan struct{}, func(), error) {
	lost := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(lost)
		t := time.NewTicker(leaseRenew)
		defer t.Stop()
		failed := 0 // renewals failed in a row, one a tick
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			rctx, cancel := context.WithTimeout(context.Background(), leaseRenew)
			res, err := s.db.ExecContext(rctx, `UPDATE leader_leases SET expires_at = `+dbNowMS+` + $1 WHERE name = $2 AND holder = $3`, ttl, name, s.holder)
			cancel()
			if err == nil {
				if n, _ := res.RowsAffected(); n == 0 {
					return // taken over: another replica leads now
				}
				failed = 0
				continue
			}
			if failed++; time.Duration(failed+2)*leaseRenew >= leaseTTL {
				return // unrenewed for most of a lease: it may soon be another's
			}
		}
	}()
	release := func() {
		close(stop)
		<-lost
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, _ = s.db.ExecContext(rctx, `DELETE FROM leader_leases WHERE name = $1 AND holder = $2`, name, s.holder)
	}
	return lost, release, nil
}
