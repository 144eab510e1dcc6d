package client

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestErrorFromResponse covers answers the Sluice server itself does not
// give but a client meets in the field: a proxy's HTML page, a rate limit
// with Retry-After, an empty body.
func TestErrorFromResponse(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		header http.Header
		body   string
		want   Error
		text   string
	}{
		{"sluice JSON", 404, nil, `{"error":"Internal error","code":404,"reason":"NotFound","message":"user bob not found","requestId":"r1"}`,
			Error{StatusCode: 404, Code: 404, Reason: "NotFound", Message: "user bob not found", RequestID: "r1"}, "user bob not found (404 NotFound)"},
		{"proxy HTML", 502, http.Header{"X-Request-Id": {"r2"}}, "<html>\n<body>bad gateway</body></html>",
			Error{StatusCode: 502, Code: 502, Reason: "BadGateway", Message: "<html>", RequestID: "r2"}, "<html> (502 BadGateway) [request r2]"},
		{"rate limited", 429, http.Header{"Retry-After": {"7"}}, `{"code":429,"reason":"TooManyRequests","message":"rate limit exceeded"}`,
			Error{StatusCode: 429, Code: 429, Reason: "TooManyRequests", Message: "rate limit exceeded", RetryAfter: 7 * time.Second}, "rate limit exceeded (429 TooManyRequests)"},
		{"empty", 503, nil, "", Error{StatusCode: 503, Code: 503, Reason: "ServiceUnavailable"}, "service unavailable (503 ServiceUnavailable)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: c.status, Header: c.header}
			if resp.Header == nil {
				resp.Header = http.Header{}
			}
			got := errorFromResponse(resp, []byte(c.body))
			if *got != c.want {
				t.Errorf("got %+v, want %+v", *got, c.want)
			}
			if got.Error() != c.text || strings.Contains(got.Error(), "\n") {
				t.Errorf("text %q, want %q", got.Error(), c.text)
			}
		})
	}
}
