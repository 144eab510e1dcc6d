// Package wire holds the HTTP details every wire surface of the control
// plane shares — the /api/v1 API and the adapters that speak other tools'
// protocols (Airbyte, IBM Cloud IAM): compact JSON answers, the bearer
// token of a request, the caller's address, strict form bodies. It knows
// no domain and decides nothing.
package wire

import (
	"bytes"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
)

// WriteJSON writes v as compact JSON (no indentation, no HTML escaping:
// scripts parse answers with tr and grep as well as jq).
func WriteJSON(w http.ResponseWriter, status int, v any) {
	buf := AnswerBuffer()
	defer PutAnswerBuffer(buf)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":"Internal error","code":500,"reason":"EncodeFailed","message":"unable to encode the answer"}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// answerBuffers are reused across answers: every API call encodes one,
// and growing a fresh buffer each time was a visible part of a small
// answer's cost. Buffers grown past maxPooledAnswer (a large list) are
// let go rather than kept for every later answer.
var answerBuffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledAnswer = 64 << 10

// AnswerBuffer returns an empty buffer of the pool, for an answer built
// elsewhere (a list's pages); PutAnswerBuffer gives it back once written.
func AnswerBuffer() *bytes.Buffer { return answerBuffers.Get().(*bytes.Buffer) }

// PutAnswerBuffer returns b to the pool (see AnswerBuffer); b must not be
// used afterwards.
func PutAnswerBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledAnswer {
		return
	}
	b.Reset()
	answerBuffers.Put(b)
}

// BearerToken reads "Authorization: Bearer <token>". The scheme is matched
// case-insensitively (RFC 9110 §11.1), as some clients send lower-case names.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// ClientAddr is the caller's address without the port, for audit.
func ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// RateLimitHeaders sets a rate-limit decision's headers: RateLimit-Policy
// and RateLimit (IETF httpapi ratelimit-headers) when a limit applies, and
// Retry-After in seconds when the request is refused.
func RateLimitHeaders(w http.ResponseWriter, policy, state string, admitted bool, retryAfter int) {
	if policy != "" {
		w.Header().Set("RateLimit-Policy", policy)
		w.Header().Set("RateLimit", state)
	}
	if !admitted {
		w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	}
}

// StoreUnavailableMessage is what every wire tells a client when the
// store is out of reach (a restarting or unreachable database), with
// RetryAfterStoreUnavailable seconds in Retry-After: not a server error,
// and the same request will succeed in a moment.
const StoreUnavailableMessage = "the store is unavailable (restarting or out of reach): retry in a moment"

// RetryAfterStoreUnavailable is the Retry-After, in seconds, of a 503
// the store's unavailability caused.
const RetryAfterStoreUnavailable = 1

// SetRetryAfterStoreUnavailable sets that Retry-After.
func SetRetryAfterStoreUnavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", strconv.Itoa(RetryAfterStoreUnavailable))
}

// MediaType is the request's content type without parameters, lower case;
// "" when absent or unparseable.
func MediaType(r *http.Request) string {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return mt
}

// maxForm bounds form bodies.
const maxForm = 64 << 10

// Form parses an application/x-www-form-urlencoded body of at most 64 KiB.
// It refuses repeated parameters (RFC 6749 §3.1), naming the first. The
// caller checks the content type, so each surface words that refusal.
func Form(w http.ResponseWriter, r *http.Request) (url.Values, string) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return nil, "the form body does not parse or is larger than 64 KiB"
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, "parameter " + k + " is repeated"
		}
	}
	return r.PostForm, ""
}
