package iam

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// Retention keeps what is younger than Keep and deletes the rest in
// batches, as the clock moves; Keep 0 deletes nothing; Run sweeps once it
// leads, then every Every.
func TestAuditRetention(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			st, err := store.Open(ctx, storetest.DSN(t, kind), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			c := clocktest.New(0)
			var evs []store.AuditEvent
			for i := range 25 { // one an hour, the newest now
				evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%02d", i), At: c.Now().Add(-time.Duration(24-i) * time.Hour),
					InstanceID: "inst", Actor: "user:a", Action: "x", Object: "x", Outcome: "success"})
			}
			if err := st.InsertAuditEvents(ctx, evs); err != nil {
				t.Fatal(err)
			}
			left := func() int {
				list, err := st.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst"})
				if err != nil {
					t.Fatal(err)
				}
				return len(list)
			}
			var paused int
			r := &AuditRetention{Store: st, Keep: 10*time.Hour + time.Minute, Batch: 4, Now: c.Now,
				Sleep: func(context.Context, time.Duration) { paused++ }}
			n, err := r.Sweep(ctx)
			if err != nil || n != 14 || left() != 11 {
				t.Fatalf("sweep: deleted %d (%v), %d left; want 14 deleted and the 11 of the last 10 h kept", n, err, left())
			}
			if paused != 3 { // batches of 4, 4, 4, then 2: a pause after each full one
				t.Errorf("paused %d times between batches; want 3", paused)
			}
			c.Add(5 * time.Hour)
			if n, _ := r.Sweep(ctx); n != 5 || left() != 6 {
				t.Fatalf("five hours later: deleted %d, %d left; want 5 and 6", n, left())
			}
			if n, _ := (&AuditRetention{Store: st, Keep: 0, Now: c.Now}).Sweep(ctx); n != 0 || left() != 6 {
				t.Fatalf("Keep 0 deleted %d", n)
			}

			// Run sweeps on the leader, then every Every.
			c.Add(3 * time.Hour)
			swept := make(chan int64, 4)
			runCtx, stop := context.WithCancel(ctx)
			defer stop()
			step := make(chan struct{})
			r2 := &AuditRetention{Store: st, Keep: 10*time.Hour + time.Minute, Now: c.Now, Every: time.Hour,
				Sleep: func(ctx context.Context, _ time.Duration) {
					select {
					case <-step:
					case <-ctx.Done():
					}
				},
				OnSwept: func(n int64) { swept <- n }}
			go r2.Run(runCtx)
			if n := <-swept; n != 3 || left() != 3 {
				t.Fatalf("first run sweep: %d, %d left; want 3 and 3", n, left())
			}
			c.Add(time.Hour)
			step <- struct{}{}
			if n := <-swept; n != 1 || left() != 2 {
				t.Fatalf("second run sweep: %d, %d left; want 1 and 2", n, left())
			}
		})
	}
}
