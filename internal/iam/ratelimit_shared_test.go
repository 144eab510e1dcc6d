package iam

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// countedWindows counts the round trips a limiter makes to a real store.
type countedWindows struct {
	store.RateWindows
	reserves atomic.Int64
}

func (c *countedWindows) ReserveRate(ctx context.Context, key string, start time.Time, limit, maxGrant int) (int, int, error) {
	c.reserves.Add(1)
	return c.RateWindows.ReserveRate(ctx, key, start, limit, maxGrant)
}

// eachSharedStore runs fn with a real store of every kind under test and a
// test clock at the start of a minute (windows are aligned).
func eachSharedStore(t *testing.T, fn func(t *testing.T, st store.Store, clk *clocktest.Fake)) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			st, err := store.Open(context.Background(), storetest.DSN(t, kind), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			clk := clocktest.New(0)
			clk.Set(clocktest.Epoch().Truncate(time.Hour).Add(time.Hour))
			fn(t, st, clk)
		})
	}
}

func replicas(n int, shared store.RateWindows, clk *clocktest.Fake, per Limit) []*RateLimiter {
	rls := make([]*RateLimiter, n)
	for i := range rls {
		rls[i] = &RateLimiter{PerClient: per, PerInstance: Limit{Requests: 1_000_000, Window: time.Minute},
			PerSource: per, Now: clk.Now, Shared: shared}
	}
	return rls
}

// A burst spread round-robin over three replicas gets exactly the limit,
// then every replica refuses with the time to the window's end; the next
// window starts afresh.
func TestSharedRateLimitRoundRobin(t *testing.T) {
	eachSharedStore(t, func(t *testing.T, st store.Store, clk *clocktest.Fake) {
		cw := &countedWindows{RateWindows: st}
		rls := replicas(3, cw, clk, Limit{Requests: 40, Window: time.Minute})
		clk.Add(15 * time.Second)
		admitted := 0
		var last []Verdict
		for i := range 90 {
			v := rls[i%3].Check("app", "inst")
			if v.OK {
				admitted++
			}
			if i >= 87 {
				last = append(last, v)
			}
		}
		if admitted != 40 {
			t.Fatalf("admitted %d across 3 replicas, want exactly the limit 40", admitted)
		}
		for i, v := range last {
			if v.OK || v.RetryAfter != 45 {
				t.Fatalf("replica %d at the end: %+v, want refused with 45 s to the window's end", i, v)
			}
		}
		// Spent is remembered: refusals cost no round trip.
		before := cw.reserves.Load()
		for i := range 30 {
			rls[i%3].Check("app", "inst")
		}
		if n := cw.reserves.Load() - before; n != 0 {
			t.Fatalf("%d reservations for refused requests, want none", n)
		}
		clk.Add(45 * time.Second)
		for i, rl := range rls {
			if v := rl.Check("app", "inst"); !v.OK {
				t.Fatalf("replica %d refused in the next window: %+v", i, v)
			}
		}
	})
}

// Replicas admitting concurrently never admit more than the limit, and
// replicas that keep receiving traffic spend every slice, so together
// they admit exactly the limit.
func TestSharedRateLimitConcurrent(t *testing.T) {
	eachSharedStore(t, func(t *testing.T, st store.Store, clk *clocktest.Fake) {
		rls := replicas(3, st, clk, Limit{Requests: 300, Window: time.Minute})
		var admitted atomic.Int64
		var wg sync.WaitGroup
		for _, rl := range rls {
			for range 4 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range 60 {
						v := rl.Check("app", "inst")
						if v.OK {
							admitted.Add(1)
						}
					}
				}()
			}
		}
		wg.Wait()
		// Then each replica gets calls until it refuses, so none ends
		// holding part of a slice.
		for _, rl := range rls {
			for rl.Check("app", "inst").OK {
				admitted.Add(1)
			}
		}
		if n := admitted.Load(); n != 300 {
			t.Fatalf("admitted %d across 3 replicas, want exactly 300", n)
		}
	})
}

// With a limit that never refuses, a replica meets the store once per
// slice (maxRateGrant requests), not once per request.
func TestSharedRateLimitBatchesRoundTrips(t *testing.T) {
	eachSharedStore(t, func(t *testing.T, st store.Store, clk *clocktest.Fake) {
		cw := &countedWindows{RateWindows: st}
		rl := replicas(1, cw, clk, Limit{Requests: 1_000_000_000, Window: time.Second})[0]
		rl.PerInstance = Limit{}
		for range 1000 {
			if v := rl.Check("app", "inst"); !v.OK {
				t.Fatalf("refused: %+v", v)
			}
		}
		if n := cw.reserves.Load(); n != 4 {
			t.Fatalf("%d round trips for 1000 requests, want 4 (slices of %d)", n, maxRateGrant)
		}
	})
}

