package runtime_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBarCommands runs `sluice bar build` and `sluice bar inspect` as a
// developer does.
func TestBarCommands(t *testing.T) {
	orders := buildBAR(t, "../../examples/orders")

	out, err := exec.Command(sluiceBin, "bar", "inspect", orders).CombinedOutput()
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	for _, want := range []string{
		"project:     orders",
		"create-order  POST /orders/{customer}",
		`sync-prices   schedule "*/15 * * * *" (Europe/Paris)`,
		"price-order   call",
		"GET   /orders/{customer}/{id}  → get-order",
		"schemas/order.json",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("inspect output lacks %q:\n%s", want, out)
		}
	}

	out, err = exec.Command(sluiceBin, "bar", "inspect", "--json", orders).Output()
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Name      string `json:"name"`
		Endpoints []struct{ Method, Path, Flow string }
		Flows     []struct {
			Name    string
			Trigger struct{ Type string }
		}
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Name != "orders" || len(info.Flows) != 4 || len(info.Endpoints) != 2 {
		t.Errorf("inspect --json: %v %+v", err, info)
	}

	// A broken project: build refuses, names the place, writes nothing.
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "flows"), 0o755)
	os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte("name: broken\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "flows", "a.yaml"), []byte("flow: a\ntrigger:\n  http: {method: GET, path: /a}\nsteps:\n  - map: '{a: '\n"), 0o644)
	target := filepath.Join(t.TempDir(), "broken.bar")
	cmd := exec.Command(sluiceBin, "bar", "build", dir, "-o", target)
	out, err = cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "flows/a.yaml:5:") {
		t.Errorf("build of a broken project: %v\n%s", err, out)
	}
	if _, err := os.Stat(target); !os.IsNotExist(err) {
		t.Error("a failed build wrote the BAR")
	}

	// Inspecting something that is not a BAR.
	notBar := filepath.Join(t.TempDir(), "x.bar")
	os.WriteFile(notBar, []byte("hello"), 0o644)
	out, err = exec.Command(sluiceBin, "bar", "inspect", notBar).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "not a zip archive") {
		t.Errorf("inspect of a non-zip: %v\n%s", err, out)
	}

	// Usage mistakes exit 2.
	cmd = exec.Command(sluiceBin, "bar", "build")
	if err := cmd.Run(); err == nil || cmd.ProcessState.ExitCode() != 2 {
		t.Errorf("bar build without a directory: %v", err)
	}
}
