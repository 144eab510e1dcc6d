package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// TestAuditBatchIsAllOrNothing: a batch of the audit pipeline is written
// whole, every field as given, or not at all — the pipeline acknowledges
// every event of a batch on one outcome, so a batch half written would
// acknowledge events that are not there (or report lost ones that are).
func TestAuditBatchIsAllOrNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		var evs []store.AuditEvent
		for i := range 300 {
			evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("b%03d", i), At: at, InstanceID: "inst1", Actor: "client:c1",
				Action: "token.issue", Object: "apiKey/k1", Outcome: "success", Source: "192.0.2.7", RequestID: fmt.Sprintf("req-%d", i),
				Detail: fmt.Sprintf("jti %d, with 'quotes' and {braces}", i)})
		}
		if err := s.InsertAuditEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Limit: 1000})
		if err != nil || len(got) != len(evs) {
			t.Fatalf("after one batch of %d: %d events, %v", len(evs), len(got), err)
		}
		byID := map[string]store.AuditEvent{}
		for _, e := range got {
			byID[e.ID] = e
		}
		for _, e := range evs {
			if g := byID[e.ID]; g != e {
				t.Fatalf("event %s read back as %+v, written as %+v", e.ID, g, e)
			}
		}

		// The second batch's last event repeats an id: nothing of it is written.
		bad := []store.AuditEvent{
			{ID: "new1", At: at, InstanceID: "inst1", Actor: "a", Action: "x", Object: "o", Outcome: "success"},
			{ID: "new2", At: at, InstanceID: "inst1", Actor: "a", Action: "x", Object: "o", Outcome: "success"},
			evs[0],
		}
		if err := s.InsertAuditEvents(ctx, bad); err == nil {
			t.Fatal("a batch repeating an id was accepted")
		}
		got, _ = s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Limit: 1000})
		if len(got) != len(evs) {
			t.Fatalf("a failed batch left %d events, want %d", len(got), len(evs))
		}
		// So is a batch that one statement writes (four events: one
		// insert of four rows, with no transaction around it).
		if err := s.InsertAuditEvents(ctx, append(bad[:2:2], bad[0], evs[1])); err == nil {
			t.Fatal("a batch of four repeating an id was accepted")
		}
		got, _ = s.ListAuditEvents(ctx, store.AuditFilter{InstanceID: "inst1", Limit: 1000})
		if len(got) != len(evs) {
			t.Fatalf("a failed batch of four left %d events, want %d", len(got), len(evs))
		}
		if err := s.InsertAuditEvents(ctx, nil); err != nil {
			t.Fatalf("an empty batch: %v", err)
		}
	})
}
