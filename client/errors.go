package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is an error answer of the Sluice API. The server sends every error
// as JSON with the HTTP status code, a short machine-readable reason, a
// message meant for people and the request id that finds the request in
// the server's log; Error carries them as they came.
type Error struct {
	StatusCode int    // HTTP status of the answer
	Code       int    // "code" of the body; equals StatusCode for Sluice
	Reason     string // e.g. "NotFound", "Unauthorized", "BadRequest"
	Message    string // what was wrong, for a person
	RequestID  string
	// RetryAfter is the wait the server asked for with Retry-After (429
	// and 503 answers); zero when it asked for none.
	RetryAfter time.Duration
}

// Error returns the server's message with the status and reason, on one
// line. The request id is added for server failures, where an operator
// needs it to find the cause in the log.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = strings.ToLower(http.StatusText(e.StatusCode))
	}
	s := fmt.Sprintf("%s (%d %s)", msg, e.StatusCode, e.Reason)
	if e.StatusCode >= 500 && e.RequestID != "" {
		s += " [request " + e.RequestID + "]"
	}
	return s
}

// StatusCode returns the HTTP status of err when it is (or wraps) an
// *Error, and 0 otherwise.
func StatusCode(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode
	}
	return 0
}

// IsNotFound reports whether err is a 404 answer.
func IsNotFound(err error) bool { return StatusCode(err) == http.StatusNotFound }

// IsUnauthorized reports whether err is a 401 answer: the credentials or
// the token were refused.
func IsUnauthorized(err error) bool { return StatusCode(err) == http.StatusUnauthorized }

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 64 << 10

// errorFromResponse builds an *Error from a non-2xx answer whose body has
// been read. A body that is not Sluice's JSON error (a proxy's HTML page,
// say) still yields an *Error, with its first line as the message.
func errorFromResponse(resp *http.Response, body []byte) *Error {
	e := &Error{StatusCode: resp.StatusCode, Code: resp.StatusCode, Reason: reasonFor(resp.StatusCode)}
	var wire struct {
		Code      int    `json:"code"`
		Reason    string `json:"reason"`
		Message   string `json:"message"`
		RequestID string `json:"requestId"`
	}
	if err := json.Unmarshal(body, &wire); err == nil && (wire.Message != "" || wire.Reason != "") {
		if wire.Code != 0 {
			e.Code = wire.Code
		}
		if wire.Reason != "" {
			e.Reason = wire.Reason
		}
		e.Message, e.RequestID = wire.Message, wire.RequestID
	} else {
		line, _, _ := strings.Cut(strings.TrimSpace(string(body)), "\n")
		if len(line) > 200 {
			line = line[:200] + "…"
		}
		e.Message = line
	}
	if e.RequestID == "" {
		e.RequestID = resp.Header.Get("X-Request-Id")
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			e.RetryAfter = time.Duration(secs) * time.Second
		} else if t, err := http.ParseTime(ra); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// reasonFor makes a reason word from a status, for answers without one.
func reasonFor(status int) string {
	return strings.ReplaceAll(http.StatusText(status), " ", "")
}
