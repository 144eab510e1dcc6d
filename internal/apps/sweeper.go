package apps

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// Sweeper deletes expired leases, on the one process that leads among
// those sharing the store. It sleeps until the next expiry the store
// knows of (one indexed MIN query), not polling every row: a lease created
// on this process wakes it earlier when needed. Expired leases have
// already stopped authenticating (that is checked at use); the sweeper
// makes them disappear, audits each, and tells the change feed. On a
// restart or a change of leader it starts with what expired meanwhile.
type Sweeper struct {
	Apps *Service
	Log  *slog.Logger
	// After is the timer; nil: real time. Tests give a fake clock's.
	After func(time.Duration) <-chan time.Time
	// MaxWait bounds one sleep, so leases created by other replicas (which
	// cannot wake this one) are seen in time: 1s when replicas share
	// PostgreSQL; longer is fine for SQLite, which one process owns.
	MaxWait time.Duration
	// Batch bounds the leases deleted in one transaction.
	Batch int
	// Gather is how long past the next expiry the sweeper waits, so that
	// leases expiring close together go in one transaction and one wake-up
	// (the benchmark shows what it saves); zero: wake at each expiry.
	Gather time.Duration

	next  atomic.Int64 // unix ms of the wake-up scheduled; 0: none
	kicks chan struct{}
}

func (w *Sweeper) after(d time.Duration) <-chan time.Time {
	if w.After != nil {
		return w.After(d)
	}
	return time.After(d)
}

// Run sweeps while this process leads, until ctx ends.
func (w *Sweeper) Run(ctx context.Context) {
	if w.Batch <= 0 {
		w.Batch = 500
	}
	if w.MaxWait <= 0 {
		w.MaxWait = time.Minute
	}
	w.kicks = make(chan struct{}, 1)
	w.Apps.mu.Lock()
	w.Apps.kick = w.kick
	w.Apps.mu.Unlock()
	for ctx.Err() == nil {
		lost, release, err := w.Apps.Store.AcquireLeader(ctx, "lease-sweeper")
		if err != nil {
			if ctx.Err() == nil {
				w.Log.Warn("unable to take the lease sweeper leadership", "err", err)
				select {
				case <-ctx.Done():
				case <-w.after(2 * time.Second):
				}
			}
			continue
		}
		w.lead(ctx, lost)
		release()
	}
}

// kick is called for every new lease; it wakes the loop only when the
// lease expires before the wake-up already scheduled.
func (w *Sweeper) kick(t time.Time) {
	if n := w.next.Load(); n != 0 && t.UnixMilli() >= n {
		return
	}
	select {
	case w.kicks <- struct{}{}:
	default:
	}
}

func (w *Sweeper) lead(ctx context.Context, lost <-chan struct{}) {
	for {
		next, err := w.Sweep(ctx)
		wait := w.MaxWait
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			w.Log.Warn("lease sweep failed", "err", err)
			wait = time.Second
		} else if !next.IsZero() {
			if d := next.Sub(w.Apps.now()) + w.Gather; d < wait {
				wait = d
			}
		}
		if wait < 0 {
			wait = 0
		}
		w.next.Store(w.Apps.now().Add(wait).UnixMilli())
		select {
		case <-ctx.Done():
			return
		case <-lost:
			w.Log.Warn("lease sweeper leadership lost")
			return
		case <-w.kicks:
		case <-w.after(wait):
		}
	}
}

// Sweep deletes every lease expired by now and returns the next expiry
// (zero: no lease left).
func (w *Sweeper) Sweep(ctx context.Context) (time.Time, error) {
	batch := w.Batch
	if batch <= 0 {
		batch = 500
	}
	for {
		now := w.Apps.now()
		gone, err := w.Apps.Store.DeleteExpiredLeases(ctx, now, batch)
		if err != nil {
			return time.Time{}, err
		}
		w.audit(ctx, gone)
		w.Apps.emitDeleted(gone, "expired")
		if len(gone) < batch {
			break
		}
	}
	return w.Apps.Store.NextLeaseExpiry(ctx)
}

// audit records the expiry of each lease. The records are sent together
// so the audit pipeline commits them in a few transactions, not one each.
func (w *Sweeper) audit(ctx context.Context, gone []store.AppCredential) {
	var wg sync.WaitGroup
	for _, c := range gone {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := iam.Principal{InstanceID: c.InstanceID, SubjectKind: "system", SubjectName: "lease-sweeper"}
			if err := w.Apps.IAM.Record(ctx, p, "lease.expire", "appCredential/"+c.ID, nil,
				"expired at "+c.ExpiresAt.Format(time.RFC3339Nano)); err != nil {
				w.Log.Warn("unable to audit an expired lease", "lease", c.ID, "err", err)
			}
		}()
	}
	wg.Wait()
}
