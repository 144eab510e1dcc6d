package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/tracing"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/jqjson"
)

// errorBody is every error the runtime answers itself, in the control
// plane's shape (internal/api), so one client parses both: the fixed
// "error" member first (App Connect scripts grep for
// `"Internal error","code":`), the status as a number, a reason word, a
// message for a person, details of a failed validation, the request id.
type errorBody struct {
	Error     string `json:"error"`
	Code      int    `json:"code"`
	Reason    string `json:"reason"`
	Message   string `json:"message"`
	Details   any    `json:"details,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

// errorTitle is the fixed first member of every error body.
const errorTitle = "Internal error"

// reasonFor is the reason word of a status, as the control plane writes
// them: the reason phrase without spaces or punctuation ("NotFound",
// "MethodNotAllowed"), and "InternalError" for 500.
func reasonFor(status int) string {
	if status == http.StatusInternalServerError {
		return "InternalError"
	}
	text := http.StatusText(status)
	if text == "" {
		return "Error"
	}
	var b strings.Builder
	for _, word := range strings.FieldsFunc(text, func(r rune) bool { return r == ' ' || r == '-' }) {
		for i, r := range word {
			switch {
			case i == 0 && 'a' <= r && r <= 'z':
				b.WriteRune(r - 'a' + 'A')
			case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
				b.WriteRune(r)
			}
		}
	}
	return b.String()
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeErrorBody(w, errorBody{Code: status, Message: msg})
}

func writeErrorBody(w http.ResponseWriter, b errorBody) {
	b.Error, b.Reason = errorTitle, reasonFor(b.Code)
	if b.RequestID == "" {
		b.RequestID = w.Header().Get("X-Request-Id")
	}
	data, err := json.Marshal(b)
	if err != nil {
		b.Details = nil
		data, _ = json.Marshal(b)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(data)+1))
	w.WriteHeader(b.Code)
	w.Write(append(data, '\n'))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		writeError(w, http.StatusInternalServerError, "cannot encode the answer")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// withRequestID gives every answer of the flow listener a request id, the
// runtime's own errors (no flow at the path, wrong method) included, as
// the control plane's errors carry one.
func (rt *Runtime) withRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", rt.requestID(r))
		next.ServeHTTP(w, r)
	})
}

// serveFlow is the HTTP entry of one flow: body limit, message, run with
// timeout and isolation, answer, metrics and traces.
func (rt *Runtime) serveFlow(lf *loadedFlow) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		reqID := w.Header().Get("X-Request-Id") // set by withRequestID
		if reqID == "" {
			reqID = rt.requestID(r)
			w.Header().Set("X-Request-Id", reqID)
		}

		// A caller's W3C traceparent is continued (and passed on by http
		// steps); the span is exported only when tracing is on.
		// Without an exporting provider a span would be a no-op that
		// only carries the caller's context, which Extract already put
		// in tctx: it is not started.
		tctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		var span trace.Span
		if tracing.On() {
			tctx, span = tracing.Tracer().Start(tctx, "flow "+lf.project+"/"+lf.f.Name, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("sluice.project", lf.project), attribute.String("sluice.flow", lf.f.Name)))
		}
		// The context goes along beside r, not in a copy of it
		// (r.WithContext copies the whole Request).
		ctx := newRequestCtx(tctx, reqID)
		status := rt.handle(ctx, w, r, lf, reqID)
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", status))
			if status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(status))
			}
			span.End()
		}

		elapsed := time.Since(start)
		lf.metrics.count(status)
		lf.metrics.duration.Observe(elapsed.Seconds())
		if rt.trace.service.on.Load() {
			rt.trace.serviceEvent(serviceEvent{Event: "request", Project: lf.project, Flow: lf.f.Name, RequestID: reqID,
				Method: r.Method, Path: r.URL.Path, Status: status, DurationMs: ms(elapsed)})
		}
		if rt.log.Enabled(ctx, slog.LevelDebug) {
			rt.log.DebugContext(ctx, "request", "project", lf.project, "flow", lf.f.Name, "method", r.Method, "path", r.URL.Path,
				"status", status, "durationMs", ms(elapsed))
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// statusClientGone is what the metrics record when the client hung up
// before the answer (nginx's convention); nothing is written.
const statusClientGone = 499

// handle answers r with lf; ctx is r's context with the request id and
// the caller's trace.
func (rt *Runtime) handle(ctx *requestCtx, w http.ResponseWriter, r *http.Request, lf *loadedFlow, reqID string) int {
	var caller *gateway.Caller
	if rt.opts.Gateway != nil {
		// Decided from the pushed state alone: no call to the control
		// plane, so a request never waits on it.
		c, refused := rt.opts.Gateway.Check(lf.ref, r)
		if refused != nil {
			lf.metrics.fail("gateway")
			refused.Write(w, reqID)
			return refused.Status
		}
		caller = c
	}
	limit := rt.conf.Settings.HTTP.MaxBodyBytes
	if r.ContentLength > limit {
		return rt.tooLarge(w, limit)
	}
	msg, status, err := rt.message(w, r, lf, limit)
	if err != nil {
		if status == http.StatusRequestEntityTooLarge {
			return rt.tooLarge(w, limit)
		}
		writeError(w, status, err.Error())
		return status
	}
	if caller != nil {
		msg.App = caller.Value()
	}
	if !lf.acquire() {
		lf.metrics.fail("overload")
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("flow %q has too many runs in progress", lf.f.Name))
		return http.StatusServiceUnavailable
	}
	var tr flow.Tracer
	if rt.trace.user.on.Load() {
		tr = &stepTracer{b: rt.trace.user, project: lf.project, requestID: reqID}
	}
	var resp *flow.Response
	if lf.local {
		// No timer per request: a local run only checks its deadline.
		rctx := ctx.runCtx(lf.timeout)
		resp, err = lf.run(rctx, msg, tr)
		rctx.release()
	} else {
		rctx, cancel := context.WithTimeout(ctx, lf.timeout)
		resp, err = lf.run(rctx, msg, tr)
		cancel()
	}
	if err != nil {
		return rt.flowError(ctx, w, lf, reqID, err)
	}
	return rt.writeResponse(w, lf, resp)
}

func (rt *Runtime) tooLarge(w http.ResponseWriter, limit int64) int {
	writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", limit))
	return http.StatusRequestEntityTooLarge
}

// message builds the flow's input from the request. The body is JSON when
// it parses as JSON; a body declared as JSON that does not parse is the
// client's mistake (400); anything else reaches the flow as a string.
func (rt *Runtime) message(w http.ResponseWriter, r *http.Request, lf *loadedFlow, limit int64) (*flow.Message, int, error) {
	// Headers, query and path parameters are handed over as they are:
	// the engine converts them if and when a step reads them.
	msg := &flow.Message{Header: r.Header, RawQuery: r.URL.RawQuery}
	if len(lf.params) > 0 {
		msg.Path, msg.ParamNames = r, lf.params
	}
	if r.Body == nil || r.Body == http.NoBody {
		return msg, 0, nil
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	body := r.Body
	if r.ContentLength < 0 {
		// Only a body of unknown length (chunked) needs the limit's
		// reader: one with a Content-Length, already checked against
		// the limit, ends where it says (net/http stops it there).
		body = http.MaxBytesReader(w, r.Body, limit)
	}
	if _, err := buf.ReadFrom(body); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			return nil, http.StatusRequestEntityTooLarge, err
		}
		return nil, http.StatusBadRequest, fmt.Errorf("cannot read the request body: %w", err)
	}
	data := buf.Bytes()
	if len(bytes.TrimSpace(data)) == 0 {
		return msg, 0, nil
	}
	v, jerr := jqjson.Decode(data)
	if jerr == nil {
		msg.Body = v
		return msg, 0, nil
	}
	if isJSONType(r.Header.Get("Content-Type")) {
		return nil, http.StatusBadRequest, fmt.Errorf("request body is not valid JSON: %v", jerr)
	}
	msg.Body = string(data)
	return msg, 0, nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func isJSONType(ct string) bool {
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// writeResponse writes the flow's answer. Bodies are JSON unless the flow
// set a non-JSON Content-Type and answers a string (text, XML, CSV).
func (rt *Runtime) writeResponse(w http.ResponseWriter, lf *loadedFlow, resp *flow.Response) int {
	status := http.StatusOK
	if resp == nil {
		resp = &flow.Response{}
	}
	if resp.Status != 0 {
		status = resp.Status
	}
	h := w.Header()
	for k, v := range resp.Headers {
		h.Set(k, v)
	}
	if resp.Body == nil {
		w.WriteHeader(status)
		return status
	}
	ct := h.Get("Content-Type")
	var data []byte
	if b, ok := resp.Body.([]byte); ok {
		data = b
		if ct == "" {
			h.Set("Content-Type", "application/octet-stream")
		}
	} else if s, ok := resp.Body.(string); ok && ct != "" && !isJSONType(ct) {
		data = []byte(s)
	} else {
		buf := answerPool.Get().(*[]byte)
		defer func() {
			if cap(*buf) <= maxPooledAnswer {
				answerPool.Put(buf)
			}
		}()
		var err error
		if data, err = encodeJSON((*buf)[:0], resp.Body); err != nil {
			lf.metrics.fail("internal")
			rt.log.Error("flow answered a body that is not JSON", "project", lf.project, "flow", lf.f.Name, "err", err)
			writeError(w, http.StatusInternalServerError, fmt.Sprintf("flow %q answered a body that cannot be encoded as JSON", lf.f.Name))
			return http.StatusInternalServerError
		}
		*buf = data // grown, for the next answer (Write does not keep it)
		if ct == "" {
			h.Set("Content-Type", "application/json")
		}
	}
	if len(data) > autoLengthMax || status == http.StatusNoContent || status == http.StatusNotModified {
		h.Set("Content-Length", strconv.Itoa(len(data)))
	}
	w.WriteHeader(status)
	w.Write(data)
	return status
}

// autoLengthMax is the longest answer whose Content-Length is left to
// net/http, which sets it when the handler returns with the whole body
// still in its buffer (2 KB for HTTP/1.1, 4 KB for HTTP/2) — a header
// less to build, copy and parse back per request. A longer answer is
// written out before the handler returns, and would go chunked without
// the header; 204 and 304 keep the explicit header they always had.
const autoLengthMax = 2048

// encodeJSON encodes a flow's answer. Bodies are jq values, which
// jqjson writes as gojq would (NaN as null, no HTML escaping) without
// reflection; anything else a flow might carry goes through
// encoding/json.
func encodeJSON(dst []byte, v any) ([]byte, error) {
	if data, ok := jqjson.Append(dst, v); ok {
		return data, nil
	}
	return json.Marshal(v)
}

// answerPool holds the buffers answers are encoded into; w.Write copies
// them, so one is reused as soon as the answer is written.
var answerPool = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledAnswer keeps a rare huge answer's buffer from staying pinned.
const maxPooledAnswer = 64 << 10

// flowError answers a run that ended in an error. Flow errors (fail
// steps, failed steps) carry the status and message the flow chose;
// anything else is the runtime's or the engine's fault and the client gets
// a generic message while the log gets the detail.
func (rt *Runtime) flowError(ctx context.Context, w http.ResponseWriter, lf *loadedFlow, reqID string, err error) int {
	var fe *flow.Error
	var pe *panicError
	switch {
	case errors.As(err, &fe):
		lf.metrics.fail("flow")
		status := fe.Status
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		if status >= 500 {
			rt.log.WarnContext(ctx, "flow failed", "project", lf.project, "flow", lf.f.Name, "step", fe.Step, "status", status, "err", err)
		}
		rt.serviceError(lf, reqID, err)
		writeErrorBody(w, errorBody{Code: status, Message: rt.redact.String(fe.Message), Details: rt.redactDetails(fe.Details)})
		return status
	case ctx.Err() != nil:
		// The client went away; there is no one to answer.
		return statusClientGone
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errAbandoned):
		lf.metrics.fail("timeout")
		rt.log.WarnContext(ctx, "flow timed out", "project", lf.project, "flow", lf.f.Name, "timeout", lf.timeout,
			"abandoned", errors.Is(err, errAbandoned))
		rt.serviceError(lf, reqID, err)
		writeError(w, http.StatusGatewayTimeout, fmt.Sprintf("flow %q did not answer within %s", lf.f.Name, lf.timeout))
		return http.StatusGatewayTimeout
	case errors.As(err, &pe):
		lf.metrics.fail("internal")
		rt.log.ErrorContext(ctx, "flow panicked", "project", lf.project, "flow", lf.f.Name, "panic", pe.Error(), "stack", pe.stack)
		rt.serviceError(lf, reqID, err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("flow %q failed; the runtime log has request id %s", lf.f.Name, reqID))
		return http.StatusInternalServerError
	default:
		lf.metrics.fail("internal")
		rt.log.ErrorContext(ctx, "flow error", "project", lf.project, "flow", lf.f.Name, "err", err)
		rt.serviceError(lf, reqID, err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("flow %q failed; the runtime log has request id %s", lf.f.Name, reqID))
		return http.StatusInternalServerError
	}
}

// redactDetails passes a flow error's details (validation findings that
// may quote the input) through the redactor, as JSON.
func (rt *Runtime) redactDetails(d any) any {
	if d == nil || rt.redact.r == nil {
		return d
	}
	data, err := json.Marshal(d)
	if err != nil {
		return nil
	}
	return json.RawMessage(rt.redact.Bytes(data))
}

func (rt *Runtime) serviceError(lf *loadedFlow, reqID string, err error) {
	if rt.trace.service.on.Load() {
		rt.trace.serviceEvent(serviceEvent{Event: "error", Project: lf.project, Flow: lf.f.Name, RequestID: reqID, Message: err.Error()})
	}
}

// requestID takes the caller's X-Request-Id when it is sane (so a request
// can be followed across services) and otherwise makes one: a per-process
// random prefix and a counter, unique without a random read per request.
func (rt *Runtime) requestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); id != "" && len(id) <= 128 && printable(id) {
		return id
	}
	b := make([]byte, 0, len(rt.reqPrefix)+21)
	b = append(b, rt.reqPrefix...)
	b = strconv.AppendUint(b, rt.reqSeq.Add(1), 10)
	return string(b)
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
