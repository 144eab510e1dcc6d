package runtime_test

import (
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// spanSink is an OTLP/HTTP trace receiver inside the test: runtimes
// started after newSpanSink export their spans to it.
type spanSink struct {
	mu    sync.Mutex
	spans []*tracepb.Span
}

func newSpanSink(t *testing.T) *spanSink {
	t.Helper()
	s := &spanSink{}
	col := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var req coltrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				s.spans = append(s.spans, ss.Spans...)
			}
		}
		s.mu.Unlock()
		out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(col.Close)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.URL)
	return s
}

// find returns the first span whose name starts with prefix, or nil.
func (s *spanSink) find(prefix string) *tracepb.Span {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sp := range s.spans {
		if strings.HasPrefix(sp.Name, prefix) {
			return sp
		}
	}
	return nil
}

// With OTEL_EXPORTER_OTLP_ENDPOINT set, a flow run is a span continuing
// the caller's traceparent, each step a child span, and the backend an
// http step calls is told the step's span as its parent.
func TestFlowRunsAndStepsAreSpans(t *testing.T) {
	sink := newSpanSink(t)
	b := newBackend(t)
	p := startRuntime(t, "--bar", buildBAR(t, "testdata/lab"), "--config-dir", standardConfig(t, b, nil))
	const traceID = "5b8efff798038103d269b633813fc60c"
	if a := do(t, "GET", p.url("/secret"), nil, "traceparent", "00-"+traceID+"-eee19b7ec3c1b174-01"); a.status != 200 {
		t.Fatalf("secret flow: %d %s", a.status, a.body)
	}
	eventually(t, "the flow's and its steps' spans", func() bool { return sink.find("flow ") != nil && sink.find("step http") != nil })
	run, step := sink.find("flow "), sink.find("step http")
	if hex.EncodeToString(run.TraceId) != traceID || hex.EncodeToString(run.ParentSpanId) != "eee19b7ec3c1b174" {
		t.Errorf("flow span in trace %x under %x, want the caller's", run.TraceId, run.ParentSpanId)
	}
	if string(step.ParentSpanId) != string(run.SpanId) || string(step.TraceId) != string(run.TraceId) {
		t.Errorf("the http step's span is not a child of the flow's")
	}
	b.mu.Lock()
	got := b.traceparent
	b.mu.Unlock()
	if want := "00-" + traceID + "-" + hex.EncodeToString(step.SpanId) + "-01"; got != want {
		t.Errorf("the backend got traceparent %q, want %q (the step's span)", got, want)
	}
}
