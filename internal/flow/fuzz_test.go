package flow

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/itchyny/gojq"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/secret"
)

// FuzzLoad feeds arbitrary flow definitions to the parser, next to the
// orders example's schemas and jq modules so references can resolve. Load
// must answer with a project or *LoadErrors, never panic (its recover
// would turn a panic into an "internal error", which fails the target),
// and a loaded flow must run without panicking.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"../../examples/hello/flows", "../../examples/orders/flows"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(dir + "/" + e.Name())
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	f.Add("flow: a\nsteps:\n  - switch:\n      - when: .a\n        steps: [{fail: x}]\n      - default: [{reply: {status: 201}}]\n")
	f.Add("flow: a\nsteps: [{for-each: {items: .body, steps: [{log: '${ .vars.item }'}]}}, {try: {steps: [{call: a2}], catch: []}}]\n")
	f.Add("flow: a\ntrigger: {schedule: {cron: '@every 1m'}}\nsteps: [{map: &x .a}, {map: *x}]\n")

	base := map[string]string{}
	for _, name := range []string{"schemas/order.json", "schemas/item.json", "jq/orders.jq", "static/currencies.json"} {
		data, err := os.ReadFile("../../examples/orders/" + name)
		if err != nil {
			f.Fatal(err)
		}
		base[name] = string(data)
	}
	base["flows/price-order.yaml"] = "flow: price-order\nsteps: [{map: .}]\n"
	base["flows/a2.yaml"] = "flow: a2\nsteps: [{map: .}]\n"
	cfg := &Config{
		Values:      map[string]any{"backendURL": "https://backend.example", "pricingURL": "https://pricing.example"},
		Credentials: map[string]Credential{"backend": {User: "u", Password: secret.New("pw-fuzz")}, "backend-token": {User: "t", Password: secret.New("tok-fuzz")}},
		Transport:   refuseTransport{},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
		Sleep:       func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}

	f.Fuzz(func(t *testing.T, flowYAML string) {
		files := map[string]string{"flows/fuzz.yaml": flowYAML}
		for k, v := range base {
			files[k] = v
		}
		p, err := Load(context.Background(), project(files), cfg)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatalf("Load panicked: %v\ninput:\n%s", err, flowYAML)
			}
			checkLoadErrors(t, err)
			return
		}
		for _, fl := range p.Flows {
			if fl.File != "flows/fuzz.yaml" {
				continue
			}
			// A short deadline stops programs that would spin.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
			_, _ = fl.Run(ctx, &Message{Body: map[string]any{"items": []any{map[string]any{"sku": "ABC-001", "qty": 1, "price": 1}}}}, discardTracer{})
			cancel()
		}
	})
}

// checkLoadErrors: every error of a failed Load is a *LoadError naming a file.
func checkLoadErrors(t *testing.T, err error) {
	t.Helper()
	errs := []error{err}
	var list interface{ Unwrap() []error }
	if errors.As(err, &list) {
		errs = list.Unwrap()
	}
	for _, e := range errs {
		var le *LoadError
		if !errors.As(e, &le) || le.File == "" {
			t.Fatalf("error without a file: %T %v", e, e)
		}
	}
}

type refuseTransport struct{}

func (refuseTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("network disabled in fuzzing")
}

var _ fs.FS = project(nil)

// FuzzJQLimits feeds arbitrary jq source to the limits that guard the
// compiler. parseJQ must never panic; what it accepts is within the size
// limit and compiles without running out of stack, and what the depth
// check refuses really is that deep.
//
//	go test ./internal/flow -run '^$' -fuzz FuzzJQLimits -fuzztime 1m
func FuzzJQLimits(f *testing.F) {
	for _, s := range []string{".", ".a.b | [.[] | {x: .}]", `"\(.a) \(.b)"`, "reduce .[] as $x (0; . + $x)",
		"if . then try error catch . else [1,2,3] end", "def f(g): g | g; f(.+1)", "label $out | foreach .[] as $i (0; .+$i; if . > 3 then ., break $out else . end)",
		"[[[[[[[[[[.]]]]]]]]]]", "(((((((((((.)))))))))))", "1+1+1+1+1+1+1+1", `{a:{b:{c:{d:.}}}}`, ".[] as [$a, {b: $c}] | $a"} {
		f.Add(s)
	}
	env := (&jqEnv{modules: &moduleSet{queries: map[string]*gojq.Query{}, data: map[string]any{}}}).options()
	f.Fuzz(func(t *testing.T, src string) {
		q, err := parseJQ(src)
		if err != nil {
			var le *jqLimitError
			if errors.As(err, &le) && len(src) <= MaxJQProgramSize {
				// Refused for depth: the parser's tree must be that deep.
				if q2, perr := gojq.Parse(src); perr != nil || jqDepth(reflect.ValueOf(q2), 0) <= MaxJQDepth {
					t.Fatalf("refused %q as too deep, but it is not (%v)", src, perr)
				}
			}
			return
		}
		if len(src) > MaxJQProgramSize {
			t.Fatalf("accepted %d bytes", len(src))
		}
		_, _ = gojq.Compile(q, env...)
	})
}

// FuzzDocumentLimits checks the nesting scan of JSON documents against
// encoding/json's own view of the same bytes, and the YAML depth check
// against a plain walk of the parsed tree.
//
//	go test ./internal/flow -run '^$' -fuzz FuzzDocumentLimits -fuzztime 1m
func FuzzDocumentLimits(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"[[["}]}`, `[[[[[[]]]]]]`, `"\"[{"`, "a: [b, {c: d}]\n", "x: &a [1, [2]]\ny: [*a, *a]\n",
		"- - - - - 1\n", strings.Repeat("[", 129) + strings.Repeat("]", 129)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if depth, ok := jsonDepth([]byte(doc)); ok {
			err := checkJSONDepth([]byte(doc))
			if (depth > MaxDocumentDepth) != (err != nil) {
				t.Fatalf("JSON nested %d deep: checkJSONDepth says %v", depth, err)
			}
		}
		var n yaml.Node
		if yaml.Unmarshal([]byte(doc), &n) != nil {
			return
		}
		deep := yamlTooDeep(&n)
		if plain := yamlPlainDepth(&n, 0); plain > MaxDocumentDepth+1 && deep == nil {
			t.Fatalf("YAML nested %d deep passed the check", plain)
		}
	})
}

// jsonDepth is the nesting of a valid JSON document by encoding/json's
// tokenizer; ok is false for invalid JSON.
func jsonDepth(data []byte) (int, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	depth, deepest := 0, 0
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			return deepest, depth == 0
		}
		if err != nil {
			return 0, false
		}
		if d, ok := tok.(json.Delim); ok {
			if d == '[' || d == '{' {
				depth++
				deepest = max(deepest, depth)
			} else {
				depth--
			}
		}
	}
}

// yamlPlainDepth counts levels without following aliases, capped.
func yamlPlainDepth(n *yaml.Node, depth int) int {
	if depth > MaxDocumentDepth+2 {
		return depth
	}
	deepest := depth + 1
	for _, c := range n.Content {
		deepest = max(deepest, yamlPlainDepth(c, depth+1))
	}
	return deepest
}
