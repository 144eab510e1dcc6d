package api

import "testing"

// FuzzPlainAPIKeyBody holds the token exchange's fast reading of its body
// to the strict decoder: whatever the fast path accepts, the strict
// decoder accepts with the same API key. (What it leaves is the strict
// decoder's to refuse or accept, as before.)
//
//	go test ./internal/api -run '^$' -fuzz FuzzPlainAPIKeyBody -fuzztime 30s
func FuzzPlainAPIKeyBody(f *testing.F) {
	for _, seed := range []string{
		`{"apiKey":"slk_abc"}`,
		` { "apiKey" : "slk_abc" } ` + "\n",
		`{"apiKey":"slk_abc","apiKey":"x"}`,
		`{"apiKey":"a\"b"}`,
		`{"apiKey":"a\u0062"}`,
		`{"apiKey":"é"}`,
		`{"apiKey":""}`,
		`{"apiKey":1}`,
		`{"apiKey":"x"}{}`,
		`{"apiKey":"x"} x`,
		`{"APIKEY":"x"}`,
		`{"apiKey":"x",}`,
		`{"apiKey":"x"`,
		`null`,
		"{\"apiKey\":\"a\tb\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, ok := plainAPIKeyBody(b)
		if !ok {
			return
		}
		var body tokenRequestBody
		if err := decodeJSONBytes(b, &body, maxJSONBody); err != nil {
			t.Fatalf("the fast path read %q from %q, which the strict decoder refuses: %v", v, b, err)
		}
		if got := body.APIKey.Reveal(); got != v {
			t.Fatalf("the fast path read %q from %q, the strict decoder %q", v, b, got)
		}
	})
}

func TestPlainAPIKeyBody(t *testing.T) {
	for body, want := range map[string]string{
		`{"apiKey":"slk_abc"}`:          "slk_abc",
		" {\r\n\t\"apiKey\" :\"k\" }\n": "k",
		`{"apiKey":""}`:                 "",
	} {
		if v, ok := plainAPIKeyBody([]byte(body)); !ok || v != want {
			t.Errorf("%q: %q, %v; want %q", body, v, ok, want)
		}
	}
	for _, body := range []string{`{"apiKey":"a\"b"}`, `{"apiKey":"x","apiKey":"y"}`, `{"apiKey":"é"}`, `{"apiKey":"x"}{}`, `{"apikey":"x"}`, `null`, ``} {
		if v, ok := plainAPIKeyBody([]byte(body)); ok {
			t.Errorf("%q read as %q: the strict decoder's to decide", body, v)
		}
	}
}
