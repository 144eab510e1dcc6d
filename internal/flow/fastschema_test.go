package flow

import (
	"fmt"
	"math"
	"math/big"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// fastSchemas are in the fast subset; each is checked both ways on every
// value of fastValues.
var fastSchemas = []string{
	`{}`,
	`{"type": "object"}`, `{"type": ["string", "null"]}`, `{"type": "integer"}`, `{"type": "number"}`, `{"type": "boolean"}`,
	`{"type": "array", "items": {"type": "integer", "minimum": 1}}`,
	`{"required": ["a"], "properties": {"a": {"type": "string", "minLength": 2, "maxLength": 3}}}`,
	`{"properties": {"a": {"type": "number", "maximum": 2.5}}, "additionalProperties": false}`,
	`{"additionalProperties": {"type": "integer"}}`,
	`{"minItems": 2, "maxItems": 3}`, `{"minProperties": 1, "maxProperties": 2}`,
	`{"minimum": 0.1}`, `{"exclusiveMinimum": 0, "exclusiveMaximum": 3}`, `{"maximum": 9007199254740993}`,
	`{"pattern": "^[A-Z]{3}-[0-9]{3}$"}`, `{"enum": ["a", "b"]}`, `{"uniqueItems": false, "title": "t", "description": "d"}`,
	`{"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}}`,
	`{"type": "object", "required": ["id", "items"], "properties": {"id": {"type": "string", "minLength": 1},
	  "items": {"type": "array", "minItems": 1, "items": {"type": "object", "required": ["sku", "qty"],
	  "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}, "qty": {"type": "integer", "minimum": 1}}}}}}`,
}

var fastValues = []any{
	nil, true, false, 0, 1, 2, 3, -1, 10, 11, 1.0, 2.5, 2.5000000001, 0.1, 0.1000000001, 0.0999999, 3.0, math.MaxInt,
	9007199254740992, 9007199254740993, 9007199254740994, big.NewInt(7), "", "a", "ab", "abcd", "ünï", "ABC-123", "abc-123", "ABC-1234",
	[]any{}, []any{1}, []any{1, 2}, []any{1, 2, 3, 4}, []any{0}, []any{1.5}, []any{"x"},
	map[string]any{}, map[string]any{"a": "ab"}, map[string]any{"a": "abcd"}, map[string]any{"a": 1}, map[string]any{"a": 2.5},
	map[string]any{"a": 3, "b": 1}, map[string]any{"b": 1}, map[string]any{"b": 1.5}, map[string]any{"n": 10}, map[string]any{"n": 10.0},
	map[string]any{"id": "x", "items": []any{map[string]any{"sku": "ABC-123", "qty": 2}}},
	map[string]any{"id": "x", "items": []any{map[string]any{"sku": "ABC-123", "qty": 0}}},
	map[string]any{"id": "x", "items": []any{map[string]any{"sku": "ABC-123", "qty": 2.0}}},
	map[string]any{"id": "", "items": []any{map[string]any{"sku": "ABC-123", "qty": 2}}},
	map[string]any{"id": "x", "items": []any{map[string]any{"sku": "ABC-123"}}},
	map[string]any{"id": "x", "items": []any{}},
}

// TestFastSchemaNeverAcceptsMore: whatever the fast form accepts, the
// general validator accepts too; each schema's fast form answers for some
// value (it is not vacuous), and it accepts the values the validator
// accepts where it can judge them (it is not useless).
func TestFastSchemaNeverAcceptsMore(t *testing.T) {
	for i, src := range fastSchemas {
		doc, err := decodeProjectJSON([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		fast := compileFastSchema(doc, 0)
		if fast == nil {
			t.Errorf("%s: no fast form", src)
			continue
		}
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		url := fmt.Sprintf("mem:///s%d.json", i)
		if err := c.AddResource(url, doc); err != nil {
			t.Fatal(err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			t.Fatal(err)
		}
		accepted := 0
		for _, v := range fastValues {
			want := sch.Validate(schemaValue(v)) == nil
			got := fast.valid(v)
			if got && !want {
				t.Errorf("%s: the fast form accepts %#v, the validator refuses it", src, v)
			}
			if got {
				accepted++
			}
		}
		if accepted == 0 {
			t.Errorf("%s: the fast form accepted nothing", src)
		}
	}
}

// TestFastSchemaLeavesTheRest: schemas with other keywords have no fast
// form, so the general validator checks every value.
func TestFastSchemaLeavesTheRest(t *testing.T) {
	for _, src := range []string{
		`true`, `{"$ref": "other.json"}`, `{"format": "email"}`, `{"oneOf": [{}]}`, `{"const": 1}`, `{"enum": [1]}`,
		`{"items": [{}]}`, `{"prefixItems": [{}]}`, `{"exclusiveMinimum": true}`, `{"uniqueItems": true}`,
		`{"type": "object", "properties": {"a": {"format": "date"}}}`, `{"patternProperties": {"x": {}}}`,
		`{"type": "decimal"}`, `{"minimum": "1"}`, `{"pattern": "(?<=x)"}`,
	} {
		doc, err := decodeProjectJSON([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if compileFastSchema(doc, 0) != nil {
			t.Errorf("%s: has a fast form", src)
		}
	}
}
