package flow

import (
	"fmt"
	"math"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/itchyny/gojq"
)

// nativeShapes are the programs the native form compiles; every one runs
// both ways on every input of nativeInputs.
var nativeShapes = []string{
	`.`, `.a`, `.a.b`, `."a"`, `.["a"]`, `.a.b.c`, `.[0]`, `.[2]`, `.items[0].sku`,
	`null`, `true`, `false`, `1`, `-1`, `1.5`, `1e3`, `-2.5`, `"text"`,
	`[]`, `[.a, .b]`, `[.[]]`, `[.items[].sku]`, `[.items[] | .price * .qty]`, `{}`, `{a: .a, b: 1}`,
	`{a}`, `{"a b": .a}`, `{a: .a, a: .b}`, `{x: {y: [.a, "z"]}}`, `{a: .items[]}`,
	`.a | .b`, `[.a, .b, .c]`,
	`.a + .b`, `.a - .b`, `.a * .b`, `.a / .b`, `.a % .b`, `.a + 1`, `.a * 2.5`, `.a / 2`,
	`-.a`, `.s + "!"`, `.a + null`, `null + .a`,
	`.a == .b`, `.a != .b`, `.a < .b`, `.a <= .b`, `.a > .b`, `.a >= .b`, `.s == "x"`,
	`.a and .b`, `.a or .b`, `.a // "dflt"`, `.missing // .a // 0`, `(.a, .b) // 7`,
	`if .a then "yes" else "no" end`, `if .a > 1 then .a elif .b then .b else null end`, `if .a then .b end`,
	`length`, `.s | length`, `.items | length`, `add`, `[.items[].qty] | add`,
	`[.items[] | .price * .qty] | add`, `map(.sku)`, `.items | map(.qty * 2)`, `[.[] | select(. > 1)]`,
	`.items | map(select(.qty > 1) | .sku)`, `not`, `.a | not`, `tostring`, `.a | tostring`, `[.a, .s] | join("-")`,
	`join(", ")`, `[empty]`, `[.a, empty, .b]`, `[.[]] | add`, `[.a, .b] | add`, `[.[] | . * 2] | add`, `[.s, .s] | add`,
	`[empty] | add`,
	`"id-\(.a)"`, `"\(.s) and \(.b)"`, `"\(.)"`, `"n=\(.a + 1)"`, `"\("lit")"`,
	`{customer: .params.customer, skus: [.body.items[].sku], quantity: ([.body.items[].qty] | add), total: ([.body.items[] | .price * .qty] | add)}`,
}

// nativeInputs cover the types jq values take, and the ones the native
// form hands back (big numbers, overflows, mismatched types).
var nativeInputs = []any{
	nil, true, false, 0, 3, -7, math.MaxInt, math.MinInt, 2.5, -0.5, math.Inf(1), "x", "ünï", "",
	[]any{}, []any{1, 2, 3}, []any{"a", nil, "b"}, []any{1, "a"}, []any{1.5, 2}, []any{math.MaxInt, 1},
	[]any{[]any{1}, map[string]any{"a": 1}}, []any{true, 1, "s", nil}, []any{2, 1.5, 3}, []any{nil, 0.25, nil, 1},
	[]any{nil, nil}, []any{"a", 1}, []any{math.MinInt, -1},
	map[string]any{}, map[string]any{"a": 1, "b": 2}, map[string]any{"a": 7, "b": 0}, map[string]any{"a": 2.5, "b": 4},
	map[string]any{"a": math.MaxInt, "b": 2}, map[string]any{"a": math.MinInt, "b": -1}, map[string]any{"a": "s", "b": 1},
	map[string]any{"a": nil, "b": false, "s": "x"}, map[string]any{"a": false, "b": nil}, map[string]any{"a": []any{1}, "b": []any{2}},
	map[string]any{"a": map[string]any{"b": map[string]any{"c": "deep"}}, "b": 1}, map[string]any{"a": "str", "s": "x"},
	map[string]any{"a": big.NewInt(5), "b": 1}, map[string]any{"a": 1, "b": 2.0, "s": "x"}, map[string]any{"a": -6, "b": 4},
	map[string]any{"items": []any{
		map[string]any{"sku": "A", "qty": 2, "price": 9.99},
		map[string]any{"sku": "B", "qty": 1, "price": 5},
	}},
	map[string]any{"items": []any{map[string]any{"sku": 1, "qty": "2", "price": 1}}},
	map[string]any{"items": map[string]any{"x": 1}},
	map[string]any{"items": "nope"},
	map[string]any{"params": map[string]any{"customer": "acme"}, "body": map[string]any{"items": []any{
		map[string]any{"sku": "A", "qty": 2, "price": 9.99}, map[string]any{"sku": "B", "qty": 3, "price": 1.25},
	}}},
	map[string]any{"params": map[string]any{"customer": "acme"}, "body": map[string]any{"items": []any{}}},
	map[string]any{"params": map[string]any{}, "body": "text"},
}

