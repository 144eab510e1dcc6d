package flow

import (
	"encoding/json"
	"math"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// fastSchema is a JSON Schema of the common shape — type, required,
// properties, additionalProperties, items, the size and range keywords,
// pattern and string enums — compiled to a direct check of the message's
// values. A validate step over a 20 KB order spent most of its time in
// the general validator (which compares every number as a big.Rat).
//
// It only ever says "valid" when the general validator would: a value it
// cannot judge exactly (a big number, a number next to a bound, a float
// where an integer is wanted) or any violation makes it answer false,
// and the step then runs the general validator, which decides and words
// the violations as before. A schema with any other keyword ($ref,
// format, oneOf, …) gets no fast form at all. TestFastSchemaNeverAcceptsMore
// holds it to that.
type fastSchema struct {
	types                    []string // empty: any
	required                 []string
	props                    map[string]*fastSchema
	noAdditional             bool
	additional               *fastSchema
	items                    *fastSchema
	minItems, maxItems       int // -1: none
	minLength, maxLength     int
	minProps, maxProps       int
	min, max, exMin, exMax   *bound
	pattern                  *regexp.Regexp
	enum                     []string
	hasEnum, uniqueItemsTrue bool
}

type bound struct {
	f     float64
	exact bool // f is the bound's exact value
}

// annotations do not constrain anything.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "title": true, "description": true,
	"examples": true, "default": true, "deprecated": true, "readOnly": true, "writeOnly": true,
}

const maxFastSchemaDepth = 32

func compileFastSchema(doc any, depth int) *fastSchema {
	m, ok := doc.(map[string]any)
	if !ok || depth > maxFastSchemaDepth {
		return nil // boolean schemas and the rest: the general validator
	}
	s := &fastSchema{minItems: -1, maxItems: -1, minLength: -1, maxLength: -1, minProps: -1, maxProps: -1}
	for k, v := range m {
		if annotations[k] {
			continue
		}
		ok := true
		switch k {
		case "type":
			switch t := v.(type) {
			case string:
				s.types = []string{t}
			case []any:
				for _, x := range t {
					name, isStr := x.(string)
					ok = ok && isStr
					s.types = append(s.types, name)
				}
			default:
				ok = false
			}
		case "required":
			list, isList := v.([]any)
			ok = isList
			for _, x := range list {
				name, isStr := x.(string)
				ok = ok && isStr
				s.required = append(s.required, name)
			}
		case "properties":
			props, isMap := v.(map[string]any)
			ok = isMap
			s.props = map[string]*fastSchema{}
			for name, sub := range props {
				p := compileFastSchema(sub, depth+1)
				ok = ok && p != nil
				s.props[name] = p
			}
		case "additionalProperties":
			if b, isBool := v.(bool); isBool {
				s.noAdditional = !b
			} else {
				s.additional = compileFastSchema(v, depth+1)
				ok = s.additional != nil
			}
		case "items":
			s.items = compileFastSchema(v, depth+1) // a list of schemas (old tuples) is not compiled
			ok = s.items != nil
		case "minItems":
			s.minItems, ok = count(v)
		case "maxItems":
			s.maxItems, ok = count(v)
		case "minLength":
			s.minLength, ok = count(v)
		case "maxLength":
			s.maxLength, ok = count(v)
		case "minProperties":
			s.minProps, ok = count(v)
		case "maxProperties":
			s.maxProps, ok = count(v)
		case "minimum":
			s.min, ok = toBound(v)
		case "maximum":
			s.max, ok = toBound(v)
		case "exclusiveMinimum":
			s.exMin, ok = toBound(v) // draft 4's boolean form is not compiled
		case "exclusiveMaximum":
			s.exMax, ok = toBound(v)
		case "pattern":
			src, isStr := v.(string)
			var err error
			if ok = isStr; ok {
				s.pattern, err = regexp.Compile(src)
				ok = err == nil
			}
		case "enum":
			list, isList := v.([]any)
			ok, s.hasEnum = isList, true
			for _, x := range list {
				str, isStr := x.(string)
				ok = ok && isStr
				s.enum = append(s.enum, str)
			}
		case "uniqueItems":
			b, isBool := v.(bool)
			ok, s.uniqueItemsTrue = isBool, b
		default:
			ok = false
		}
		if !ok || s.uniqueItemsTrue {
			return nil
		}
	}
	for _, t := range s.types {
		switch t {
		case "null", "boolean", "object", "array", "string", "number", "integer":
		default:
			return nil
		}
	}
	return s
}

