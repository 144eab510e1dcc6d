package jqjson

import (
	"bytes"
	"encoding/json"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// stdDecode is the reference: encoding/json with exact numbers, converted
// to the types Decode promises.
func stdDecode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := data[dec.InputOffset():]; len(bytes.Trim(rest, " \t\r\n")) > 0 {
		return nil, errTrailing
	}
	return stdNumbers(v), nil
}

var errTrailing = &json.SyntaxError{}

func stdNumbers(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = stdNumbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = stdNumbers(e)
		}
	case json.Number:
		s := string(x)
		if !strings.ContainsAny(s, ".eE") {
			if i, err := strconv.ParseInt(s, 10, 64); err == nil {
				return int(i)
			}
			b, _ := new(big.Int).SetString(s, 10)
			return b
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return f
		}
		return x
	}
	return v
}

func TestDecodeJSON(t *testing.T) {
	tests := []struct {
		in   string
		want any
		err  string
	}{
		{`{"items":[{"sku":"A","qty":2,"price":9.99}],"ok":true,"none":null}`,
			map[string]any{"items": []any{map[string]any{"sku": "A", "qty": 2, "price": 9.99}}, "ok": true, "none": nil}, ""},
		{` [1, -0, 0.5, 1e3, -2E-2, 12345678901234567890] `, []any{1, 0, 0.5, 1000.0, -0.02, bigInt("12345678901234567890")}, ""},
		{`"esc \" \\ \/ \b \f \n \r \t \u00e9 \ud83d\ude00"`, "esc \" \\ / \b \f \n \r \t é 😀", ""},
		{`"lone \ud800 surrogate"`, "lone \uFFFD surrogate", ""},
		{"\"bad utf8 \xff\"", "bad utf8 \uFFFD", ""},
		{`{"a":1,"a":2}`, map[string]any{"a": 2}, ""},
		{`1e400`, json.Number("1e400"), ""},
		{`{}`, map[string]any{}, ""},
		{`[]`, []any{}, ""},
		{`{"a":`, nil, "unexpected end"},
		{`{"a" 1}`, nil, "after an object key"},
		{`[1,]`, nil, "looking for a value"},
		{`01`, nil, "trailing data"},
		{`1.`, nil, "unexpected end"},
		{`-`, nil, "unexpected end"},
		{`tru`, nil, "unexpected end"},
		{`nul1`, nil, "want null"},
		{"\"ctl \x01\"", nil, "control character"},
		{`"\x"`, nil, "invalid escape"},
		{`"\u12G4"`, nil, "invalid \\u escape"},
		{`{"a":1} {"b":2}`, nil, "trailing data"},
		{strings.Repeat("[", maxJSONDepth+1), nil, "nested too deeply"},
	}
	for _, tt := range tests {
		got, err := Decode([]byte(tt.in))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Decode(%.40q) error %v, want %q", tt.in, err, tt.err)
			}
			if _, stdErr := stdDecode([]byte(tt.in)); stdErr == nil {
				t.Errorf("encoding/json accepts %.40q", tt.in)
			}
			continue
		}
		if err != nil {
			t.Errorf("Decode(%.40q): %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Decode(%.40q) = %#v, want %#v", tt.in, got, tt.want)
		}
		if std, _ := stdDecode([]byte(tt.in)); !reflect.DeepEqual(got, std) {
			t.Errorf("Decode(%.40q) = %#v, encoding/json says %#v", tt.in, got, std)
		}
	}
}

func bigInt(s string) *big.Int { b, _ := new(big.Int).SetString(s, 10); return b }

// FuzzDecodeJSON holds Decode to encoding/json: same verdict, same
// value.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x\u00e9",true,null]}`, `"\ud83d\ude00"`, `-0.0e+1`, "\"\xff\"", `[{"":{}}]`, `1 2`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := Decode(data)
		want, stdErr := stdDecode(data)
		if (err == nil) != (stdErr == nil) {
			t.Fatalf("%q: Decode error %v, encoding/json error %v", data, err, stdErr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: Decode %#v, encoding/json %#v", data, got, want)
		}
	})
}
