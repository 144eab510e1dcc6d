package store_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/store"
)

// Every paged list reads its page from an index, in the order of its key
// — no scan of the table, no sort — for the first page and a later one,
// with each of its filters: on PostgreSQL in the generic plan a prepared
// statement settles on, on SQLite in its only plan. A list's cost then
// follows the page, not the table.
func TestListQueriesUseTheirIndex(t *testing.T) {
	// Every listQuery of the store's sources is in store.ListQueries.
	ops := map[string]bool{}
	files, _ := os.ReadDir(".")
	for _, f := range files {
		if !strings.HasSuffix(f.Name(), ".go") || strings.HasSuffix(f.Name(), "_test.go") {
			continue
		}
		src, err := os.ReadFile(f.Name())
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`listQuery\{op: "([^"]+)"`).FindAllSubmatch(src, -1) {
			ops[string(m[1])] = true
		}
	}
	for op := range ops {
		if _, ok := store.ListQueries[op]; !ok {
			t.Errorf("the list %q is not in store.ListQueries: add it and a case here", op)
		}
	}
	cases := []struct {
		op    string
		after []string // the key of a later page's position
		args  []any
	}{
		{"list catalogs", []string{"m"}, []any{"i1"}},
		{"list consumer orgs", []string{"m"}, []any{"cat-1"}},
		{"list apps", []string{"m", "id"}, []any{"cat-1"}},
		{"list a consumer org's apps", []string{"m", "id"}, []any{"org-1", "cat-1"}},
		{"list app credentials", []string{"100", "id"}, []any{"app-1", int64(100), 0}},
		{"list configurations", []string{"m"}, []any{"i1"}},
		{"list BAR files", []string{"m"}, []any{"i1"}},
		{"list identities", []string{"m"}, []any{"i1", "user"}},
		{"list API keys", []string{"user", "amy", "k", "id"}, []any{"i1"}},
		{"list an owner's API keys", []string{"user", "amy", "k", "id"}, []any{"sid-amy", "i1"}},
		{"list client credentials", []string{"m"}, []any{"i1"}},
		{"list owned client credentials", []string{"m"}, []any{"i1", "sid-amy"}},
		{"list published objects", []string{"i1", "m"}, []any{"i1", "api"}},
		{"list every instance's published objects", []string{"i1", "m"}, []any{"api"}},
		{"list runtimes", []string{"i1", "m"}, []any{"i1"}},
		{"list every instance's runtimes", []string{"i1", "m"}, nil},
		{"list traces", []string{"m"}, []any{"i1"}},
		{"list a runtime's traces", []string{"m"}, []any{"i1", "rt"}},
	}
	for _, c := range cases {
		ops[c.op] = false
	}
	for op, left := range ops {
		if left {
			t.Errorf("no case for the list %q", op)
		}
	}
	eachStore(t, func(t *testing.T, s store.Store) {
		ctx := context.Background()
		for _, c := range cases {
			for _, after := range [][]string{nil, c.after} {
				plan, err := store.ExplainListPage(ctx, s, c.op, after, 101, c.args...)
				if err != nil {
					t.Fatalf("%s %v: %v", c.op, c.args, err)
				}
				low := strings.ToLower(plan)
				scans := strings.Contains(low, "seq scan") || (strings.Contains(low, "scan ") && s.Kind() == "sqlite" && !strings.Contains(low, "using index") && !strings.Contains(low, "using covering index") && !strings.Contains(low, "using primary key"))
				if scans || strings.Contains(low, "sort") || strings.Contains(low, "temp b-tree") {
					t.Errorf("%s %v after %v: the plan does not read an index in order:\n%s", c.op, c.args, after, plan)
				}
			}
		}
	})
}