// gojqOutputs runs src through gojq alone: its outputs, or its error.
func gojqOutputs(t *testing.T, src string, in any) ([]any, error) {
	t.Helper()
	q, err := gojq.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	code, err := gojq.Compile(q)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	iter := code.Run(in)
	for {
		v, ok := iter.Next()
		if !ok {
			return out, nil
		}
		if err, isErr := v.(error); isErr {
			return out, err
		}
		out = append(out, v)
	}
}

// TestNativeMatchesGojq runs every compiled shape both ways: where the
// native form answers, gojq gives exactly that one value; where gojq
// errs or gives no or several values, the native form must not answer
// (the engine then runs gojq, which words the error).
func TestNativeMatchesGojq(t *testing.T) {
	for _, src := range nativeShapes {
		q, err := gojq.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		n := compileNative(q)
		if n == nil {
			t.Errorf("%s: not compiled natively", src)
			continue
		}
		answered := 0
		for _, in := range nativeInputs {
			want, werr := gojqOutputs(t, src, in)
			got, ok := n.value(in)
			if !ok {
				continue
			}
			answered++
			if werr != nil || len(want) != 1 {
				t.Errorf("%s on %s: native answered %#v, gojq gave %#v, %v", src, show(in), got, want, werr)
				continue
			}
			if !reflect.DeepEqual(got, want[0]) {
				t.Errorf("%s on %s: native %#v (%T), gojq %#v (%T)", src, show(in), got, got, want[0], want[0])
			}
			// The gen form agrees with the one form.
			outs, ok := n.gen(in, nil)
			if !ok || len(outs) != 1 || !reflect.DeepEqual(outs[0], got) {
				t.Errorf("%s on %s: gen gave %#v, %v", src, show(in), outs, ok)
			}
		}
		if answered == 0 {
			t.Errorf("%s: the native form answered for no input", src)
		}
	}
}

// TestNativeGeneratorsMatchGojq compares all outputs of the generators.
func TestNativeGeneratorsMatchGojq(t *testing.T) {
	for _, src := range []string{`.[]`, `.items[] | .sku`, `.items[].sku`, `.[] | .a`, `(.a, .b) | .c`, `(.a, .b) | [.]`, `.a, .b`, `.[] | select(. != null)`, `(.a, .b) // 7`, `(.a, .b) and true`, `empty`} {
		q, _ := gojq.Parse(src)
		n := compileNative(q)
		if n == nil {
			t.Fatalf("%s: not compiled natively", src)
		}
		for _, in := range nativeInputs {
			want, werr := gojqOutputs(t, src, in)
			got, ok := n.gen(in, nil)
			if !ok {
				continue
			}
			if werr != nil || (len(got) > 0 || len(want) > 0) && !reflect.DeepEqual(got, want) {
				t.Errorf("%s on %s: native %#v, gojq %#v, %v", src, show(in), got, want, werr)
			}
			// Outputs are appended after what out already holds, which
			// stays as it was.
			prefixed, ok := n.gen(in, []any{"before"})
			if !ok || prefixed[0] != "before" || !reflect.DeepEqual(prefixed[1:], got) && len(got) > 0 {
				t.Errorf("%s on %s: gen after a prefix gave %#v", src, show(in), prefixed)
			}
		}
	}
}

