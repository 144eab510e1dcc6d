package flow

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/itchyny/gojq"
)

// The shapes flows are made of — paths (.body.items[].sku), object and
// array constructions, literals, string interpolation, arithmetic and
// comparisons, if/then/else, and a few builtins (add, length, map,
// select, join…) — are compiled a second time, to Go closures that walk
// the message directly instead of running gojq's stack machine; a request
// through bench/project spent most of its flow time there.
//
// The native form only ever answers when it is sure to give gojq's own
// value: whenever it meets a value it does not handle (a type jq would
// refuse, an integer that overflows, a big number, an output count other
// than one where one is needed) it gives up, and the expression runs
// through gojq from the start, which then gives jq's value or jq's error.
// That is sound because the compiled subset has no side effects. Anything
// the subset does not know (variables, reduce, try, `?`, function
// definitions, modules, formats, other builtins) is not compiled at all.
// TestNativeMatchesGojq runs every shape both ways.

// native is one compiled node. one is set when the node yields exactly one
// value whenever it answers; gen appends the node's outputs to out. Both
// return ok=false to hand the whole expression back to gojq.
type native struct {
	one func(in any) (any, bool)
	gen func(in any, out []any) ([]any, bool)
}

// self is the input as the base of an index (.a is self then ["a"]),
// where a step's *jqInput is welcome.
func self(in any) (any, bool) { return in, true }

// identity is `.` as a value. A step's input is not one a value may hold
// (it is the engine's, not jq's): gojq runs instead, on its object.
func identity(in any) (any, bool) {
	if _, isInput := in.(*jqInput); isInput {
		return nil, false
	}
	return in, true
}

func single(f func(in any) (any, bool)) *native {
	return &native{one: f, gen: func(in any, out []any) ([]any, bool) {
		v, ok := f(in)
		return append(out, v), ok
	}}
}

// value evaluates n expecting exactly one output.
func (n *native) value(in any) (any, bool) {
	if n.one != nil {
		return n.one(in)
	}
	var buf [2]any
	out, ok := n.gen(in, buf[:0])
	if !ok || len(out) != 1 {
		return nil, false
	}
	return out[0], true
}

// compileNative compiles q, or returns nil when q is outside the subset.
func compileNative(q *gojq.Query) *native {
	if q == nil || len(q.Imports) > 0 || q.Meta != nil {
		return nil
	}
	return nativeQuery(q, 0)
}

// maxNativeDepth bounds the recursion over a (budget-checked) program.
const maxNativeDepth = 64

func nativeQuery(q *gojq.Query, depth int) *native {
	if q == nil || depth > maxNativeDepth || len(q.FuncDefs) > 0 || len(q.Imports) > 0 || q.Meta != nil {
		return nil
	}
	if q.Term != nil {
		return nativeTerm(q.Term, depth+1)
	}
	if q.Left == nil || q.Right == nil || len(q.Patterns) > 0 {
		return nil
	}
	l, r := nativeQuery(q.Left, depth+1), nativeQuery(q.Right, depth+1)
	if l == nil || r == nil {
		return nil
	}
	switch q.Op {
	case gojq.OpPipe:
		if inner := arrayOf(q.Left); inner != nil && isCall(q.Right, "add") {
			if n := nativeQuery(inner, depth+1); n != nil {
				return sumOf(n)
			}
		}
		return pipe(l, r)
	case gojq.OpComma:
		return &native{gen: func(in any, out []any) ([]any, bool) {
			out, ok := l.gen(in, out)
			if !ok {
				return nil, false
			}
			return r.gen(in, out)
		}}
	case gojq.OpAlt:
		return alt(l, r)
	case gojq.OpAnd, gojq.OpOr:
		return logic(q.Op, l, r)
	case gojq.OpAdd, gojq.OpSub, gojq.OpMul, gojq.OpDiv, gojq.OpMod:
		return binary(l, r, arith(q.Op))
	case gojq.OpEq, gojq.OpNe, gojq.OpLt, gojq.OpLe, gojq.OpGt, gojq.OpGe:
		return binary(l, r, compare(q.Op))
	}
	return nil
}

