// Package obs owns observability shared by every Sluice process: the slog
// logger set-up (text on a terminal, JSON otherwise), request ids, and the
// access-log middleware. It must never log request bodies, query strings
// or header values, which may carry secrets.
package obs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// NewLogger returns a logger writing to w. format is "auto" (text when w is
// a terminal, JSON otherwise), "text" or "json"; level is debug, info, warn
// or error. Its lines carry each key once (UniqueKeys), and lines logged
// with a request's context carry its request_id (and trace_id in a trace).
func NewLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	log, _, err := NewLeveledLogger(w, format, level)
	return log, err
}

// NewLeveledLogger is NewLogger with the level in a variable, so a
// running process can change it (sluice serve does on SIGHUP).
func NewLeveledLogger(w io.Writer, format, level string) (*slog.Logger, *slog.LevelVar, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	v := new(slog.LevelVar)
	v.Set(lv)
	h, err := newHandler(w, format, v)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(withRequestIDs{next: UniqueKeys(h)}), v, nil
}

// ParseLevel reads debug, info, warn or error.
func ParseLevel(level string) (slog.Level, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(strings.TrimSpace(level))); err != nil {
		return 0, fmt.Errorf("log level %q is not one of debug, info, warn, error", level)
	}
	return lv, nil
}

func newHandler(w io.Writer, format string, lv slog.Leveler) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "auto":
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			return slog.NewTextHandler(w, opts), nil
		}
		return slog.NewJSONHandler(w, opts), nil
	case "text":
		return slog.NewTextHandler(w, opts), nil
	case "json":
		return slog.NewJSONHandler(w, opts), nil
	}
	return nil, fmt.Errorf("log format %q is not one of auto, text, json", format)
}

// HeaderRequestID carries the request id in both directions.
const HeaderRequestID = "X-Request-Id"

type ctxKey struct{}

// RequestID returns the request id of ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(ctxKey{}).(string)
	return id
}

// NewRequestID returns a random 16-byte id in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	var h [32]byte
	hex.Encode(h[:], b[:])
	return string(h[:]) // the one allocation
}

// validRequestID accepts a caller's id only if it is short and printable,
// so it can go into logs and headers without escaping tricks.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

// statusRecorder remembers what a handler answered, for the access log.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Middleware gives every request an id (the caller's X-Request-Id when it
// is sane, a fresh one otherwise), echoes it in the response, and writes
// one access-log line per request.
func Middleware(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get(HeaderRequestID)
		if !validRequestID(id) {
			id = NewRequestID()
		}
		w.Header().Set(HeaderRequestID, id)
		rec := &statusRecorder{ResponseWriter: w}
		r = r.WithContext(WithRequestID(r.Context(), id))
		next.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		log.LogAttrs(r.Context(), slog.LevelInfo, "request",
			slog.String("request_id", id),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", rec.status),
			slog.Int64("bytes", rec.bytes),
			slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
			slog.String("remote", remoteHost(r.RemoteAddr)),
		)
	})
}

func remoteHost(addr string) string {
	if i := strings.LastIndexByte(addr, ':'); i > 0 {
		return addr[:i]
	}
	return addr
}