// TestNativeLeavesTheRestToGojq: constructs outside the subset are not
// compiled, so gojq (with the project's modules and functions) runs them.
func TestNativeLeavesTheRestToGojq(t *testing.T) {
	for _, src := range []string{
		`.a?`, `.[]?`, `. as $x | $x`, `$__loc__`, `reduce .[] as $x (0; . + $x)`, `try .a catch "x"`,
		`def f: 1; f`, `(def add: 1; add)`, `.[1:2]`, `.[.a]`, `@base64 "x\(.a)"`, `{(.a): 1}`, `{$x}`,
		`.a = 1`, `.a |= 1`, `static("x")`, `keys`, `..`, `label $f | 1`, `"\(.a)" as $s | $s`, `.[1.5]`,
		`input`, `first(.[])`, `{"\(.a)": 1}`, `.a.b?`, `add(.[])`, `-.a?`, `.[-1]`, `100000000000000000000`,
	} {
		q, err := gojq.Parse(src)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if compileNative(q) != nil {
			t.Errorf("%s: compiled natively, want gojq", src)
		}
	}
}

// TestNativeInFlows: a map step in the subset answers as gojq does,
// errors included (the engine falls back and words jq's error).
func TestNativeInFlows(t *testing.T) {
	p, err := Load(t.Context(), project(map[string]string{"flows/f.yaml": `flow: f
trigger: {http: {method: POST, path: /f}}
steps:
  - map: '{total: ([.body.items[] | .price * .qty] | add), first: .body.items[0].sku, n: (.body.items | length)}'
`}), nil)
	if err != nil {
		t.Fatal(err)
	}
	f := p.Flow("f")
	if f.prog.steps == nil {
		t.Fatal("no steps")
	}
	ok := &Message{Body: map[string]any{"items": []any{map[string]any{"sku": "A", "qty": 2, "price": 1.5}}}}
	resp, err := f.Run(t.Context(), ok, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"total": 3.0, "first": "A", "n": 1}
	if !reflect.DeepEqual(resp.Body, want) {
		t.Errorf("got %#v, want %#v", resp.Body, want)
	}
	bad := &Message{Body: map[string]any{"items": []any{map[string]any{"sku": "A", "qty": map[string]any{"n": 2}, "price": 1.5}}}}
	_, err = f.Run(t.Context(), bad, nil)
	if err == nil || !containsAll(err.Error(), "cannot multiply", "object", "number") {
		t.Errorf("bad input: got %v, want jq's multiply error", err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

func show(v any) string { return fmt.Sprintf("%#v", v) }

// TestNativeOnAStepsInput runs the shapes on a step's input (*jqInput,
// whose members are read without building the object): where the native
// form answers, gojq on the object gives that value, and no answer holds
// the input itself.
func TestNativeOnAStepsInput(t *testing.T) {
	shapes := append([]string{
		`.body`, `.params.customer`, `.headers["content-type"]`, `.query.q`, `.vars.x`, `.config.c`, `.response`, `.error`,
		`.app`, `.source`, `.nope`, `{a: .}`, `[.]`, `select(.body)`, `if .body then 1 end`, `. // 1`, `.body // .`,
		`[.[]]`, `length`, `add`, `. == .`, `"\(.)"`, `tostring`, `(.)`, `.[0]`, `{body}`, `.body.items[0].sku`,
		`.params.nope`, `.params.unnamed`, `.params.id`, `.params`, `.params.customer.x`, `.headers.x`, `."headers"."content-type"`, `.query.r`, `.query.q.x`, `.params | .customer`,
		`.vars`, `.vars.y.z`, `.vars.y.z + 1`, `{v: .vars}`, `.vars | length`, `.vars.x.z`, `.vars."x"`, `.vars["x"]`, `[.vars.x, .vars.w]`,
	}, nativeShapes...)
	msgs := []*state{
		newState(&Message{Body: map[string]any{"items": []any{map[string]any{"sku": "A", "qty": 2, "price": 1.5}}},
			Params: map[string]string{"customer": "acme"}, Header: map[string][]string{"Content-Type": {"application/json"}},
			RawQuery: "q=1&q=2&r"}),
		newState(&Message{Body: "text", Headers: map[string]string{"content-type": "text/plain"}, Query: map[string]string{"q": "x"},
			Vars: map[string]any{"x": 1}, App: map[string]any{"id": "a"}, Source: map[string]any{"kind": "nats"}}),
		newState(nil),
		newState(&Message{Path: pathValues{"customer": "acme", "id": "7", "unnamed": "x"}, ParamNames: []string{"customer", "id"}}),
	}
	msgs[2].response, msgs[2].errv = map[string]any{"status": 200}, map[string]any{"message": "m"}
	// Variables set one over another, shadowing and past maxVarsDepth.
	chained := newState(&Message{Vars: map[string]any{"x": 0, "w": "base"}})
	for i := range 3 * maxVarsDepth {
		chained.vars = chained.vars.with("x", i).with("y", map[string]any{"z": i})
		msgs = append(msgs, &state{body: chained.body, headers: chained.headers, query: chained.query, params: chained.params,
			vars: chained.vars})
	}
	rt := &runtimeEnv{config: map[string]any{"c": true}}
	for _, src := range shapes {
		q, err := gojq.Parse(src)
		if err != nil {
			t.Fatal(err)
		}
		n := compileNative(q)
		var path *expr
		if p := plainPath(src); p != nil {
			path = &expr{path: p}
		}
		for i, st := range msgs {
			// The native forms run first, on a fresh state each, so that
			// they read headers, query and params before anything built
			// their objects; gojq then runs on the object.
			type answer struct {
				how string
				got any
			}
			var answers []answer
			if n != nil {
				if got, ok := n.value(fresh(st).input(rt)); ok {
					answers = append(answers, answer{"native", got})
				}
				outs, ok := n.gen(fresh(st).input(rt), nil)
				if ok && len(outs) == 1 {
					answers = append(answers, answer{"gen", outs[0]})
				}
			}
			if path != nil {
				if got, ok := path.walk(fresh(st).input(rt)); ok {
					answers = append(answers, answer{"path", got})
				}
			}
			want, werr := gojqOutputs(t, src, st.input(rt).object())
			for _, a := range answers {
				if werr != nil || len(want) != 1 || !reflect.DeepEqual(a.got, want[0]) {
					t.Errorf("%s on message %d (%s): native %#v, gojq %#v, %v", src, i, a.how, a.got, want, werr)
				}
				if holdsInput(a.got) {
					t.Errorf("%s on message %d (%s): the answer holds the step's input", src, i, a.how)
				}
			}
		}
	}
}

// pathValues stands for a request's path parameters; only the names a
// message lists are its params.
type pathValues map[string]string

func (p pathValues) PathValue(name string) string { return p[name] }

// fresh is a copy of st whose headers, query and params are not built
// yet (as at the start of a run).
func fresh(st *state) *state {
	c := *st
	for i, s := range []*strs{st.headers, st.query, st.params} {
		c.own[i] = strs{src: s.src, header: s.header, raw: s.raw, path: s.path, names: s.names}
	}
	c.headers, c.query, c.params = &c.own[0], &c.own[1], &c.own[2]
	return &c
}

func holdsInput(v any) bool {
	switch v := v.(type) {
	case *jqInput:
		return true
	case map[string]any:
		for _, x := range v {
			if holdsInput(x) {
				return true
			}
		}
	case []any:
		for _, x := range v {
			if holdsInput(x) {
				return true
			}
		}
	}
	return false
}

// TestVars: variables set over one another read as one object, the base
// (the caller's map) and the objects handed out before stay as they were.
func TestVars(t *testing.T) {
	base := map[string]any{"a": 1, "b": 2}
	v := &vars{base: base}
	var seen []map[string]any
	want := map[string]any{"a": 1, "b": 2}
	for i := range 3*maxVarsDepth + 1 {
		v = v.with("a", i).with(fmt.Sprint("k", i%5), i)
		want["a"], want[fmt.Sprint("k", i%5)] = i, i
		if got := v.object(); !reflect.DeepEqual(got, want) {
			t.Fatalf("after %d: %v, want %v", i, got, want)
		}
		for k, x := range want {
			if v.get(k) != x {
				t.Fatalf("after %d: get(%s) = %v, want %v", i, k, v.get(k), x)
			}
		}
		seen = append(seen, v.object())
	}
	if v.get("none") != nil {
		t.Error("a variable never set is not null")
	}
	if !reflect.DeepEqual(base, map[string]any{"a": 1, "b": 2}) {
		t.Errorf("the base was written to: %v", base)
	}
	if seen[0]["a"] != 0 {
		t.Errorf("an object handed out changed: %v", seen[0])
	}
	w := v.without("a", "into", []any{1})
	if _, has := w.object()["a"]; has || w.get("into") == nil || v.get("a") == nil {
		t.Errorf("without: %v (from %v)", w.object(), v.object())
	}
}