func pipe(l, r *native) *native {
	if l.one != nil && r.one != nil {
		return single(func(in any) (any, bool) {
			v, ok := l.one(in)
			if !ok {
				return nil, false
			}
			return r.one(v)
		})
	}
	return &native{gen: func(in any, out []any) ([]any, bool) {
		if l.one != nil {
			v, ok := l.one(in)
			if !ok {
				return nil, false
			}
			return r.gen(v, out)
		}
		if r.one != nil {
			// l's outputs are appended and mapped in place: no slice of
			// their own.
			mark := len(out)
			out, ok := l.gen(in, out)
			if !ok {
				return nil, false
			}
			for i := mark; i < len(out); i++ {
				if out[i], ok = r.one(out[i]); !ok {
					return nil, false
				}
			}
			return out, true
		}
		vs, ok := l.gen(in, nil)
		if !ok {
			return nil, false
		}
		for _, v := range vs {
			if out, ok = r.gen(v, out); !ok {
				return nil, false
			}
		}
		return out, true
	}}
}

// alt is `l // r`: l's truthy outputs, or r's outputs when there are none.
func alt(l, r *native) *native {
	n := &native{gen: func(in any, out []any) ([]any, bool) {
		vs, ok := l.gen(in, nil)
		if !ok {
			return nil, false
		}
		found := false
		for _, v := range vs {
			if truthy(v) {
				out, found = append(out, v), true
			}
		}
		if found {
			return out, true
		}
		return r.gen(in, out)
	}}
	if l.one != nil && r.one != nil {
		n.one = func(in any) (any, bool) {
			v, ok := l.one(in)
			if !ok {
				return nil, false
			}
			if truthy(v) {
				return v, true
			}
			return r.one(in)
		}
	}
	return n
}

// logic is `l and r` / `l or r`, as gojq compiles them: for each output of
// l, its decided value or each output of r as a boolean.
func logic(op gojq.Operator, l, r *native) *native {
	decided := op == gojq.OpOr // the value l decides alone
	return &native{gen: func(in any, out []any) ([]any, bool) {
		vs, ok := l.gen(in, nil)
		if !ok {
			return nil, false
		}
		for _, v := range vs {
			if truthy(v) == decided {
				out = append(out, decided)
				continue
			}
			ws, ok := r.gen(in, nil)
			if !ok {
				return nil, false
			}
			for _, w := range ws {
				out = append(out, truthy(w))
			}
		}
		return out, true
	}}
}

// binary applies f to one output of each side; other counts go to gojq
// (whose order of a generator's outputs in operators is its own).
func binary(l, r *native, f func(a, b any) (any, bool)) *native {
	return single(func(in any) (any, bool) {
		a, ok := l.value(in)
		if !ok {
			return nil, false
		}
		b, ok := r.value(in)
		if !ok {
			return nil, false
		}
		return f(a, b)
	})
}

func arith(op gojq.Operator) func(a, b any) (any, bool) {
	switch op {
	case gojq.OpAdd:
		return addValues
	case gojq.OpSub:
		return func(a, b any) (any, bool) {
			if x, y, ok := ints(a, b); ok {
				if v := x - y; (v <= x) == (y >= 0) {
					return v, true
				}
				return nil, false
			}
			if x, y, ok := floats(a, b); ok {
				return x - y, true
			}
			return nil, false
		}
	case gojq.OpMul:
		return func(a, b any) (any, bool) {
			if x, y, ok := ints(a, b); ok {
				if y == -1 {
					return negInt(x)
				}
				if v := x * y; y == 0 || v/y == x {
					return v, true
				}
				return nil, false
			}
			if x, y, ok := floats(a, b); ok {
				return x * y, true
			}
			return nil, false
		}
	case gojq.OpDiv:
		return func(a, b any) (any, bool) {
			if x, y, ok := ints(a, b); ok {
				switch {
				case y == 0:
					return nil, false
				case y == -1:
					return negInt(x)
				case x%y == 0:
					return x / y, true
				}
				return float64(x) / float64(y), true
			}
			if x, y, ok := floats(a, b); ok && y != 0 {
				return x / y, true
			}
			return nil, false
		}
	case gojq.OpMod:
		return func(a, b any) (any, bool) {
			if x, y, ok := ints(a, b); ok {
				switch y {
				case 0:
					return nil, false
				case -1:
					return 0, true
				}
				return x % y, true
			}
			return nil, false
		}
	}
	return nil
}

