package store_test

import (
	"context"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// Concurrent create-or-replace writes of one new name: exactly one
// creates it, the others replace it, none fails (PostgreSQL's read
// committed transactions both see no row and both insert).
func TestConcurrentPutsOfOneNewName(t *testing.T) {
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		at := clocktest.Epoch()
		if err := s.CreateInstance(ctx, newInstance("inst1", at)); err != nil {
			t.Fatal(err)
		}
		puts := map[string]func(i int) (bool, error){
			"configuration": func(i int) (bool, error) {
				return s.PutConfiguration(ctx, store.Configuration{InstanceID: "inst1", Name: "race", Type: "generic", SealedData: []byte{byte(i)},
					UpdatedAt: at, UpdatedBy: "test"}, false)
			},
			"runtime": func(i int) (bool, error) {
				_, created, err := s.PutRuntime(ctx, store.Runtime{InstanceID: "inst1", Name: "race", UID: "uid-" + string(rune('a'+i)), Spec: "{}",
					FetchTokenHash: "h", CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, nil)
				return created, err
			},
			"trace": func(i int) (bool, error) {
				rt, err := s.GetRuntime(ctx, "inst1", "race")
				if err != nil {
					return false, err
				}
				return s.PutTrace(ctx, store.Trace{InstanceID: "inst1", Name: "race", RuntimeName: "race", RuntimeUID: rt.UID, Type: "user", CreatedAt: at, CreatedBy: "test"})
			},
		}
		for _, what := range []string{"configuration", "runtime", "trace"} {
			const n = 8
			var wg sync.WaitGroup
			created := make([]bool, n)
			errs := make([]error, n)
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					created[i], errs[i] = puts[what](i)
				}(i)
			}
			wg.Wait()
			count := 0
			for i := range created {
				if errs[i] != nil {
					t.Errorf("%s put %d: %v", what, i, errs[i])
				}
				if created[i] {
					count++
				}
			}
			if count != 1 {
				t.Errorf("%s: %d puts report creating it, want 1", what, count)
			}
		}
		// The trace belongs to the runtime: it goes with it.
		if err := s.DeleteRuntime(ctx, "inst1", "race"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetTrace(ctx, "inst1", "race"); err == nil {
			t.Fatal("the trace outlived its runtime")
		}
	})
}
