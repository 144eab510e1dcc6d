package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

func TestDashboardSessions(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		if err := s.CreateInstance(ctx, newInstance("inst1", at)); err != nil {
			t.Fatal(err)
		}
		put := func(hash string, created, seen time.Time) {
			t.Helper()
			if err := s.PutDashboardSession(ctx, store.DashboardSession{IDHash: hash, InstanceID: "inst1", IdentityID: "usr-inst1",
				SubjectName: "admin", Epoch: 3, CSRF: "csrf-" + hash, CreatedAt: created, SeenAt: seen}); err != nil {
				t.Fatal(err)
			}
		}
		put("h1", at, at)
		if err := s.PutDashboardSession(ctx, store.DashboardSession{IDHash: "h1", InstanceID: "inst1", IdentityID: "usr-inst1", CreatedAt: at, SeenAt: at}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second put of one id: %v, want a conflict", err)
		}
		got, err := s.GetDashboardSession(ctx, "h1")
		if err != nil || got.InstanceID != "inst1" || got.IdentityID != "usr-inst1" || got.SubjectName != "admin" || got.Epoch != 3 ||
			got.CSRF != "csrf-h1" || !got.CreatedAt.Equal(at) || !got.SeenAt.Equal(at) || got.Flash != "" {
			t.Fatalf("get = %+v, %v", got, err)
		}
		if _, err := s.GetDashboardSession(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown session: %v", err)
		}

		// Activity only moves forward: a replica with an older time does
		// not move it back, and that is not an error.
		if err := s.TouchDashboardSession(ctx, "h1", at.Add(10*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if err := s.TouchDashboardSession(ctx, "h1", at.Add(5*time.Minute)); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.GetDashboardSession(ctx, "h1"); !got.SeenAt.Equal(at.Add(10 * time.Minute)) {
			t.Fatalf("seen = %v, want +10m", got.SeenAt)
		}
		if err := s.TouchDashboardSession(ctx, "nope", at); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("touch of an unknown session: %v", err)
		}

		// A flash is shown once.
		if err := s.SetDashboardSessionFlash(ctx, "h1", "runtime created"); err != nil {
			t.Fatal(err)
		}
		if f, err := s.TakeDashboardSessionFlash(ctx, "h1"); err != nil || f != "runtime created" {
			t.Fatalf("take = %q, %v", f, err)
		}
		if f, err := s.TakeDashboardSessionFlash(ctx, "h1"); err != nil || f != "" {
			t.Fatalf("second take = %q, %v", f, err)
		}
		if err := s.SetDashboardSessionFlash(ctx, "nope", "x"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("flash on an unknown session: %v", err)
		}

		// Expiry: idle since before, or opened before, the cut-offs.
		put("idle", at, at.Add(-2*time.Hour))
		put("old", at.Add(-13*time.Hour), at)
		n, err := s.DeleteExpiredDashboardSessions(ctx, at.Add(-time.Hour), at.Add(-12*time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("expired deleted = %d, %v; want 2", n, err)
		}
		if _, err := s.GetDashboardSession(ctx, "h1"); err != nil {
			t.Fatalf("a live session went with the expired ones: %v", err)
		}
		if err := s.DeleteDashboardSession(ctx, "h1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteDashboardSession(ctx, "h1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete: %v", err)
		}

	})
}