func negInt(x int) (any, bool) {
	if x == math.MinInt {
		return nil, false
	}
	return -x, true
}

func ints(a, b any) (int, int, bool) {
	x, ok := a.(int)
	if !ok {
		return 0, 0, false
	}
	y, ok := b.(int)
	return x, y, ok
}

// floats converts a pair of numbers of which one at least is a float64,
// as gojq does; ints pairs and big numbers are left to the callers.
func floats(a, b any) (float64, float64, bool) {
	switch x := a.(type) {
	case float64:
		switch y := b.(type) {
		case float64:
			return x, y, true
		case int:
			return x, float64(y), true
		}
	case int:
		if y, ok := b.(float64); ok {
			return float64(x), y, true
		}
	}
	return 0, 0, false
}

// addValues is jq's + for numbers, strings and null.
func addValues(a, b any) (any, bool) {
	if x, y, ok := ints(a, b); ok {
		if v := x + y; (v >= x) == (y >= 0) {
			return v, true
		}
		return nil, false
	}
	if x, y, ok := floats(a, b); ok {
		return x + y, true
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return x + y, true
		}
	}
	switch {
	case a == nil && isScalar(b):
		return b, true
	case b == nil && isScalar(a):
		return a, true
	}
	return nil, false
}

// isScalar reports the values the native form handles as they are.
func isScalar(v any) bool {
	switch v.(type) {
	case nil, bool, int, float64, string:
		return true
	}
	return false
}

func compare(op gojq.Operator) func(a, b any) (any, bool) {
	test := map[gojq.Operator]func(int) bool{
		gojq.OpEq: func(c int) bool { return c == 0 },
		gojq.OpNe: func(c int) bool { return c != 0 },
		gojq.OpLt: func(c int) bool { return c < 0 },
		gojq.OpLe: func(c int) bool { return c <= 0 },
		gojq.OpGt: func(c int) bool { return c > 0 },
		gojq.OpGe: func(c int) bool { return c >= 0 },
	}[op]
	return func(a, b any) (any, bool) {
		if !isScalar(a) || !isScalar(b) {
			return nil, false
		}
		return test(gojq.Compare(a, b)), true
	}
}

func nativeTerm(t *gojq.Term, depth int) *native {
	if depth > maxNativeDepth {
		return nil
	}
	base, suffixes := nativeVarsMember(t), t.SuffixList
	if base != nil {
		suffixes = suffixes[1:]
	} else if base = nativeBase(t, depth); base == nil {
		return nil
	}
	for _, s := range suffixes {
		if base = nativeSuffix(base, s); base == nil {
			return nil
		}
	}
	return base
}

