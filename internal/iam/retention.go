package iam

import (
	"context"
	"log/slog"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/store"
)

// DefaultAuditRetention is how long audit events are kept when
// --audit-retention is not given.
const DefaultAuditRetention = 90 * 24 * time.Hour

// AuditRetention deletes audit events older than Keep. It runs on the
// one control plane that holds the "audit-retention" leadership, in
// batches of Batch events with a pause between them, so the writes of
// token exchanges never wait long behind it.
type AuditRetention struct {
	Store interface {
		store.IAM
		store.Leadership
	}
	Keep    time.Duration // 0: keep everything (the loop does nothing)
	Every   time.Duration // between sweeps; default one minute
	Batch   int           // events per delete; default 1000
	Pause   time.Duration // between batches of one sweep; default 20 ms
	Now     clock.Func
	Log     *slog.Logger
	Sleep   func(ctx context.Context, d time.Duration) // nil: a timer (tests step it)
	OnSwept func(deleted int64)                        // nil: nothing; tests and metrics observe sweeps
}

// Sweep deletes, batch by batch, every event older than Keep; it returns
// how many went.
func (r *AuditRetention) Sweep(ctx context.Context) (int64, error) {
	if r.Keep <= 0 {
		return 0, nil
	}
	batch := r.Batch
	if batch <= 0 {
		batch = 1000
	}
	cutoff := r.Now.Now().Add(-r.Keep)
	var total int64
	for {
		n, err := r.Store.PruneAuditEvents(ctx, cutoff, batch)
		total += n
		if err != nil || n < int64(batch) {
			return total, err
		}
		if err := r.sleep(ctx, r.pause()); err != nil {
			return total, err
		}
	}
}

func (r *AuditRetention) pause() time.Duration {
	if r.Pause > 0 {
		return r.Pause
	}
	return 20 * time.Millisecond
}

func (r *AuditRetention) sleep(ctx context.Context, d time.Duration) error {
	if r.Sleep != nil {
		r.Sleep(ctx, d)
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run sweeps every Every while this process leads, until ctx ends.
func (r *AuditRetention) Run(ctx context.Context) {
	if r.Keep <= 0 {
		return
	}
	every := r.Every
	if every <= 0 {
		every = time.Minute
	}
	for ctx.Err() == nil {
		lost, release, err := r.Store.AcquireLeader(ctx, "audit-retention")
		if err != nil {
			if ctx.Err() == nil && r.Log != nil {
				r.Log.Warn("unable to take the audit retention leadership", "err", err)
			}
			if r.sleep(ctx, every) != nil {
				return
			}
			continue
		}
		r.lead(ctx, lost, every)
		release()
	}
}

func (r *AuditRetention) lead(ctx context.Context, lost <-chan struct{}, every time.Duration) {
	for {
		n, err := r.Sweep(ctx)
		switch {
		case err != nil && ctx.Err() == nil && r.Log != nil:
			r.Log.Warn("audit retention sweep failed", "err", err, "deleted", n)
		case n > 0 && r.Log != nil:
			r.Log.Info("audit events past retention deleted", "deleted", n, "retention", r.Keep.String())
		}
		if r.OnSwept != nil {
			r.OnSwept(n)
		}
		select {
		case <-lost:
			return
		default:
		}
		if r.sleep(ctx, every) != nil {
			return
		}
	}
}