func count(v any) (int, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(string(n))
	return i, err == nil && i >= 0
}

func toBound(v any) (*bound, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || math.IsInf(f, 0) {
		return nil, false
	}
	i, ierr := strconv.ParseInt(string(n), 10, 64)
	return &bound{f: f, exact: ierr == nil && i > -1<<53 && i < 1<<53}, true
}

// valid reports whether v certainly matches the schema; false means the
// general validator must decide.
func (s *fastSchema) valid(v any) bool {
	if len(s.types) > 0 && !s.typeOK(v) {
		return false
	}
	switch v := v.(type) {
	case map[string]any:
		if s.minProps >= 0 && len(v) < s.minProps || s.maxProps >= 0 && len(v) > s.maxProps {
			return false
		}
		for _, r := range s.required {
			if _, ok := v[r]; !ok {
				return false
			}
		}
		for k, x := range v {
			if p, ok := s.props[k]; ok {
				if !p.valid(x) {
					return false
				}
				continue
			}
			if s.noAdditional || s.additional != nil && !s.additional.valid(x) {
				return false
			}
		}
	case []any:
		if s.minItems >= 0 && len(v) < s.minItems || s.maxItems >= 0 && len(v) > s.maxItems {
			return false
		}
		if s.items != nil {
			for _, x := range v {
				if !s.items.valid(x) {
					return false
				}
			}
		}
	case string:
		if s.minLength >= 0 || s.maxLength >= 0 {
			n := utf8.RuneCountInString(v)
			if s.minLength >= 0 && n < s.minLength || s.maxLength >= 0 && n > s.maxLength {
				return false
			}
		}
		if s.pattern != nil && !s.pattern.MatchString(v) {
			return false
		}
		if s.hasEnum && !inList(s.enum, v) {
			return false
		}
	case int, float64:
		return s.numberOK(v)
	case nil, bool:
	default:
		return false // *big.Int, json.Number: the general validator
	}
	if s.hasEnum {
		if _, isStr := v.(string); !isStr {
			return false
		}
	}
	return true
}

func inList(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func (s *fastSchema) typeOK(v any) bool {
	for _, t := range s.types {
		switch v.(type) {
		case nil:
			if t == "null" {
				return true
			}
		case bool:
			if t == "boolean" {
				return true
			}
		case map[string]any:
			if t == "object" {
				return true
			}
		case []any:
			if t == "array" {
				return true
			}
		case string:
			if t == "string" {
				return true
			}
		case int:
			if t == "number" || t == "integer" {
				return true
			}
		case float64:
			if t == "number" {
				return true
			}
		}
	}
	return false
}

func (s *fastSchema) numberOK(v any) bool {
	if s.hasEnum {
		return false
	}
	var x float64
	exact := false
	switch v := v.(type) {
	case int:
		x, exact = float64(v), v > -1<<53 && v < 1<<53
	case float64:
		x = v
	}
	// cmp is the sign of x - b, or ok=false when float rounding could
	// change it.
	cmp := func(b *bound) (int, bool) {
		if !(exact && b.exact) && math.Abs(x-b.f) <= 1e-9*math.Max(1, math.Abs(b.f)) {
			return 0, false
		}
		switch {
		case x < b.f:
			return -1, true
		case x > b.f:
			return 1, true
		}
		return 0, true
	}
	for _, c := range []struct {
		b  *bound
		ok func(int) bool
	}{
		{s.min, func(c int) bool { return c >= 0 }},
		{s.max, func(c int) bool { return c <= 0 }},
		{s.exMin, func(c int) bool { return c > 0 }},
		{s.exMax, func(c int) bool { return c < 0 }},
	} {
		if c.b == nil {
			continue
		}
		d, ok := cmp(c.b)
		if !ok || !c.ok(d) {
			return false
		}
	}
	return true
}