func nativeBase(t *gojq.Term, depth int) *native {
	switch t.Type {
	case gojq.TermTypeIdentity:
		return single(identity)
	case gojq.TermTypeNull, gojq.TermTypeTrue, gojq.TermTypeFalse, gojq.TermTypeNumber:
		return constant(&gojq.Term{Type: t.Type, Number: t.Number})
	case gojq.TermTypeUnary:
		if t.Unary.Term.Type == gojq.TermTypeNumber && len(t.Unary.Term.SuffixList) == 0 {
			return constant(&gojq.Term{Type: t.Type, Unary: t.Unary})
		}
		x := nativeTerm(t.Unary.Term, depth+1)
		if x == nil || t.Unary.Op != gojq.OpSub {
			return nil
		}
		return single(func(in any) (any, bool) {
			switch v, ok := x.value(in); v := v.(type) {
			case int:
				if ok {
					return negInt(v)
				}
			case float64:
				return -v, ok
			}
			return nil, false
		})
	case gojq.TermTypeString:
		return nativeString(t.Str, depth)
	case gojq.TermTypeIndex:
		return nativeIndex(single(self), t.Index)
	case gojq.TermTypeQuery:
		return nativeQuery(t.Query, depth+1)
	case gojq.TermTypeArray:
		if t.Array.Query == nil {
			return single(func(any) (any, bool) { return []any{}, true })
		}
		q := nativeQuery(t.Array.Query, depth+1)
		if q == nil {
			return nil
		}
		return single(func(in any) (any, bool) {
			out, ok := q.gen(in, make([]any, 0, 4))
			return out, ok
		})
	case gojq.TermTypeObject:
		return nativeObject(t.Object, depth)
	case gojq.TermTypeIf:
		return nativeIf(t.If, depth)
	case gojq.TermTypeFunc:
		return nativeFunc(t.Func, depth)
	}
	return nil
}

// constant evaluates a literal term with gojq once, so the number types
// are gojq's own.
func constant(t *gojq.Term) *native {
	code, err := gojq.Compile(&gojq.Query{Term: t})
	if err != nil {
		return nil
	}
	iter := code.Run(nil)
	v, ok := iter.Next()
	if _, isErr := v.(error); !ok || isErr {
		return nil
	}
	if _, more := iter.Next(); more || !isScalar(v) {
		return nil
	}
	return single(func(any) (any, bool) { return v, true })
}

func nativeSuffix(base *native, s *gojq.Suffix) *native {
	switch {
	case s.Index != nil:
		return nativeIndex(base, s.Index)
	case s.Iter:
		return &native{gen: func(in any, out []any) ([]any, bool) {
			if base.one != nil {
				// .items[]: the array's elements, with no slice of the
				// one base value.
				v, ok := base.one(in)
				a, isArr := v.([]any)
				if !ok || !isArr {
					return nil, false
				}
				return append(out, a...), true
			}
			vs, ok := base.gen(in, nil)
			if !ok {
				return nil, false
			}
			for _, v := range vs {
				a, isArr := v.([]any)
				if !isArr {
					return nil, false // objects iterate in jq's key order; errors are jq's
				}
				out = append(out, a...)
			}
			return out, true
		}}
	}
	return nil // `?`
}

// nativeVarsMember is the base of .vars.name…, .params.name…,
// .headers.name… and .query.name…: on a step's input it reads the member
// without building the object (see jqInput.member); on any other value it
// is the plain index. nil for other terms.
func nativeVarsMember(t *gojq.Term) *native {
	if t.Type != gojq.TermTypeIndex || len(t.SuffixList) == 0 || t.SuffixList[0].Index == nil {
		return nil
	}
	key, ok := indexName(t.Index)
	if !ok {
		return nil
	}
	switch key {
	case "vars", "params", "headers", "query":
	default:
		return nil
	}
	name, ok := indexName(t.SuffixList[0].Index)
	if !ok {
		return nil
	}
	other := nativeIndex(nativeIndex(single(self), t.Index), t.SuffixList[0].Index)
	if other == nil || other.one == nil {
		return nil
	}
	return single(func(in any) (any, bool) {
		if r, isInput := in.(*jqInput); isInput {
			return r.member(key, name)
		}
		return other.one(in)
	})
}