// A slice stranded on a replica that gets no more traffic is the only
// quota the others miss; and a call refused by the instance's limit
// spends none of the client's.
func TestSharedRateLimitStrandedSliceAndRefusalSpendsNothing(t *testing.T) {
	eachSharedStore(t, func(t *testing.T, st store.Store, clk *clocktest.Fake) {
		rls := replicas(3, st, clk, Limit{Requests: 80, Window: time.Minute})
		if !rls[0].Check("app", "inst").OK { // takes a slice of ceil(80/8) = 10, spends 1
			t.Fatal("first call refused")
		}
		admitted := 1
		for i := range 200 {
			if rls[1+i%2].Check("app", "inst").OK {
				admitted++
			}
		}
		if admitted != 80-9 {
			t.Fatalf("admitted %d, want 71: the limit less the 9 left on the idle replica", admitted)
		}
		if !rls[0].Check("app", "inst").OK {
			t.Fatal("the idle replica's own slice was lost")
		}

		for _, rl := range rls {
			rl.PerInstance = Limit{Requests: 2, Window: time.Minute}
		}
		rls[0].Check("fresh", "small")
		rls[1].Check("fresh", "small")
		if rls[2].Check("fresh", "small").OK {
			t.Fatal("instance limit of 2 let a third call through")
		}
		// Slices of 10, 9 and 8 are reserved (27); replica 2 spends one of
		// its 8 now: 80-27+7 = 60 remain in its view, 59 had the refusal
		// spent one.
		if v := rls[2].Check("fresh", "other"); !v.OK || v.State != `"client";r=60;t=60, "instance";r=1;t=60` {
			t.Fatalf("after the refusal: %+v, want the client's quota untouched by it", v)
		}
	})
}

// Failed attempts of a source count across replicas; a replica that has
// seen the quota spent refuses before authenticating.
func TestSharedRateLimitSource(t *testing.T) {
	eachSharedStore(t, func(t *testing.T, st store.Store, clk *clocktest.Fake) {
		rls := replicas(2, st, clk, Limit{Requests: 5, Window: time.Minute})
		ok := 0
		for i := range 8 {
			if v := rls[i%2].SourceVerdict("192.0.2.7", true); v.OK {
				ok++
			}
		}
		if ok != 5 {
			t.Fatalf("%d failed attempts admitted across 2 replicas, want 5", ok)
		}
		for i, rl := range rls {
			if v := rl.SourceVerdict("192.0.2.7", false); v.OK || v.RetryAfter != 60 {
				t.Fatalf("replica %d: %+v, want the spent source refused", i, v)
			}
		}
	})
}

// A store that cannot be reached falls back to counting in this process,
// and says so.
func TestSharedRateLimitFallsBackWhenTheStoreIsGone(t *testing.T) {
	eachSharedStore(t, func(t *testing.T, st store.Store, clk *clocktest.Fake) {
		var told atomic.Int64
		rl := replicas(1, st, clk, Limit{Requests: 2, Window: time.Minute})[0]
		rl.OnSharedError = func(error) { told.Add(1) }
		st.Close()
		got := []bool{rl.Check("app", "inst").OK, rl.Check("app", "inst").OK, rl.Check("app", "inst").OK}
		if !got[0] || !got[1] || got[2] || told.Load() == 0 {
			t.Fatalf("admitted %v, told %d times; want the in-process limit of 2 and the error told", got, told.Load())
		}
	})
}

// BenchmarkRateLimiterCheck is the cost of one admitted call's check,
// counted in memory and shared through each store under test, with a limit
// that never refuses (as bench/tokenbench runs): compare the sub-benchmarks
// of one run.
func BenchmarkRateLimiterCheck(b *testing.B) {
	per := Limit{Requests: 1_000_000_000, Window: time.Hour}
	clk := clocktest.New(0)
	b.Run("memory", func(b *testing.B) {
		rl := &RateLimiter{PerClient: per, PerInstance: per, Now: clk.Now}
		for b.Loop() {
			rl.Check("app", "inst")
		}
	})
	for _, kind := range storetest.Kinds() {
		b.Run("shared-"+kind, func(b *testing.B) {
			st, err := store.Open(context.Background(), storetest.DSN(b, kind), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			rl := &RateLimiter{PerClient: per, PerInstance: per, Now: clk.Now, Shared: st}
			for b.Loop() {
				rl.Check("app", "inst")
			}
		})
	}
}
