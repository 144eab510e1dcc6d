package flow_test

import (
	"bytes"
	"context"
	"os"
	"testing"

	"github.com/sluice-dev/sluice/internal/flow"
)

// TestExamples runs the `sluice flow test` fixtures of every example
// project: the examples are the documentation, so they must keep working.
func TestExamples(t *testing.T) {
	for _, dir := range []string{"hello", "orders", "order-events"} {
		t.Run(dir, func(t *testing.T) {
			var out bytes.Buffer
			results, err := flow.RunTests(context.Background(), os.DirFS("../../examples/"+dir), flow.TestOptions{Out: &out, Verbose: true})
			if err != nil {
				t.Fatalf("RunTests: %v\n%s", err, out.String())
			}
			if len(results) == 0 {
				t.Fatal("no test cases ran")
			}
			for _, r := range results {
				if !r.Passed() {
					t.Errorf("%s/%s failed:\n%s", r.File, r.Name, out.String())
				}
			}
		})
	}
}