// indexName is the key of .name or ."name".
func indexName(ix *gojq.Index) (string, bool) {
	switch {
	case ix.IsSlice || ix.End != nil || ix.Start != nil:
		return "", false
	case ix.Name != "":
		return ix.Name, true
	case ix.Str != nil && ix.Str.Queries == nil:
		return ix.Str.Str, true
	}
	return "", false
}

// nativeIndex is .name, ."name", .["name"] or .[n] for a literal integer n.
func nativeIndex(base *native, ix *gojq.Index) *native {
	if ix.IsSlice || ix.End != nil {
		return nil
	}
	var key string
	var pos int
	isKey := true
	switch {
	case ix.Name != "":
		key = ix.Name
	case ix.Str != nil && ix.Str.Queries == nil:
		key = ix.Str.Str
	case ix.Start != nil && ix.Start.Term != nil && len(ix.Start.Term.SuffixList) == 0:
		t := ix.Start.Term
		switch t.Type {
		case gojq.TermTypeString:
			if t.Str.Queries != nil {
				return nil
			}
			key = t.Str.Str
		case gojq.TermTypeNumber:
			n, err := strconv.Atoi(t.Number)
			if err != nil {
				return nil
			}
			pos, isKey = n, false
		default:
			return nil
		}
	default:
		return nil
	}
	at := func(v any) (any, bool) {
		switch v := v.(type) {
		case nil:
			return nil, true
		case map[string]any:
			if isKey {
				return v[key], true
			}
		case *jqInput:
			if isKey {
				return v.get(key), true
			}
		case []any:
			if !isKey {
				i := pos
				if i < 0 {
					i += len(v)
				}
				if 0 <= i && i < len(v) {
					return v[i], true
				}
				return nil, true
			}
		}
		return nil, false
	}
	if base.one != nil {
		b := base.one
		return single(func(in any) (any, bool) {
			v, ok := b(in)
			if !ok {
				return nil, false
			}
			return at(v)
		})
	}
	return &native{gen: func(in any, out []any) ([]any, bool) {
		// The base's outputs are indexed where they were appended.
		mark := len(out)
		out, ok := base.gen(in, out)
		if !ok {
			return nil, false
		}
		for i := mark; i < len(out); i++ {
			if out[i], ok = at(out[i]); !ok {
				return nil, false
			}
		}
		return out, true
	}}
}

// nativeString is a string literal or an interpolation of values, each
// inserted as jq's tostring does.
func nativeString(s *gojq.String, depth int) *native {
	if s.Queries == nil {
		v := s.Str
		return single(func(any) (any, bool) { return v, true })
	}
	type part struct {
		lit   string
		isLit bool
		q     *native
	}
	parts := make([]part, 0, len(s.Queries))
	for _, q := range s.Queries {
		if q.Term != nil && q.Term.Type == gojq.TermTypeString && q.Term.Str.Queries == nil && len(q.Term.SuffixList) == 0 {
			parts = append(parts, part{lit: q.Term.Str.Str, isLit: true})
			continue
		}
		n := nativeQuery(q, depth+1)
		if n == nil {
			return nil
		}
		parts = append(parts, part{q: n})
	}
	return single(func(in any) (any, bool) {
		var b strings.Builder
		for _, p := range parts {
			if p.isLit {
				b.WriteString(p.lit)
				continue
			}
			v, ok := p.q.value(in)
			if !ok || !writeString(&b, v) {
				return nil, false
			}
		}
		return b.String(), true
	})
}

// writeString writes v as jq's tostring does: a string as it is, a scalar
// as JSON.
func writeString(b *strings.Builder, v any) bool {
	switch v := v.(type) {
	case string:
		b.WriteString(v)
	case int:
		b.WriteString(strconv.Itoa(v))
	case nil, bool, float64:
		data, _ := gojq.Marshal(v)
		b.Write(data)
	default:
		return false
	}
	return true
}

