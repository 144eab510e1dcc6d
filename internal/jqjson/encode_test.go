package jqjson

import (
	"bytes"
	"encoding/json"
	"math"
	"math/big"
	"testing"

	"github.com/itchyny/gojq"
)

// encodeCases are the jq values Append must write exactly as gojq.Marshal.
var encodeCases = []any{
	nil, true, false, 0, -1, math.MaxInt, math.MinInt, 1.5, -0.0, 1e21, 1e-7, 1e20, 123456789.125, 5e-324,
	math.NaN(), math.Inf(1), math.Inf(-1), new(big.Int).Lsh(big.NewInt(1), 100), json.Number("1.50"),
	"", "plain", "quote \" back \\ slash", "\b\f\n\r\t\x00\x1f\x7f", "<&> \u2028 \u2029 ünï 𝄞", "bad \xff utf8 \xe2\x82",
	[]any{}, []any{1, "a", nil, []any{true}}, map[string]any{},
	map[string]any{"b": 1, "a": []any{map[string]any{"z": 1, "y": 2, "": 3}}, "é": "x", "A": nil, "aa": 2.5},
	map[string]any{"k01": 1, "k13": 1, "k02": 1, "k12": 1, "k03": 1, "k11": 1, "k04": 1, "k10": 1, "k05": 1, "k09": 1,
		"k06": 1, "k08": 1, "k07": 1, "k00": 1, "k14": 1},
}

func TestAppendMatchesGojq(t *testing.T) {
	for _, v := range encodeCases {
		want, err := gojq.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := Append([]byte("prefix "), v)
		if !ok || string(got) != "prefix "+string(want) {
			t.Errorf("%#v: got %q (%v), want %q", v, got, ok, want)
		}
	}
}

// TestAppendRefusesOtherTypes: a value that is not jq's is left to the
// caller, with dst as it was.
func TestAppendRefusesOtherTypes(t *testing.T) {
	type custom struct{ A int }
	for _, v := range []any{custom{1}, map[string]any{"a": []any{1, map[string]int{"x": 1}}}, []string{"x"}, int64(1), float32(1)} {
		if got, ok := Append([]byte("x"), v); ok || string(got) != "x" {
			t.Errorf("%#v: got %q, %v", v, got, ok)
		}
	}
	loop := map[string]any{}
	loop["self"] = loop
	if _, ok := Append(nil, loop); ok {
		t.Error("a value containing itself was encoded")
	}
}

// FuzzAppend: every document Decode accepts encodes as gojq encodes it.
func FuzzAppend(f *testing.F) {
	for _, v := range encodeCases {
		if data, err := gojq.Marshal(v); err == nil {
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := Decode(data)
		if err != nil {
			return
		}
		want, _ := gojq.Marshal(v)
		got, ok := Append(nil, v)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("%q: got %q (%v), want %q", data, got, ok, want)
		}
	})
}
