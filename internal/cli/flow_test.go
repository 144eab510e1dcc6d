package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFlowTestExitCodes: CI relies on `sluice flow test` failing loudly.
func TestFlowTestExitCodes(t *testing.T) {
	broken := t.TempDir()
	write := func(name, data string) {
		t.Helper()
		p := filepath.Join(broken, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sluice.yaml", "name: broken\n")
	write("flows/a.yaml", "flow: a\ntrigger:\n  http: {path: /a}\nsteps: [{map: '\"a\"'}]\n")
	write("tests/a.yaml", "cases:\n  - request: {path: /a}\n    expect: {body: b}\n")
	invalid := t.TempDir()
	if err := os.WriteFile(filepath.Join(invalid, "sluice.yaml"), []byte("name: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		want int
	}{
		{"hello passes", []string{"flow", "test", "../../examples/hello"}, 0},
		{"orders passes", []string{"flow", "test", "../../examples/orders", "--run", "places"}, 0},
		{"failing case", []string{"flow", "test", broken}, 1},
		{"project without flows", []string{"flow", "test", invalid}, 1},
		{"validate", []string{"flow", "validate", "../../examples/orders"}, 0},
		{"validate invalid", []string{"flow", "validate", invalid}, 1},
		{"missing argument", []string{"flow", "test"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Execute(tt.args); got != tt.want {
				t.Errorf("exit code %d, want %d", got, tt.want)
			}
		})
	}
}
