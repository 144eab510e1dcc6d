package store

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// Every caller of wait is answered by a run that began after it called:
// here a "commit" (db.Add) precedes each call, each run records the
// newest commit its snapshot held once it ends, and a caller answered by
// a run that began before its commit would find that record older than
// its own. Run with -race: many callers share runs.
func TestBarrierAnswersFromARunBegunAfterTheCall(t *testing.T) {
	var db, fresh, runs atomic.Int64
	b := &barrier{sync: func(context.Context) bool {
		runs.Add(1)
		snapshot := db.Load()
		runtime.Gosched() // let callers arrive while the run is in flight
		for {
			old := fresh.Load()
			if snapshot <= old || fresh.CompareAndSwap(old, snapshot) {
				return true
			}
		}
	}}
	const callers, calls = 16, 300
	var wg sync.WaitGroup
	var stale atomic.Int64
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range calls {
				committed := db.Add(1)
				if !b.wait(context.Background()) {
					t.Error("wait failed without a failing sync")
					return
				}
				if fresh.Load() < committed {
					stale.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := stale.Load(); n != 0 {
		t.Fatalf("%d of %d calls were answered by a run begun before them", n, callers*calls)
	}
	t.Logf("%d calls, %d runs", callers*calls, runs.Load())
}

// A caller whose context ends while it waits is told the barrier did not
// pass (it then reads the database), and a failed run fails its waiters.
func TestBarrierWaitEndsWithTheContextAndFailsWithTheRun(t *testing.T) {
	inFlight, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	b := &barrier{sync: func(context.Context) bool {
		if first.CompareAndSwap(false, true) {
			close(inFlight)
			<-release
			return true
		}
		return false // every later run: the database did not answer
	}}
	done := make(chan bool)
	go func() { done <- b.wait(context.Background()) }()
	<-inFlight
	ctx, cancel := context.WithCancel(context.Background())
	waited := make(chan bool)
	go func() { waited <- b.wait(ctx) }()
	for b.waiting() != 1 {
		runtime.Gosched()
	}
	cancel()
	if <-waited {
		t.Fatal("a wait whose context ended reported the barrier passed")
	}
	failed := make(chan bool)
	go func() { failed <- b.wait(context.Background()) }()
	for b.waiting() != 2 { // the cancelled caller still counts
		runtime.Gosched()
	}
	close(release)
	if !<-done {
		t.Fatal("the first run passed, its caller was told otherwise")
	}
	if <-failed {
		t.Fatal("a waiter of a failed run was told the barrier passed")
	}
}

// In a request scope (ShareBarrier) the barrier passed once also serves
// the next call, once: a request that reads again later waits again, or
// a watch would never see a later change. Another barrier's pass does
// not count.
func TestBarrierSharedInARequestOnce(t *testing.T) {
	var runs atomic.Int64
	b := &barrier{sync: func(context.Context) bool { runs.Add(1); return true }}
	other := &barrier{sync: func(context.Context) bool { return true }}
	ctx := ShareBarrier(context.Background())
	for i, want := range []int64{1, 1, 2, 3} {
		if !b.wait(ctx) {
			t.Fatal("wait failed")
		}
		if runs.Load() != want {
			t.Fatalf("after call %d: %d runs, want %d", i+1, runs.Load(), want)
		}
	}
	ctx = ShareBarrier(context.Background())
	other.wait(ctx)
	b.wait(ctx)
	if runs.Load() != 4 {
		t.Fatalf("another barrier's pass let this one be skipped: %d runs, want 4", runs.Load())
	}
	// Without a scope every call waits.
	b.wait(context.Background())
	b.wait(context.Background())
	if runs.Load() != 6 {
		t.Fatalf("%d runs, want 6", runs.Load())
	}
}
