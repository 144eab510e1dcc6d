package flow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/sluice-dev/sluice/internal/secret"
)

// load loads a project from files and returns the flow called name.
func load(t *testing.T, files map[string]string, cfg *Config, name string) *Flow {
	t.Helper()
	p, err := Load(context.Background(), project(files), cfg)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	f := p.Flow(name)
	if f == nil {
		t.Fatalf("no flow %q", name)
	}
	return f
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal %v: %v", v, err)
	}
	return string(b)
}

func TestRun(t *testing.T) {
	cfg := &Config{Values: map[string]any{"greeting": "hi", "limits": map[string]int{"max": 3}}}
	tests := []struct {
		name       string
		steps      string
		extra      map[string]string // more project files
		msg        *Message
		wantStatus int
		wantBody   string // JSON
		wantHeader map[string]string
		wantErr    string // substring of the *Error message
	}{
		{
			name:       "no reply answers the body with 200",
			steps:      `[{map: '{n: .params.id}'}]`,
			msg:        &Message{Params: map[string]string{"id": "7"}},
			wantStatus: 200, wantBody: `{"n":"7"}`,
		},
		{
			name:       "config, query and headers are visible",
			steps:      `[{map: '[.config.greeting, .config.limits.max, .query.q, .headers["x-a"]]'}]`,
			msg:        &Message{Query: map[string]string{"q": "x"}, Headers: map[string]string{"x-a": "b"}},
			wantStatus: 200, wantBody: `["hi",3,"x","b"]`,
		},
		{
			name:       "set sees the message before the step",
			steps:      `[{set: {a: 1}}, {set: {a: '.vars.a + 1', b: '.vars.a'}}, {map: .vars}]`,
			wantStatus: 200, wantBody: `{"a":2,"b":1}`,
		},
		{
			name: "reply with status, headers and a structured body",
			steps: `
  - reply:
      status: 201
      headers: {Location: '/x/${ .body.id }', X-Count: '${ .body.n }'}
      body: {id: .body.id, n: '.body.n * 2', fixed: '"text"', list: [1, .body.n]}
  - fail: never reached`,
			msg:        &Message{Body: map[string]any{"id": "a", "n": 2}},
			wantStatus: 201, wantBody: `{"fixed":"text","id":"a","list":[1,2],"n":4}`,
			wantHeader: map[string]string{"location": "/x/a", "x-count": "2"},
		},
		{
			name:       "structured expression of paths and literals",
			steps:      `[{reply: {body: {a: .body.x, b: [.params.id, 1, 2.5, null, true], c: {d: .vars.none.deeper}, e: .}}}]`,
			msg:        &Message{Body: map[string]any{"x": "y"}, Params: map[string]string{"id": "7"}},
			wantStatus: 200, wantBody: `{"a":"y","b":["7",1,2.5,null,true],"c":{"d":null},"e":{"body":{"x":"y"},"config":{"greeting":"hi","limits":{"max":3}},"headers":{},"params":{"id":"7"},"query":{},"vars":{}}}`,
		},
		{
			name:    "a path through a string gives jq's error",
			steps:   `[{reply: {body: {a: .body.s.x}}}]`,
			msg:     &Message{Body: map[string]any{"s": "str"}},
			wantErr: `expected an object but got: string ("str")`, wantStatus: 500,
		},
		{
			name:    "a plain path through a number gives jq's error",
			steps:   `[{map: .body.n.x}]`,
			msg:     &Message{Body: map[string]any{"n": 1}},
			wantErr: "expected an object but got: number (1)", wantStatus: 500,
		},
		{
			name:       "reply status from jq",
			steps:      `[{reply: {status: 'if .body then 202 else 204 end'}}]`,
			msg:        &Message{Body: true},
			wantStatus: 202, wantBody: `true`,
		},
		{
			name: "switch takes the first true case",
			steps: `
  - switch:
      - when: .body.n > 10
        steps: [{map: '"big"'}]
      - when: .body.n > 1
        steps: [{map: '"medium"'}]
      - default: [{map: '"small"'}]`,
			msg:        &Message{Body: map[string]any{"n": 5}},
			wantStatus: 200, wantBody: `"medium"`,
		},
		{
			name: "switch default",
			steps: `
  - switch:
      - when: .body.n > 10
        steps: [{map: '"big"'}]
      - default: [{map: '"small"'}]`,
			msg:        &Message{Body: map[string]any{"n": 1}},
			wantStatus: 200, wantBody: `"small"`,
		},
		{
			name: "for-each collects rewritten items",
			steps: `
  - for-each:
      items: .body
      as: x
      into: out
      steps:
        - set: {x: '.vars.x * 10', seen: '(.vars.seen // 0) + 1'}
  - map: '{out: .vars.out, seen: .vars.seen, x: .vars.x}'`,
			msg:        &Message{Body: []any{1, 2, 3}},
			wantStatus: 200, wantBody: `{"out":[10,20,30],"seen":3,"x":null}`,
		},
		{
			name:    "for-each over a non-array fails",
			steps:   `[{for-each: {items: .body, steps: [{map: .}]}}]`,
			msg:     &Message{Body: "str"},
			wantErr: "for-each#0: items must be an array, not a string",
		},
		{
			name: "try catches a fail and exposes .error",
			steps: `
  - try:
      steps:
        - fail: {status: 418, message: 'teapot ${ .body }', details: '{why: "tea"}'}
        - map: '"not reached"'
      catch:
        - map: '{caught: .error}'`,
			msg:        &Message{Body: "x"},
			wantStatus: 200, wantBody: `{"caught":{"details":{"why":"tea"},"message":"teapot x","status":418,"step":""}}`,
		},
		{
			name: "try catches a jq runtime error",
			steps: `
  - try:
      steps: [{map: '.body | tonumber'}]
      catch: [{map: '{status: .error.status, step: .error.step}'}]`,
			msg:        &Message{Body: "abc"},
			wantStatus: 200, wantBody: `{"status":500,"step":"try#0/map#0"}`,
		},
		{
			name: "reply inside try is not caught",
			steps: `
  - try:
      steps: [{reply: {status: 202, body: '"early"'}}]
      catch: [{map: '"caught"'}]
  - map: '"late"'`,
			wantStatus: 202, wantBody: `"early"`,
		},
		{
			name:    "fail ends the flow with its status",
			steps:   `[{fail: {status: 409, message: 'dup ${ .params.id }'}}]`,
			msg:     &Message{Params: map[string]string{"id": "9"}},
			wantErr: "dup 9", wantStatus: 409,
		},
		{
			name:    "fail shorthand is a 500",
			steps:   `[{fail: broken}]`,
			wantErr: "broken", wantStatus: 500,
		},
		{
			name:    "more than one output is an error",
			steps:   `[{map: '.body[]'}]`,
			msg:     &Message{Body: []any{1, 2}},
			wantErr: "map#0: produced more than one value", wantStatus: 500,
		},
		{
			name:    "no output is an error",
			steps:   `[{map: 'empty'}]`,
			wantErr: "map#0: produced no value", wantStatus: 500,
		},
		{
			name:       "templates insert strings raw and other values as JSON",
			steps:      `[{map: '1'}, {reply: {headers: {x: 'a=${ .body } b=${ [1] } c=${ "s" } $${literal}'}}}]`,
			wantStatus: 200, wantBody: `1`, wantHeader: map[string]string{"x": `a=1 b=[1] c=s ${literal}`},
		},
		{
			name:       "templates allow braces inside the expression",
			steps:      `[{reply: {headers: {x: '${ {a: "}"} | .a }!'}}}]`,
			wantStatus: 200, wantBody: `null`, wantHeader: map[string]string{"x": "}!"},
		},
		{
			name:       "call runs another flow on a copy of the message",
			steps:      `[{set: {v: 1}}, {call: double}, {map: '{body: .body, v: .vars.v}'}]`,
			extra:      map[string]string{"flows/double.yaml": "flow: double\nsteps:\n  - set: {v: 99}\n  - reply: {body: '.body * 2 + .vars.v'}\n"},
			msg:        &Message{Body: 4},
			wantStatus: 200, wantBody: `{"body":107,"v":1}`,
		},
		{
			name:       "jq modules and JSON data",
			steps:      `[{map: 'import "lib" as l; import "data" as $d; [(.body | l::twice), $d::d.k]'}]`,
			extra:      map[string]string{"jq/lib.jq": "def twice: . * 2;", "jq/data.json": `{"k": "v"}`},
			msg:        &Message{Body: 21},
			wantStatus: 200, wantBody: `[42,"v"]`,
		},
		{
			name:       "include and modules in subdirectories",
			steps:      `[{map: 'include "lib/math"; import "lib/str" as s; [(.body | inc), ("a" | s::up)]'}]`,
			extra:      map[string]string{"jq/lib/math.jq": "def inc: . + 1;", "jq/lib/str.jq": "def up: ascii_upcase;"},
			msg:        &Message{Body: 1},
			wantStatus: 200, wantBody: `[2,"A"]`,
		},
		{
			name:    "configfile without generic files is a run-time error",
			steps:   `[{map: 'configfile("x")'}]`,
			wantErr: "configfile: no generic configuration files", wantStatus: 500,
		},
		{
			name:       "static files",
			steps:      `[{map: 'static("static/x.json") | fromjson'}]`,
			extra:      map[string]string{"static/x.json": `{"a": 1}`},
			wantStatus: 200, wantBody: `{"a":1}`,
		},
		{
			name:       "the process environment is hidden",
			steps:      `[{map: '[$ENV, env]'}]`,
			wantStatus: 200, wantBody: `[{},{}]`,
		},
		{
			name:  "validate passes and fails with details",
			steps: `[{validate: schemas/s.json}, {validate: {schema: schemas/s.json, value: '{n: "x"}', status: 422}}]`,
			extra: map[string]string{"schemas/s.json": `{"type": "object", "properties": {"n": {"type": "integer"}}}`},
			msg:   &Message{Body: map[string]any{"n": 1}}, wantErr: "does not match schema schemas/s.json: at /n:", wantStatus: 422,
		},
		{
			name:       "validate accepts big integers from jq",
			steps:      `[{map: '{n: 100000000000000000000000}'}, {validate: schemas/s.json}]`,
			extra:      map[string]string{"schemas/s.json": `{"type": "object", "properties": {"n": {"type": "integer"}}}`},
			wantStatus: 200, wantBody: `{"n":100000000000000000000000}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"flows/f.yaml": "flow: f\nsteps: " + tt.steps + "\n"}
			for k, v := range tt.extra {
				files[k] = v
			}
			f := load(t, files, cfg, "f")
			resp, err := f.Run(context.Background(), tt.msg, nil)
			if tt.wantErr != "" {
				var fe *Error
				if !errors.As(err, &fe) {
					t.Fatalf("got %v, %v; want *Error containing %q", resp, err, tt.wantErr)
				}
				if !strings.Contains(fe.Message, tt.wantErr) {
					t.Errorf("error %q does not contain %q", fe.Message, tt.wantErr)
				}
				if tt.wantStatus != 0 && fe.Status != tt.wantStatus {
					t.Errorf("status %d, want %d", fe.Status, tt.wantStatus)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if resp.Status != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.Status, tt.wantStatus)
			}
			if got := jsonString(t, resp.Body); got != tt.wantBody {
				t.Errorf("body %s, want %s", got, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if resp.Headers[k] != v {
					t.Errorf("header %s = %q, want %q (all: %v)", k, resp.Headers[k], v, resp.Headers)
				}
			}
		})
	}
}

// TestRunDoesNotModifyMessage: the runtime may reuse or log the message.
func TestRunDoesNotModifyMessage(t *testing.T) {
	f := load(t, map[string]string{"flows/f.yaml": "flow: f\nsteps: [{set: {x: 1}}, {map: '.body + 1'}]\n"}, nil, "f")
	msg := &Message{Body: 1, Vars: map[string]any{"y": 2}}
	if _, err := f.Run(context.Background(), msg, nil); err != nil {
		t.Fatal(err)
	}
	if msg.Body != 1 || len(msg.Vars) != 1 {
		t.Errorf("message changed: %+v", msg)
	}
}

// spin is a jq program that never ends on its own.
const spin = `def spin: spin; spin`

func TestRunTimeoutStopsSpinningJQ(t *testing.T) {
	f := load(t, map[string]string{"flows/f.yaml": "flow: f\ntimeout: 20ms\nsteps:\n  - map: '" + spin + "'\n"}, nil, "f")
	_, err := f.Run(context.Background(), nil, nil)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want a deadline error", err)
	}
	if isFlowError(err) {
		t.Errorf("a timeout must not be an *Error that try could catch: %v", err)
	}
}

func TestRunCancelStopsSpinningJQ(t *testing.T) {
	f := load(t, map[string]string{"flows/f.yaml": "flow: f\nsteps:\n  - try:\n      steps: [{map: '" + spin + "'}]\n      catch: [{map: '\"caught\"'}]\n"}, nil, "f")
	ctx, cancel := context.WithCancel(context.Background())
	tr := &cancelOnStep{cancel: cancel}
	done := make(chan error, 1)
	go func() {
		_, err := f.Run(ctx, nil, tr)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled (not caught by try)", err)
	}
}

type cancelOnStep struct{ cancel func() }

func (c *cancelOnStep) Step(StepEvent) { c.cancel() }

type recorder struct {
	mu     sync.Mutex
	events []StepEvent
}

func (r *recorder) Step(ev StepEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

func TestTracerEventsAreRedacted(t *testing.T) {
	const pw = "hunter2-secret"
	cfg := &Config{Credentials: map[string]Credential{"svc": {User: "u", Password: secret.New(pw)}}}
	f := load(t, map[string]string{
		"flows/f.yaml": `flow: f
steps:
  - map: '{echo: .body, long: ("x" * 2000)}'
  - switch:
      - when: true
        steps: [{set: {v: .body.echo}}]
  - try:
      steps: [{fail: 'bad ${ .vars.v }'}]
      catch: [{map: .error.message}]
  - call: g
`,
		"flows/g.yaml": "flow: g\nsteps: [{map: .body}]\n",
	}, cfg, "f")
	rec := &recorder{}
	msg := &Message{Body: "token " + pw, Headers: map[string]string{"authorization": "Bearer abc", "x-ok": "fine"}}
	resp, err := f.Run(context.Background(), msg, rec)
	if err != nil {
		t.Fatal(err)
	}
	// The answer itself is the flow's business and is not redacted; the
	// error message that reached it was.
	if got := resp.Body; got != "bad token "+secret.Redacted {
		t.Errorf("body %v", got)
	}
	var labels []string
	for _, ev := range rec.events {
		labels = append(labels, ev.Flow+":"+ev.Step)
		dump := fmt.Sprintf("%v %v %v", ev.Input, ev.Output, ev.Err)
		if strings.Contains(dump, pw) || strings.Contains(dump, "Bearer abc") {
			t.Errorf("event %s leaks a secret: %s", ev.Step, dump)
		}
		if strings.Contains(dump, strings.Repeat("x", excerptString+1)) {
			t.Errorf("event %s has an untruncated string", ev.Step)
		}
		if ev.Start.IsZero() {
			t.Errorf("event %s has no start time", ev.Step)
		}
	}
	want := "f:map#0 f:switch#1/case#0/set#0 f:switch#1 f:try#2/fail#0 f:try#2/catch/map#0 f:try#2 g:map#0 f:call#3"
	if got := strings.Join(labels, " "); got != want {
		t.Errorf("events:\n got %s\nwant %s", got, want)
	}
	if rec.events[3].Err == nil {
		t.Error("the failing step's event has no error")
	}
}

func TestConfigFile(t *testing.T) {
	cfg := &Config{Files: fstest.MapFS{"rates.json": {Data: []byte(`{"eur": 1}`)}}}
	f := load(t, map[string]string{"flows/f.yaml": "flow: f\nsteps: [{map: 'configfile(\"rates.json\") | fromjson'}]\n"}, cfg, "f")
	resp, err := f.Run(context.Background(), nil, nil)
	if err != nil || jsonString(t, resp.Body) != `{"eur":1}` {
		t.Fatalf("got %v, %v", resp, err)
	}
}

// TestConcurrentRuns: the runtime runs one flow for many requests at once;
// a compiled flow shares nothing mutable between runs (run with -race).
func TestConcurrentRuns(t *testing.T) {
	f := load(t, map[string]string{
		"flows/f.yaml": `flow: f
steps:
  - validate: schemas/s.json
  - for-each:
      items: .body.items
      into: doubled
      steps: [{set: {item: '.vars.item * 2'}}]
  - try:
      steps: [{fail: 'odd ${ .params.n }'}]
      catch: [{set: {caught: .error.message}}]
  - reply: {body: '{n: .params.n, d: .vars.doubled, c: .vars.caught}'}
`,
		"schemas/s.json": `{"type": "object", "required": ["items"]}`,
	}, nil, "f")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				n := fmt.Sprint(g*100 + i)
				resp, err := f.Run(context.Background(), &Message{Body: map[string]any{"items": []any{1, 2}}, Params: map[string]string{"n": n}}, &recorder{})
				if err != nil {
					errs <- err
					return
				}
				want := `{"c":"odd ` + n + `","d":[2,4],"n":"` + n + `"}`
				if got, _ := json.Marshal(resp.Body); string(got) != want {
					errs <- fmt.Errorf("got %s, want %s", got, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestConfigNumbers: configuration values reach jq as JSON numbers that
// keep their precision and still do arithmetic.
func TestConfigNumbers(t *testing.T) {
	cfg := &Config{Values: map[string]any{"n": 3, "f": 1.5, "big": uint64(18446744073709551615)}}
	f := load(t, map[string]string{"flows/f.yaml": "flow: f\nsteps: [{map: '[.config.n + 1, .config.f * 2, .config.n > 2, .config.big, (.config.n | tostring)]'}]\n"}, cfg, "f")
	resp, err := f.Run(context.Background(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := jsonString(t, resp.Body), `[4,3,true,18446744073709551615,"3"]`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// TestLocal: a flow is local when no step of it, or of a flow it calls,
// waits on a server; the runtime runs local flows on the request's own
// goroutine.
func TestLocal(t *testing.T) {
	files := map[string]string{
		"flows/pure.yaml": "flow: pure\nsteps:\n  - map: '{a: 1}'\n  - set: {x: .body.a}\n  - for-each: {items: '[1]', steps: [{log: '${ .vars.item }'}]}\n" +
			"  - try: {steps: [{fail: {status: 400, message: no}}], catch: [{call: callee}]}\n  - switch: [{when: .vars.x, steps: [{reply: {status: 200}}]}]\n",
		"flows/callee.yaml": "flow: callee\nsteps:\n  - map: .\n",
		"flows/outer.yaml":  "flow: outer\nsteps:\n  - call: pure\n",
		"flows/remote.yaml": "flow: remote\nsteps:\n  - map: .\n  - try: {steps: [{http: {request: {url: 'https://b.example/x'}}}], catch: []}\n",
		"flows/caller.yaml": "flow: caller\nsteps:\n  - call: remote\n",
	}
	for name, want := range map[string]bool{"pure": true, "callee": true, "outer": true, "remote": false, "caller": false} {
		if got := load(t, files, nil, name).Local(); got != want {
			t.Errorf("%s: Local() = %v, want %v", name, got, want)
		}
	}
}
