package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// Pruning deletes the oldest events first, across instances, at most a
// batch at a time, and never an event at or after the cutoff.
func TestPruneAuditEvents(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		base := clocktest.Epoch()
		var evs []store.AuditEvent
		for i := range 10 {
			evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%02d", i), At: base.Add(time.Duration(i) * time.Hour),
				InstanceID: fmt.Sprintf("inst%d", i%2), Actor: "user:a", Action: "x", Object: "x", Outcome: "success"})
		}
		if err := s.InsertAuditEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		cutoff := base.Add(6 * time.Hour) // ev00..ev05 are older
		n, err := s.PruneAuditEvents(ctx, cutoff, 4)
		if err != nil || n != 4 {
			t.Fatalf("first batch: %d %v; want 4", n, err)
		}
		n, err = s.PruneAuditEvents(ctx, cutoff, 4)
		if err != nil || n != 2 {
			t.Fatalf("second batch: %d %v; want 2", n, err)
		}
		n, err = s.PruneAuditEvents(ctx, cutoff, 4)
		if err != nil || n != 0 {
			t.Fatalf("third batch: %d %v; want 0", n, err)
		}
		var left []string
		for _, inst := range []string{"inst0", "inst1"} {
			list, err := s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: inst})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range list {
				left = append(left, e.ID)
			}
		}
		if fmt.Sprint(left) != "[ev08 ev06 ev09 ev07]" {
			t.Fatalf("left %v; want ev06..ev09", left)
		}
	})
}
