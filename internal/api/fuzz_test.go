package api

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDecodeJSON feeds arbitrary bodies and content types to the strict
// JSON decoding every write of the API goes through, into the request
// shapes of configurations, runtimes and API keys. It must never panic;
// a refusal is a *badRequest with a 4xx status and a message, and a body
// over the limit is always refused.
//
//	go test ./internal/api -run '^$' -fuzz FuzzDecodeJSON -fuzztime 1m
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"metadata":{"name":"db"},"spec":{"type":"setdbparms","data":"ZGIgdSBw"}}`,
		`{"metadata":{"name":"r"},"spec":{"barURL":["http://x/api/v1/bar-files/a/content"],"replicas":1,"configurations":["db"]}}`,
		`{"name":"k","description":"d","expiresAt":"2027-01-01T00:00:00Z"}`,
		`{"spec":{"replicas":"1"}}`, `{"nope":1}`, `{} {}`, `[`, `null`, "\xff", `{"a":"\ud800"}`, `{"metadata":{"name":"a","name":"b"}}`,
	} {
		f.Add([]byte(s), "application/json")
	}
	f.Add([]byte(`{}`), "text/plain")
	f.Add([]byte(`{}`), "application/merge-patch+json; charset=utf-8")
	const limit = 4096
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		for _, v := range []any{&Configuration{}, &Runtime{}, &APIKey{}} {
			r := httptest.NewRequest("PUT", "/api/v1/x", bytes.NewReader(body))
			if contentType != "" {
				r.Header.Set("Content-Type", contentType)
			}
			err := decodeJSONLimit(httptest.NewRecorder(), r, v, limit)
			if err == nil {
				if len(body) > limit {
					t.Fatalf("accepted a body of %d bytes, the limit is %d", len(body), limit)
				}
				continue
			}
			var br *badRequest
			if !errors.As(err, &br) || br.status < 400 || br.status > 499 || strings.TrimSpace(br.msg) == "" || br.reason == "" {
				t.Fatalf("refusal is not a described 4xx: %T %v", err, err)
			}
		}
	})
}

// FuzzBearerToken feeds arbitrary Authorization headers to the parser of
// the bearer scheme: what it returns is the credential after one space,
// never empty, without surrounding white space, and only for the Bearer
// scheme (any case); a refusal says why and returns no token.
//
//	go test ./internal/api -run '^$' -fuzz FuzzBearerToken -fuzztime 1m
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer eyJhbGciOiJFZERTQSJ9.e30.c2ln", "bearer x", "BEARER  x ", "Basic dTpw", "Bearer", "Bearer ", "Bearerx y", " Bearer x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		r := &http.Request{Header: http.Header{"Authorization": {h}}}
		tok, problem := bearerToken(r)
		if problem != "" {
			if tok != "" {
				t.Fatalf("refused %q (%s) but returned %q", h, problem, tok)
			}
			return
		}
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") || tok == "" || tok != strings.TrimSpace(tok) || !strings.Contains(rest, tok) {
			t.Fatalf("%q parsed as token %q", h, tok)
		}
	})
}
