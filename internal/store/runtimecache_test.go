package store_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
)

// ListRuntimes answers a repeated page without reading the database, as
// GrantState does, and every change to the runtimes — through the same
// store or another one on the same database — is in the very next page.
func TestRuntimePagesRememberedButNeverStale(t *testing.T) {
	eachReaderWriter(t, func(t *testing.T, kind string, reader, writer store.Store, reads *atomic.Int64) {
		ctx := context.Background()
		listening, stop := reader.SubscribeChanges()
		defer stop()
		at := clocktest.Epoch()
		for _, id := range []string{"inst1", "inst2"} {
			if err := writer.CreateInstance(ctx, newInstance(id, at)); err != nil {
				t.Fatal(err)
			}
		}
		put := func(instance, name, spec string) error {
			_, _, err := writer.PutRuntime(ctx, store.Runtime{InstanceID: instance, Name: name, UID: "ir-" + instance + "-" + name, Spec: spec,
				FetchTokenHash: "h", CreatedAt: at, CreatedBy: "test", UpdatedAt: at, UpdatedBy: "test"}, nil)
			return err
		}
		for _, n := range []string{"a", "b", "c"} {
			if err := put("inst1", n, `{"v":1}`); err != nil {
				t.Fatal(err)
			}
		}
		if err := put("inst2", "z", `{}`); err != nil {
			t.Fatal(err)
		}
		// What a page shows: names, specs and statuses, in order.
		page := func(instance string, pg store.Page) string {
			t.Helper()
			rows, err := reader.ListRuntimes(ctx, instance, pg)
			if err != nil {
				t.Fatal(err)
			}
			var out []string
			for _, r := range rows {
				out = append(out, r.Name+" "+r.Spec+" "+r.Status)
			}
			return strings.Join(out, ", ")
		}
		all := store.Page{Limit: 501}
		if got := page("inst1", all); got != `a {"v":1} {}, b {"v":1} {}, c {"v":1} {}` {
			t.Fatalf("first page: %s", got)
		}
		if kind == "postgres" {
			<-listening // nothing is remembered before
		}
		page("inst1", all)
		before := reads.Load()
		page("inst1", all)
		if reads.Load() != before {
			t.Fatal("a repeated page read the database")
		}
		// Pages and instances are apart.
		if got := page("inst1", store.Page{Limit: 2, After: []string{"inst1", "a"}}); got != `b {"v":1} {}, c {"v":1} {}` {
			t.Fatalf("page after a: %s", got)
		}
		if got := page("inst2", all); got != `z {} {}` {
			t.Fatalf("inst2: %s", got)
		}
		// A caller may cut or reorder what it got.
		rows, _ := reader.ListRuntimes(ctx, "inst1", all)
		rows[0].Name = "changed by a caller"
		if got := page("inst1", all); !strings.HasPrefix(got, "a ") {
			t.Fatalf("a caller's edit reached the next page: %s", got)
		}

		steps := []struct {
			what   string
			change func() error
			want   string
		}{
			{"runtime created", func() error { return put("inst1", "d", `{"v":1}`) },
				`a {"v":1} {}, b {"v":1} {}, c {"v":1} {}, d {"v":1} {}`},
			{"spec replaced", func() error { return put("inst1", "b", `{"v":2}`) },
				`a {"v":1} {}, b {"v":2} {}, c {"v":1} {}, d {"v":1} {}`},
			{"status written", func() error { return writer.SetRuntimeStatus(ctx, "inst1", "c", `{"phase":"Ready"}`) },
				`a {"v":1} {}, b {"v":2} {}, c {"v":1} {"phase":"Ready"}, d {"v":1} {}`},
			{"runtime deleted", func() error { return writer.DeleteRuntime(ctx, "inst1", "a") },
				`b {"v":2} {}, c {"v":1} {"phase":"Ready"}, d {"v":1} {}`},
		}
		for _, st := range steps {
			page("inst1", all) // remembered, as before the change
			page("inst1", all)
			if err := st.change(); err != nil {
				t.Fatalf("%s: %v", st.what, err)
			}
			if got := page("inst1", all); got != st.want {
				t.Fatalf("%s: the next page is %s, want %s", st.what, got, st.want)
			}
		}
	})
}