func nativeObject(o *gojq.Object, depth int) *native {
	keys := make([]string, 0, len(o.KeyVals))
	vals := make([]*native, 0, len(o.KeyVals))
	for _, kv := range o.KeyVals {
		var key string
		switch {
		case kv.Key != "" && kv.Key[0] != '$':
			key = kv.Key
		case kv.KeyString != nil && kv.KeyString.Queries == nil:
			key = kv.KeyString.Str
		default:
			return nil
		}
		var v *native
		if kv.Val == nil {
			v = nativeIndex(single(self), &gojq.Index{Name: key})
		} else {
			v = nativeQuery(kv.Val, depth+1)
		}
		if v == nil {
			return nil
		}
		keys, vals = append(keys, key), append(vals, v)
	}
	return single(func(in any) (any, bool) {
		m := make(map[string]any, len(keys))
		for i, v := range vals {
			x, ok := v.value(in)
			if !ok {
				return nil, false
			}
			m[keys[i]] = x
		}
		return m, true
	})
}

func nativeIf(f *gojq.If, depth int) *native {
	type branch struct{ cond, then *native }
	var branches []branch
	add := func(c, t *gojq.Query) bool {
		cn, tn := nativeQuery(c, depth+1), nativeQuery(t, depth+1)
		branches = append(branches, branch{cn, tn})
		return cn != nil && tn != nil
	}
	if !add(f.Cond, f.Then) {
		return nil
	}
	for _, e := range f.Elif {
		if !add(e.Cond, e.Then) {
			return nil
		}
	}
	els := single(identity)
	if f.Else != nil {
		if els = nativeQuery(f.Else, depth+1); els == nil {
			return nil
		}
	}
	// Conditions are taken with one output each; a generator as a
	// condition is gojq's.
	pick := func(in any) (*native, bool) {
		for _, b := range branches {
			c, ok := b.cond.value(in)
			if !ok {
				return nil, false
			}
			if truthy(c) {
				return b.then, true
			}
		}
		return els, true
	}
	n := &native{gen: func(in any, out []any) ([]any, bool) {
		b, ok := pick(in)
		if !ok {
			return nil, false
		}
		return b.gen(in, out)
	}}
	allOne := els.one != nil
	for _, b := range branches {
		allOne = allOne && b.then.one != nil
	}
	if allOne {
		n.one = func(in any) (any, bool) {
			b, ok := pick(in)
			if !ok {
				return nil, false
			}
			return b.one(in)
		}
	}
	return n
}

// nativeFunc knows a few builtins, by name and arity; a flow cannot
// redefine them without a def, which keeps the whole program out.
func nativeFunc(f *gojq.Func, depth int) *native {
	args := make([]*native, len(f.Args))
	for i, a := range f.Args {
		if args[i] = nativeQuery(a, depth+1); args[i] == nil {
			return nil
		}
	}
	switch {
	case f.Name == "empty" && len(args) == 0:
		return &native{gen: func(_ any, out []any) ([]any, bool) { return out, true }}
	case f.Name == "not" && len(args) == 0:
		return single(func(in any) (any, bool) { return !truthy(in), true })
	case f.Name == "length" && len(args) == 0:
		return single(func(in any) (any, bool) {
			switch v := in.(type) {
			case nil:
				return 0, true
			case string:
				return utf8.RuneCountInString(v), true
			case []any:
				return len(v), true
			case map[string]any:
				return len(v), true
			}
			return nil, false
		})
	case f.Name == "add" && len(args) == 0:
		return single(func(in any) (any, bool) {
			vs, ok := in.([]any)
			if !ok {
				return nil, false
			}
			return addAll(vs)
		})
	case f.Name == "tostring" && len(args) == 0:
		return single(func(in any) (any, bool) {
			if s, ok := in.(string); ok {
				return s, true
			}
			var b strings.Builder
			if !writeString(&b, in) {
				return nil, false
			}
			return b.String(), true
		})
	case f.Name == "join" && len(args) == 1:
		sep := args[0]
		return single(func(in any) (any, bool) {
			vs, ok := in.([]any)
			s, sok := sep.value(in)
			sepStr, isStr := s.(string)
			if !ok || !sok || !isStr {
				return nil, false
			}
			var b strings.Builder
			for i, v := range vs {
				if i > 0 {
					b.WriteString(sepStr)
				}
				if v != nil && !writeString(&b, v) {
					return nil, false
				}
			}
			return b.String(), true
		})
	case f.Name == "map" && len(args) == 1:
		fn := args[0]
		return single(func(in any) (any, bool) {
			vs, ok := in.([]any)
			if !ok {
				return nil, false
			}
			out := make([]any, 0, len(vs))
			for _, v := range vs {
				if out, ok = fn.gen(v, out); !ok {
					return nil, false
				}
			}
			return out, true
		})
	case f.Name == "select" && len(args) == 1:
		cond := args[0]
		return &native{gen: func(in any, out []any) ([]any, bool) {
			c, ok := cond.value(in)
			if !ok {
				return nil, false
			}
			if truthy(c) {
				v, ok := identity(in)
				if !ok {
					return nil, false
				}
				out = append(out, v)
			}
			return out, true
		}}
	}
	return nil
}

