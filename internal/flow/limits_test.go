package flow

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func nested(open, inner, close string, n int) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

// TestLoadLimits: each limit is refused with an error naming the file and,
// where there is one, the line and column; a project just inside the
// limits loads.
func TestLoadLimits(t *testing.T) {
	flowMap := func(prog string) string { return "flow: a\nsteps:\n  - map: '" + prog + "'\n" }
	okFlow := "flow: a\nsteps:\n  - map: .\n"
	many := func(prefix string, n int) string { return prefix + strings.Repeat("[1, 1, 1, 1, 1],\n", n) }
	tests := []struct {
		name  string
		files map[string]string
		want  []string // each must appear in the error; none: Load succeeds
	}{
		{"jq nested 500,000 deep", map[string]string{"flows/a.yaml": flowMap(nested("[", ".", "]", 500_000))},
			[]string{"flows/a.yaml: the document has 500007 structural characters (, : - [ { and lines), the limit is 24000"}},
		{"jq longer than 64 KiB", map[string]string{"flows/a.yaml": flowMap(`"` + strings.Repeat("x", 70_000) + `"`)},
			[]string{"flows/a.yaml:3:10: map#0: invalid jq: the program is 70002 bytes, the limit is 65536"}},
		{"jq nested 2,000 deep", map[string]string{"flows/a.yaml": flowMap(nested("(", ".", ")", 2000))},
			[]string{"flows/a.yaml:3:10: map#0: invalid jq: the program is nested more than 1000 deep"}},
		{"jq object nested 150,000 deep", map[string]string{"flows/a.yaml": flowMap(nested("{a:", "1", "}", 150_000))},
			[]string{"flows/a.yaml: the document has 300007 structural characters"}},
		{"jq operator chain", map[string]string{"flows/a.yaml": flowMap(strings.Repeat("1+", 5000) + "1")},
			[]string{"flows/a.yaml:3:10: map#0: invalid jq: the program is nested more than 1000 deep"}},
		{"jq nested 900 deep", map[string]string{"flows/a.yaml": flowMap(nested("[", ".", "]", 900))}, nil},
		{"jq module nested", map[string]string{"flows/a.yaml": okFlow, "jq/m.jq": "def f: " + nested("(", ".", ")", 2000) + ";"},
			[]string{"jq/m.jq:1:1: invalid jq module: the program is nested more than 1000 deep"}},
		{"jq of the project over 1 MiB", bigJQ(), []string{"the project's jq programs are more than 1048576 bytes together"}},
		{"flow YAML nested", map[string]string{"flows/a.yaml": "flow: a\nsteps: [{map: .}]\ndescription: " + nested("[", "", "]", 200) + "\n"},
			[]string{"flows/a.yaml:3:141: nested more than 128 deep"}},
		{"flow YAML nested through an alias", map[string]string{"flows/a.yaml": "x: &d " + nested("[", "", "]", 100) + "\nflow: a\nsteps: [{map: .}]\ndescription: " + nested("[", "*d", "]", 100) + "\n"},
			[]string{"flows/a.yaml:1:"}},
		{"schema JSON nested", map[string]string{"flows/a.yaml": okFlow, "schemas/s.json": "{\n" + strings.Repeat(`"properties":{"a":{`, 100) + strings.Repeat("}}", 100) + "\n}"},
			[]string{"schemas/s.json:2:", "invalid JSON: nested more than 128 deep"}},
		{"schema YAML nested", map[string]string{"flows/a.yaml": okFlow, "schemas/s.yaml": nested("[", "", "]", 200)},
			[]string{"schemas/s.yaml: invalid JSON Schema", "line 1: nested more than 128 deep"}},
		{"jq data nested", map[string]string{"flows/a.yaml": okFlow, "jq/d.json": nested(`{"a":`, "1", "}", 200)},
			[]string{"jq/d.json:1:641: invalid JSON: nested more than 128 deep"}},
		{"OpenAPI nested", map[string]string{"flows/a.yaml": okFlow, "openapi/api.yaml": "openapi: 3.1.0\nx: " + nested("[", "", "]", 200)},
			[]string{"openapi/api.yaml:2:"}},
		{"OpenAPI nested 100 deep", map[string]string{"flows/a.yaml": okFlow, "openapi/api.yaml": "openapi: 3.1.0\nx: " + nested("[", "", "]", 100)}, nil},
		{"document with too many nodes", map[string]string{"flows/a.yaml": okFlow, "openapi/api.yaml": many("openapi: 3.1.0\nx: [\n", 20_000) + "]\n"},
			[]string{"openapi/api.yaml: the document has 140006 structural characters", "the limit is 24000"}},
		{"project with too many nodes", map[string]string{"flows/a.yaml": okFlow,
			"openapi/a.yaml": many("openapi: 3.1.0\nx: [\n", 3_400) + "]\n", "openapi/b.yaml": many("openapi: 3.1.0\nx: [\n", 3_400) + "]\n",
			"openapi/c.yaml": many("openapi: 3.1.0\nx: [\n", 3_400) + "]\n"},
			[]string{"openapi/c.yaml: the project's YAML and JSON documents have more than 48000 structural characters"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(context.Background(), project(tc.files), nil)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Load accepted the project")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%.2000s", w, err)
				}
			}
			checkLoadErrors(t, err)
		})
	}
}

// TestLoadCostIsBounded: refusing the crafted programs of issue 11 (a jq
// program nested 500,000 deep cost 1.1 GB, an object nested 150,000 deep
// 650 MB) costs a few megabytes of heap, and so does loading the deepest
// program the limits allow. The figure is the heap allocated during Load
// (runtime.MemStats.TotalAlloc), which does not depend on timing or on
// the garbage collector's pace; stack growth is bounded by the depth
// limit, which the same programs exercise.
func TestLoadCostIsBounded(t *testing.T) {
	const budget = 64 << 20
	cases := map[string]string{
		"jq [ 500,000 deep":     nested("[", ".", "]", 500_000),
		"jq ( 500,000 deep":     nested("(", ".", ")", 500_000),
		"jq {a: 150,000 deep":   nested("{a:", "1", "}", 150_000),
		"jq at the depth limit": nested("[", ".", "]", 990),
		"jq chain at the limit": strings.Repeat("1+", 990) + "1",
	}
	for name, prog := range cases {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("flow: a\nsteps:\n")
			// As many copies as a 4 MiB flow file holds, less than the
			// project's jq budget.
			for i := 0; i < 20 && b.Len()+len(prog) < maxFileSize-100; i++ {
				fmt.Fprintf(&b, "  - map: '%s'\n", prog)
			}
			files := map[string]string{"flows/a.yaml": b.String()}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _ = Load(context.Background(), project(files), nil)
			runtime.ReadMemStats(&after)
			if got := after.TotalAlloc - before.TotalAlloc; got > budget {
				t.Errorf("Load allocated %d MB, the budget is %d MB", got>>20, budget>>20)
			}
		})
	}
}

// bigJQ is a project whose jq modules are each within the size limit and
// together over the project's.
func bigJQ() map[string]string {
	files := map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: .\n"}
	for i := range 20 {
		files[fmt.Sprintf("jq/m%d.jq", i)] = fmt.Sprintf(`def m%d: "%s";`, i, strings.Repeat("x", 60_000))
	}
	return files
}
