package flow

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
)

const manifest = "name: test\nversion: 0.1.0\n"

// project builds an in-memory project; files without a manifest get one.
func project(files map[string]string) fstest.MapFS {
	fsys := fstest.MapFS{}
	if _, ok := files[ManifestFile]; !ok {
		fsys[ManifestFile] = &fstest.MapFile{Data: []byte(manifest)}
	}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	return fsys
}

const okFlow = `flow: ok
trigger:
  http: {method: GET, path: /ok}
steps:
  - map: .query
`

func TestLoadErrors(t *testing.T) {
	cfg := &Config{Credentials: map[string]Credential{"known": {User: "u", Password: secret.New("pw-123")}}}
	tests := []struct {
		name  string
		files map[string]string
		cfg   *Config
		want  []string // each must appear in the error text
	}{
		{
			name:  "empty manifest",
			files: map[string]string{ManifestFile: "", "flows/a.yaml": okFlow},
			want:  []string{"sluice.yaml: file is empty"},
		},
		{
			name:  "manifest unknown field",
			files: map[string]string{ManifestFile: "name: x\nowner: me\n", "flows/a.yaml": okFlow},
			want:  []string{`sluice.yaml:2:1: unknown field "owner" in manifest`},
		},
		{
			name:  "manifest and flow errors together",
			files: map[string]string{ManifestFile: "name: 'bad name'\n", "flows/a.yaml": "flow: a\nsteps: [{nope: 1}]\n"},
			want:  []string{`sluice.yaml:1:7: invalid project name "bad name"`, `flows/a.yaml:2:10: unknown step kind "nope"`},
		},
		{
			name:  "no flows",
			files: map[string]string{"schemas/x.json": "{}"},
			want:  []string{"project has no flows"},
		},
		{
			name:  "invalid yaml",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: [\n"},
			want:  []string{"flows/a.yaml:", "invalid YAML"},
		},
		{
			name:  "unknown step kind",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - mapp: .body\n"},
			want:  []string{`flows/a.yaml:3:5: unknown step kind "mapp"`},
		},
		{
			name:  "unknown flow field",
			files: map[string]string{"flows/a.yaml": "flow: a\nstep:\n  - map: .body\n"},
			want:  []string{`flows/a.yaml:2:1: unknown field "step" in flow`, "flow has no steps"},
		},
		{
			name:  "unknown field in http step",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - http:\n      request: {url: 'http://x'}\n      retries: 3\n"},
			want:  []string{`flows/a.yaml:5:7: unknown field "retries" in http`},
		},
		{
			name:  "invalid jq points into the expression",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: .a | | .b\n"},
			want:  []string{`flows/a.yaml:3:15: map#0: invalid jq: unexpected token "|"`},
		},
		{
			name:  "invalid jq in a block scalar",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: |\n      {\n        a: .x | | .y\n      }\n"},
			want:  []string{`flows/a.yaml:5:17: map#0: invalid jq: unexpected token "|"`},
		},
		{
			name:  "invalid jq in a structured expression",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - reply:\n      body:\n        a: '.x | )'\n"},
			want:  []string{`flows/a.yaml:5:18: reply#0 body: invalid jq: unexpected token ")"`},
		},
		{
			name:  "undefined jq function",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - reply: {body: {status: ok}}\n"},
			want:  []string{"function not defined: ok/0", "needs jq quotes"},
		},
		{
			name:  "two kinds in one step",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: .a\n    log: hi\n"},
			want:  []string{"flows/a.yaml:4:5: a step has exactly one kind; found both map and log"},
		},
		{
			name:  "steps not a list",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps: {map: .a}\n"},
			want:  []string{"flows/a.yaml:2:8: steps must be a list, not a mapping"},
		},
		{
			name: "duplicate flow names",
			files: map[string]string{
				"flows/a.yaml": okFlow,
				"flows/b.yaml": "flow: ok\ntrigger:\n  http: {method: GET, path: /other}\nsteps: [{map: .}]\n",
			},
			want: []string{`flows/b.yaml:1:7: duplicate flow name "ok" (also defined in flows/a.yaml)`},
		},
		{
			name: "duplicate routes modulo parameter names",
			files: map[string]string{
				"flows/a.yaml": "flow: a\ntrigger:\n  http:\n    method: GET\n    path: /x/{id}\nsteps: [{map: .}]\n",
				"flows/b.yaml": "flow: b\ntrigger:\n  http:\n    method: get\n    path: /x/{name}\nsteps: [{map: .}]\n",
			},
			want: []string{`flows/b.yaml:4:5: duplicate route GET /x/{name} (also the trigger of flow "a" in flows/a.yaml)`},
		},
		{
			name: "overlapping routes",
			files: map[string]string{
				"flows/a.yaml": "flow: a\ntrigger:\n  http:\n    path: /a/{x}\nsteps: [{map: .}]\n",
				"flows/b.yaml": "flow: b\ntrigger:\n  http:\n    path: /{y}/b\nsteps: [{map: .}]\n",
			},
			want: []string{"flows/b.yaml:4:5: route GET /{y}/b conflicts"},
		},
		{
			name:  "bad path template",
			files: map[string]string{"flows/a.yaml": "flow: a\ntrigger:\n  http:\n    path: /a/{x}/{x}\nsteps: [{map: .}]\n"},
			want:  []string{`flows/a.yaml:4:11: invalid path template "/a/{x}/{x}": parameter "x" appears twice`},
		},
		{
			name:  "bad method",
			files: map[string]string{"flows/a.yaml": "flow: a\ntrigger:\n  http: {method: FETCH, path: /a}\nsteps: [{map: .}]\n"},
			want:  []string{`unsupported method "FETCH"`},
		},
		{
			name:  "two triggers",
			files: map[string]string{"flows/a.yaml": "flow: a\ntrigger:\n  http: {path: /a}\n  schedule: {cron: '* * * * *'}\nsteps: [{map: .}]\n"},
			want:  []string{"flows/a.yaml:3:3: trigger needs exactly one of http, schedule"},
		},
		{
			name:  "invalid cron and zone",
			files: map[string]string{"flows/a.yaml": "flow: a\ntrigger:\n  schedule: {cron: '61 * * * *', timezone: Mars/Olympus}\nsteps: [{map: .}]\n"},
			want:  []string{`invalid cron expression "61 * * * *"`, `unknown time zone "Mars/Olympus"`},
		},
		{
			name:  "missing schema",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - validate: schemas/nope.json\n"},
			want:  []string{"flows/a.yaml:3:15: schema schemas/nope.json: no such file in the project"},
		},
		{
			name:  "schema outside schemas/",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - validate: ../etc/passwd\n"},
			want:  []string{`schema "../etc/passwd" must be a path under schemas/`},
		},
		{
			name: "invalid schema reported even when unused",
			files: map[string]string{
				"flows/a.yaml":     okFlow,
				"schemas/bad.json": `{"type": "nonsense"}`,
			},
			want: []string{"schemas/bad.json: invalid JSON Schema"},
		},
		{
			name: "schema with a remote ref",
			files: map[string]string{
				"flows/a.yaml":     okFlow,
				"schemas/net.json": `{"$ref": "https://example.com/x.json"}`,
			},
			want: []string{"schemas/net.json: invalid JSON Schema", "only references inside the project"},
		},
		{
			name:  "unknown credential resource",
			cfg:   cfg,
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - http:\n      request: {url: 'https://x.example'}\n      auth: {bearer: nope}\n"},
			want:  []string{`flows/a.yaml:5:22: auth: no credentials for resource "nope"`},
		},
		{
			name:  "call to an unknown flow",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - call: b\n"},
			want:  []string{`flows/a.yaml:3:11: call: no flow named "b"`},
		},
		{
			name: "call cycle",
			files: map[string]string{
				"flows/a.yaml": "flow: a\nsteps:\n  - call: b\n",
				"flows/b.yaml": "flow: b\nsteps:\n  - call: {flow: a}\n",
			},
			want: []string{"call cycle: a -> b -> a"},
		},
		{
			name:  "missing jq module",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: 'import \"nope\" as n; n::f'\n"},
			want:  []string{`module not found: "nope"`},
		},
		{
			name: "broken jq module",
			files: map[string]string{
				"flows/a.yaml": okFlow,
				"jq/lib.jq":    "def f: .a;\ndef g: (;\n",
			},
			want: []string{"jq/lib.jq:2:9: invalid jq module: unexpected token \";\""},
		},
		{
			name:  "unterminated template",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - log: 'hello ${ .a'\n"},
			want:  []string{"flows/a.yaml:3:10: log#0 message: unterminated"},
		},
		{
			name:  "bad retry and timeout",
			files: map[string]string{"flows/a.yaml": "flow: a\ntimeout: soon\nsteps:\n  - http:\n      request: {url: 'https://x.example'}\n      retry: {attempts: 99}\n"},
			want:  []string{"timeout must be a positive duration", "retry attempts must be between 1 and 10"},
		},
		{
			name:  "relative url",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - http: {request: {url: /orders}}\n"},
			want:  []string{`url "/orders" must be an absolute http or https URL`},
		},
		{
			name:  "invalid openapi",
			files: map[string]string{"flows/a.yaml": okFlow, "openapi/api.yaml": "title: nope\n"},
			want:  []string{"openapi/api.yaml:1:1: not an OpenAPI document"},
		},
		{
			name:  "two documents",
			files: map[string]string{"flows/a.yaml": okFlow + "---\nflow: b\n"},
			want:  []string{"more than one YAML document"},
		},
		{
			name:  "switch default not last",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - switch:\n      - default: [{map: .}]\n      - when: .a\n        steps: [{map: .}]\n"},
			want:  []string{"flows/a.yaml:4:9: default must be the last case"},
		},
		{
			name:  "alias bomb",
			files: map[string]string{"flows/a.yaml": "flow: a\nx0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]\n" + aliasBomb(8) + "steps: [{map: {x: *a8}}]\n"},
			want:  []string{"flows/a.yaml: document expands to more than 100000 nodes"},
		},
		{
			name:  "for-each into equals as",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps: [{for-each: {items: .body, into: item, steps: [{map: .}]}}]\n"},
			want:  []string{`into must differ from as ("item")`},
		},
		{
			name:  "yaml merge keys refused",
			files: map[string]string{"flows/a.yaml": "flow: a\nsteps:\n  - map: .a\n    <<: {log: x}\n"},
			want:  []string{"merge keys are not supported"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Load(context.Background(), project(tt.files), tt.cfg)
			if err == nil {
				t.Fatalf("Load succeeded with %d flows, want an error", len(p.Flows))
			}
			var le *LoadError
			if !errors.As(err, &le) {
				t.Errorf("error %T is not a *LoadError: %v", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not contain %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestLoadReportsEveryError: a developer fixes a project in one round trip.
func TestLoadReportsEveryError(t *testing.T) {
	_, err := Load(context.Background(), project(map[string]string{
		"flows/a.yaml": "flow: a\nsteps:\n  - map: '.a |'\n  - bogus: 1\n",
		"flows/b.yaml": "flow: b\nsteps:\n  - call: c\n",
	}), nil)
	var list interface{ Unwrap() []error }
	if !errors.As(err, &list) {
		t.Fatalf("want a joined error, got %v", err)
	}
	if n := len(list.Unwrap()); n != 3 {
		t.Errorf("got %d errors, want 3:\n%v", n, err)
	}
	for _, e := range list.Unwrap() {
		var le *LoadError
		if !errors.As(e, &le) || le.Line == 0 {
			t.Errorf("error without a position: %v", e)
		}
	}
}

func TestLoadProject(t *testing.T) {
	p, err := Load(context.Background(), project(map[string]string{
		ManifestFile:       "name: shop\nversion: 2.0.0\ndescription: a shop\n",
		"flows/a.yaml":     okFlow,
		"flows/sub/b.yml":  "flow: tick\ntrigger:\n  schedule: {cron: '0 9 * * 1-5', timezone: Europe/Paris}\nsteps: [{call: lib}]\n",
		"flows/lib.yaml":   "flow: lib\ntimeout: 3s\nsteps: [{map: '{x: 1}'}]\n",
		"static/a.txt":     "hello",
		"openapi/api.yaml": "openapi: 3.1.0\n",
		"tests/t.yaml":     "not: loaded",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != "shop" || p.Version != "2.0.0" || p.Description != "a shop" {
		t.Errorf("manifest: got %q %q %q", p.Name, p.Version, p.Description)
	}
	var names []string
	for _, f := range p.Flows {
		names = append(names, f.Name)
	}
	if got := strings.Join(names, ","); got != "lib,ok,tick" {
		t.Errorf("flows: got %s, want lib,ok,tick (sorted)", got)
	}
	if f := p.Flow("ok"); f == nil || f.HTTP == nil || f.HTTP.Pattern() != "GET /ok" || f.Timeout != DefaultTimeout {
		t.Errorf("flow ok: %+v", f)
	}
	tick := p.Flow("tick")
	if tick == nil || tick.Schedule == nil || tick.Schedule.Location.String() != "Europe/Paris" || tick.File != "flows/sub/b.yml" {
		t.Fatalf("flow tick: %+v", tick)
	}
	if lib := p.Flow("lib"); lib.HTTP != nil || lib.Schedule != nil || lib.Timeout.String() != "3s" {
		t.Errorf("flow lib: %+v", lib)
	}
	if p.Flow("nope") != nil {
		t.Error("Flow(nope) is not nil")
	}
	if strings.Join(p.Static, ",") != "static/a.txt" || strings.Join(p.OpenAPI, ",") != "openapi/api.yaml" {
		t.Errorf("static %v openapi %v", p.Static, p.OpenAPI)
	}
}

func TestScheduleNext(t *testing.T) {
	p, err := Load(context.Background(), project(map[string]string{
		"flows/a.yaml": "flow: a\ntrigger:\n  schedule: {cron: '30 9 * * *', timezone: America/New_York}\nsteps: [{map: .}]\n",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := p.Flow("a").Schedule
	after := mustTime(t, "2026-01-15T12:00:00Z") // 07:00 in New York
	if got, want := s.Next(after).UTC().Format("15:04"), "14:30"; got != want {
		t.Errorf("next: got %s UTC, want %s", got, want)
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// aliasBomb builds levels of aliases each referring ten times to the previous.
func aliasBomb(levels int) string {
	var b strings.Builder
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "x%d: &a%d [", i, i)
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]\n")
	}
	return b.String()
}

func TestLoadIgnoresDotFiles(t *testing.T) {
	_, err := Load(context.Background(), project(map[string]string{
		"flows/a.yaml":        okFlow,
		"flows/.#a.yaml":      "garbage: [",
		"flows/.hidden/b.yml": "garbage: [",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadMissingManifest(t *testing.T) {
	_, err := Load(context.Background(), fstest.MapFS{"flows/a.yaml": {Data: []byte(okFlow)}}, nil)
	var le *LoadError
	if !errors.As(err, &le) || le.File != ManifestFile || !strings.Contains(le.Msg, "missing project manifest") {
		t.Fatalf("got %v, want a missing manifest error", err)
	}
}

func TestTimeoutPrecedence(t *testing.T) {
	files := map[string]string{
		"flows/a.yaml": "flow: a\nsteps: [{map: .}]\n",
		"flows/b.yaml": "flow: b\ntimeout: 1500ms\nsteps: [{map: .}]\n",
	}
	tests := []struct {
		cfg  *Config
		a, b time.Duration
	}{
		{nil, DefaultTimeout, 1500 * time.Millisecond},
		{&Config{}, DefaultTimeout, 1500 * time.Millisecond},
		{&Config{Timeout: 5 * time.Second}, 5 * time.Second, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		p, err := Load(context.Background(), project(files), tt.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := p.Flow("a").Timeout, p.Flow("b").Timeout; a != tt.a || b != tt.b {
			t.Errorf("cfg %+v: timeouts %s %s, want %s %s", tt.cfg, a, b, tt.a, tt.b)
		}
	}
}