// arrayOf is the query inside `[…]` when q is just that.
func arrayOf(q *gojq.Query) *gojq.Query {
	if q.Term == nil || q.Term.Type != gojq.TermTypeArray || len(q.Term.SuffixList) > 0 || q.Term.Array.Query == nil {
		return nil
	}
	return q.Term.Array.Query
}

// isCall reports whether q is just a call of the builtin name/0.
func isCall(q *gojq.Query, name string) bool {
	return q.Term != nil && q.Term.Type == gojq.TermTypeFunc && len(q.Term.SuffixList) == 0 &&
		q.Term.Func.Name == name && len(q.Term.Func.Args) == 0
}

// sumOf is `[n] | add`, the usual way to total a list (bench/project's
// quantity and total): n's outputs are added from a pooled scratch slice
// rather than collected into an array that only add reads.
func sumOf(n *native) *native {
	return single(func(in any) (any, bool) {
		s := scratchPool.Get().(*[]any)
		vs, ok := n.gen(in, (*s)[:0])
		var sum any
		if ok {
			sum, ok = addAll(vs)
		}
		if vs != nil && cap(vs) <= maxPooledScratch {
			clear(vs)
			*s = vs[:0]
		}
		scratchPool.Put(s)
		return sum, ok
	})
}

var scratchPool = sync.Pool{New: func() any { return new([]any) }}

// maxPooledScratch keeps a rare long list's scratch from staying pinned.
const maxPooledScratch = 1024

// addAll is jq's add over an array of numbers, strings and nulls: the
// left fold of +, with the running sum kept unboxed.
func addAll(vs []any) (any, bool) {
	const (
		none = iota
		isInt
		isFloat
		isStr
	)
	kind := none
	var n int
	var f float64
	var b strings.Builder
	for _, x := range vs {
		switch x := x.(type) {
		case nil:
		case string:
			if kind != none && kind != isStr {
				return nil, false
			}
			kind = isStr
			b.WriteString(x)
		case int:
			switch kind {
			case none:
				n, kind = x, isInt
			case isInt:
				v := n + x
				if (v >= n) != (x >= 0) {
					return nil, false // overflow: gojq's
				}
				n = v
			case isFloat:
				f += float64(x)
			default:
				return nil, false
			}
		case float64:
			switch kind {
			case none:
				f, kind = x, isFloat
			case isInt:
				f, kind = float64(n)+x, isFloat
			case isFloat:
				f += x
			default:
				return nil, false
			}
		default:
			return nil, false
		}
	}
	switch kind {
	case isInt:
		return n, true
	case isFloat:
		return f, true
	case isStr:
		return b.String(), true
	}
	return nil, true
}
