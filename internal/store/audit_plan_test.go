package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// fillAudit writes n events of instance "i1" (and n/4 of "i2", so the
// instance condition matters) over n minutes: 50 actors, 10 actions, 2,000
// objects, then refreshes the statistics as the control plane does after
// many writes.
func fillAudit(t *testing.T, s store.Store, n int) {
	t.Helper()
	ctx := context.Background()
	base := clocktest.Epoch()
	var evs []store.AuditEvent
	for i := range n + n/4 {
		inst := "i1"
		if i >= n {
			inst = "i2"
		}
		evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%07d", i), At: base.Add(time.Duration(i%n) * time.Minute), InstanceID: inst,
			Actor: fmt.Sprintf("user:u%02d", i%50), Action: fmt.Sprintf("action%d", i%10), Object: fmt.Sprintf("apiKey/k%04d", i%2000),
			Outcome: "success", Source: "127.0.0.1", RequestID: "r"})
	}
	for len(evs) > 0 {
		k := min(len(evs), 5000)
		if err := s.InsertAuditEvents(ctx, evs[:k]); err != nil {
			t.Fatal(err)
		}
		evs = evs[k:]
	}
	if err := s.AnalyzeAudit(ctx); err != nil {
		t.Fatalf("analyze: %v", err)
	}
}

// TestAuditQueriesUseTheirIndex checks the query plan of every filter
// GET /api/v1/audit offers, first page and a later one (keyset), on each
// store: the events are read through the filter's index in the answer's
// order — no scan of the table, no sort — so a page costs the same at a
// million events as at a thousand. Two filters at once use one of their
// indexes.
func TestAuditQueriesUseTheirIndex(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		fillAudit(t, s, 20000)
		base := clocktest.Epoch()
		below := store.AuditCursor{At: base.Add(9000 * time.Minute), ID: "ev0009000"}
		cases := []struct {
			name  string
			f     store.AuditFilter
			index []string // the plan uses one of these
			// combined says two filters are set: the planner may read
			// one's index and sort what matches both, when it expects
			// few rows; it must still not scan the table.
			combined bool
		}{
			{"no filter", store.AuditFilter{}, []string{"audit_events_instance_at_id"}, false},
			{"actor", store.AuditFilter{Actor: "user:u07"}, []string{"audit_events_actor"}, false},
			{"action", store.AuditFilter{Action: "action3"}, []string{"audit_events_action"}, false},
			{"object", store.AuditFilter{Object: "apiKey/k0042"}, []string{"audit_events_object"}, false},
			{"time", store.AuditFilter{Since: base.Add(5000 * time.Minute), Until: base.Add(6000 * time.Minute)}, []string{"audit_events_instance_at_id"}, false},
			{"actor, next page", store.AuditFilter{Actor: "user:u07", Below: below}, []string{"audit_events_actor"}, false},
			{"action, next page", store.AuditFilter{Action: "action3", Below: below}, []string{"audit_events_action"}, false},
			{"object, next page", store.AuditFilter{Object: "apiKey/k0042", Below: below}, []string{"audit_events_object"}, false},
			{"time, next page", store.AuditFilter{Since: base.Add(5000 * time.Minute), Until: base.Add(9500 * time.Minute), Below: below}, []string{"audit_events_instance_at_id"}, false},
			{"actor and time", store.AuditFilter{Actor: "user:u07", Since: base.Add(5000 * time.Minute), Until: base.Add(6000 * time.Minute)}, []string{"audit_events_actor", "audit_events_instance_at_id"}, true},
			{"actor and action", store.AuditFilter{Actor: "user:u07", Action: "action7"}, []string{"audit_events_actor", "audit_events_action"}, true},
		}
		for _, c := range cases {
			c.f.InstanceID, c.f.Limit = "i1", 101
			plan, err := store.ExplainAuditList(ctx, s, c.f)
			if err != nil {
				t.Fatalf("%s: explain: %v", c.name, err)
			}
			low := strings.ToLower(plan)
			sorted := strings.Contains(low, "sort") || strings.Contains(low, "temp b-tree")
			bad := strings.Contains(low, "seq scan") || (sorted && !c.combined) ||
				(s.Kind() == "sqlite" && strings.Contains(low, "scan audit_events") && !strings.Contains(low, "using index"))
			if bad || !slices.ContainsFunc(c.index, func(ix string) bool { return strings.Contains(plan, ix) }) {
				t.Errorf("%s: the plan does not read %v in order:\n%s", c.name, c.index, plan)
			}
		}
	})
}

// TestAuditFiltersByActionAndObject: each filter lists exactly its events,
// newest first, and pages through them with the keyset cursor.
func TestAuditFiltersByActionAndObject(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		base := clocktest.Epoch()
		var evs []store.AuditEvent
		for i := range 30 {
			evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%02d", i), At: base.Add(time.Duration(i/2) * time.Second), InstanceID: "i1",
				Actor: "user:a", Action: fmt.Sprintf("act%d", i%3), Object: fmt.Sprintf("obj%d", i%5), Outcome: "success"})
		}
		if err := s.InsertAuditEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		for _, f := range []store.AuditFilter{{Action: "act1"}, {Object: "obj2"}, {Action: "act1", Object: "obj2"}} {
			var want []string
			for i := len(evs) - 1; i >= 0; i-- {
				e := evs[i]
				if (f.Action == "" || e.Action == f.Action) && (f.Object == "" || e.Object == f.Object) {
					want = append(want, e.ID)
				}
			}
			f.InstanceID, f.Limit = "i1", 2
			var got []string
			for {
				page, err := s.ListAuditEvents(ctx, f)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range page {
					got = append(got, e.ID)
				}
				if len(page) < f.Limit {
					break
				}
				last := page[len(page)-1]
				f.Below = store.AuditCursor{At: last.At, ID: last.ID}
			}
			if !slices.Equal(got, want) {
				t.Errorf("filter action=%q object=%q pages to %v; want %v", f.Action, f.Object, got, want)
			}
		}
	})
}

// TestAnalyzeAuditGathersStatistics: the refresh the control plane runs
// after many audit writes leaves the planner statistics of the audit
// table in the store.
func TestAnalyzeAuditGathersStatistics(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		var evs []store.AuditEvent
		for i := range 200 {
			evs = append(evs, store.AuditEvent{ID: fmt.Sprintf("ev%03d", i), At: clocktest.Epoch().Add(time.Duration(i) * time.Second),
				InstanceID: "i1", Actor: fmt.Sprintf("user:u%d", i%7), Action: "token.issue", Object: "k", Outcome: "success"})
		}
		if err := s.InsertAuditEvents(ctx, evs); err != nil {
			t.Fatal(err)
		}
		if n, err := store.AuditStatistics(ctx, s); err != nil || n != 0 {
			t.Fatalf("before ANALYZE: %d statistics (%v); want none", n, err)
		}
		if err := s.AnalyzeAudit(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := store.AuditStatistics(ctx, s); err != nil || n == 0 {
			t.Fatalf("after ANALYZE: %d statistics (%v); want some", n, err)
		}
	})
}
