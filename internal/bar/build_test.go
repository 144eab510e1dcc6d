package bar

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/flow"
)

// writeProject writes files (path → content) under a new temp dir.
func writeProject(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const helloFlow = `flow: hello
trigger:
  http: {method: GET, path: '/hello/{name}'}
steps:
  - map: '{greeting: "Hello, \(.params.name)!"}'
`

func TestBuildExamples(t *testing.T) {
	tests := []struct {
		dir       string
		name      string
		flows     []string
		endpoints []string
	}{
		{"../../examples/hello", "hello", []string{"hello"}, []string{"GET /hello/{name}"}},
		{"../../examples/orders", "orders", []string{"create-order", "get-order", "price-order", "sync-prices"},
			[]string{"POST /orders/{customer}", "GET /orders/{customer}/{id}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			first, info, err := Build(ctx, tt.dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			second, _, err := Build(ctx, tt.dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, second) {
				t.Error("two builds of the same project differ")
			}
			if info.Name != tt.name {
				t.Errorf("name = %q, want %q", info.Name, tt.name)
			}
			var flows, endpoints []string
			for _, f := range info.Flows {
				flows = append(flows, f.Name)
			}
			for _, e := range info.Endpoints {
				endpoints = append(endpoints, e.Method+" "+e.Path)
			}
			slices.Sort(endpoints)
			want := slices.Clone(tt.endpoints)
			slices.Sort(want)
			// The examples may grow; what this test names must be there.
			for _, f := range tt.flows {
				if !slices.Contains(flows, f) {
					t.Errorf("flows %v lack %s", flows, f)
				}
			}
			for _, e := range want {
				if !slices.Contains(endpoints, e) {
					t.Errorf("endpoints %v lack %s", endpoints, e)
				}
			}
			for _, f := range info.Files {
				if strings.HasPrefix(f, "tests/") {
					t.Errorf("fixture %s was packaged", f)
				}
			}
			// What Build returns, Inspect reads back the same.
			again, err := Inspect(ctx, bytes.NewReader(first), int64(len(first)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if again.Name != info.Name || len(again.Flows) != len(info.Flows) || again.Size != int64(len(first)) {
				t.Errorf("Inspect = %+v, Build said %+v", again, info)
			}
		})
	}
}

func TestBuildRefuses(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		setup   func(t *testing.T, dir string)
		want    error  // errors.Is target (nil: only the message is checked)
		wantMsg string // substring
		loadErr bool   // a *flow.LoadError must be reachable
	}{
		{name: "no manifest", files: map[string]string{"flows/hello.yaml": helloFlow},
			want: ErrInvalid, wantMsg: "sluice.yaml", loadErr: true},
		{name: "invalid yaml", files: map[string]string{"sluice.yaml": "name: x\n", "flows/a.yaml": "flow: a\n  trigger: [\n"},
			want: ErrInvalid, wantMsg: "flows/a.yaml:", loadErr: true},
		{name: "invalid jq", files: map[string]string{"sluice.yaml": "name: x\n",
			"flows/a.yaml": "flow: a\ntrigger:\n  http: {method: GET, path: /a}\nsteps:\n  - map: '{a: .b'\n"},
			want: ErrInvalid, wantMsg: "flows/a.yaml:5:", loadErr: true},
		{name: "unknown step", files: map[string]string{"sluice.yaml": "name: x\n",
			"flows/a.yaml": "flow: a\ntrigger:\n  http: {method: GET, path: /a}\nsteps:\n  - frobnicate: {}\n"},
			want: ErrInvalid, wantMsg: "flows/a.yaml:5:", loadErr: true},
		{name: "unknown field", files: map[string]string{"sluice.yaml": "name: x\n",
			"flows/a.yaml": "flow: a\ntrigger:\n  http: {method: GET, path: /a}\ntimeout: 1s\nretries: 3\nsteps:\n  - map: .\n"},
			want: ErrInvalid, wantMsg: "flows/a.yaml:5:", loadErr: true},
		{name: "duplicate flow name", files: map[string]string{"sluice.yaml": "name: x\n",
			"flows/a.yaml": "flow: same\ntrigger:\n  http: {method: GET, path: /a}\nsteps:\n  - map: .\n",
			"flows/b.yaml": "flow: same\ntrigger:\n  http: {method: GET, path: /b}\nsteps:\n  - map: .\n"},
			want: ErrInvalid, wantMsg: `duplicate flow name "same"`, loadErr: true},
		{name: "duplicate route", files: map[string]string{"sluice.yaml": "name: x\n",
			"flows/a.yaml": "flow: a\ntrigger:\n  http: {method: GET, path: '/o/{id}'}\nsteps:\n  - map: .\n",
			"flows/b.yaml": "flow: b\ntrigger:\n  http: {method: GET, path: '/o/{key}'}\nsteps:\n  - map: .\n"},
			want: ErrInvalid, wantMsg: "flows/b.yaml:3:", loadErr: true},
		{name: "empty dir", files: map[string]string{}, want: ErrInvalid, wantMsg: "no files"},
		{name: "symlink", files: map[string]string{"sluice.yaml": "name: x\n", "flows/hello.yaml": helloFlow},
			setup: func(t *testing.T, dir string) {
				if err := os.Symlink("/etc/passwd", filepath.Join(dir, "static.json")); err != nil {
					t.Skip("no symlinks here:", err)
				}
			},
			want: ErrSymlink, wantMsg: "static.json"},
		{name: "file over limit", files: map[string]string{"sluice.yaml": "name: x\n", "flows/hello.yaml": helloFlow,
			"static/big.json": strings.Repeat(" ", 33<<20)}, want: ErrTooLarge, wantMsg: "static/big.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeProject(t, tt.files)
			if tt.setup != nil {
				tt.setup(t, dir)
			}
			out := filepath.Join(t.TempDir(), "out.bar")
			_, err := BuildFile(context.Background(), dir, out, nil)
			if err == nil {
				t.Fatal("BuildFile accepted the project")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("error %q is not %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			var le *flow.LoadError
			if tt.loadErr && !errors.As(err, &le) {
				t.Errorf("error %q carries no *flow.LoadError", err)
			}
			if _, statErr := os.Stat(out); !errors.Is(statErr, os.ErrNotExist) {
				t.Error("a failed build wrote its output")
			}
		})
	}
}

func TestBuildSkipsHiddenFixturesAndOutputs(t *testing.T) {
	dir := writeProject(t, map[string]string{
		"sluice.yaml":        "name: demo\nversion: 0.1.0\n",
		"flows/hello.yaml":   helloFlow,
		".git/config":        "[core]\n",
		"flows/.hello.swp":   "junk",
		"tests/hello.yaml":   "cases: []\n",
		"old.bar":            "PK",
		"static/readme.txt":  "hi",
		"schemas/empty.json": `{}`,
	})
	data, info, err := Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"flows/hello.yaml", "schemas/empty.json", "sluice.yaml", "static/readme.txt"}
	if !slices.Equal(info.Files, want) {
		t.Errorf("packaged %v, want %v", info.Files, want)
	}
	a, err := Read(bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.Files(), want) {
		t.Errorf("archive holds %v", a.Files())
	}
}

func TestInspectReportsLoadErrorPosition(t *testing.T) {
	z := makeZip(t,
		entry{name: "sluice.yaml", data: "name: broken\n"},
		entry{name: "flows/a.yaml", data: "flow: a\ntrigger:\n  http: {method: GET, path: /a}\nsteps:\n  - map: '.x |||'\n"},
	)
	_, err := Inspect(context.Background(), bytes.NewReader(z), int64(len(z)), nil)
	var le *flow.LoadError
	if !errors.As(err, &le) {
		t.Fatalf("error %v carries no *flow.LoadError", err)
	}
	if le.File != "flows/a.yaml" || le.Line != 5 {
		t.Errorf("load error at %s:%d:%d, want flows/a.yaml:5", le.File, le.Line, le.Column)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v is not ErrInvalid", err)
	}
}
