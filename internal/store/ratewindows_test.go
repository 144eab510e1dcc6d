package store_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

func TestRateWindowsReserveSlicesOfTheQuota(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		w := clocktest.Epoch().Truncate(time.Minute)
		reserve := func(key string, start time.Time, limit, maxGrant int) (int, int) {
			t.Helper()
			g, u, err := s.ReserveRate(ctx, key, start, limit, maxGrant)
			if err != nil {
				t.Fatal(err)
			}
			return g, u
		}
		// An eighth of what is left, shrinking as the quota is spent, down
		// to single requests and then nothing.
		var grants []int
		total := 0
		for {
			g, u := reserve("c\x1fapp", w, 100, 256)
			if g == 0 {
				if u != 100 {
					t.Fatalf("spent window says used %d, want 100", u)
				}
				break
			}
			total += g
			if u != total {
				t.Fatalf("used %d after grants %v, want %d", u, grants, total)
			}
			grants = append(grants, g)
		}
		if total != 100 || grants[0] != 13 || grants[len(grants)-1] != 1 {
			t.Fatalf("grants %v (total %d), want 100 in slices from 13 down to 1", grants, total)
		}
		// The cap bounds a slice of a large quota; keys and windows count apart.
		if g, _ := reserve("c\x1fapp", w.Add(time.Minute), 1_000_000, 256); g != 256 {
			t.Fatalf("next window's first grant %d, want the cap 256", g)
		}
		if g, _ := reserve("i\x1finst", w, 8, 256); g != 1 {
			t.Fatalf("other key's first grant %d, want 1 of 8", g)
		}
		if _, _, err := s.ReserveRate(ctx, "x", w, 0, 256); err == nil {
			t.Fatal("a zero limit was reserved")
		}

		// Ended windows are dropped; the current one stays.
		if n, err := s.DeleteRateWindowsBefore(ctx, w.Add(time.Minute)); err != nil || n != 2 {
			t.Fatalf("delete = %d, %v; want the two rows of the first window", n, err)
		}
		if g, _ := reserve("c\x1fapp", w.Add(time.Minute), 1_000_000, 256); g != 256 {
			t.Fatalf("the current window was lost: grant %d", g)
		}
	})
}

// Replicas reserving at the same instant together never get more than the
// limit, and between them get all of it.
func TestRateWindowsConcurrentReservationsNeverExceedTheLimit(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		w := clocktest.Epoch().Truncate(time.Minute)
		const limit = 500
		var mu sync.Mutex
		total := 0
		var wg sync.WaitGroup
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					g, _, err := s.ReserveRate(ctx, "shared", w, limit, 16)
					if err != nil {
						t.Error(err)
						return
					}
					if g == 0 {
						return
					}
					mu.Lock()
					total += g
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if total != limit {
			t.Fatalf("reserved %d in all, want exactly %d", total, limit)
		}
	})
}
