// Package tracing owns OpenTelemetry tracing of Sluice processes: it is
// off unless the standard OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, then exports spans over OTLP
// HTTP, configured by the standard OTEL_* variables. Spans go through a
// bounded queue of its own: a slow or unreachable collector never slows a
// request; spans that do not fit are dropped and counted. W3C traceparent
// is the propagation format. Spans carry route patterns and names, never
// header values, bodies or secrets.
package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/sluice-dev/sluice/internal/obs"
)

// Enabled reports whether the environment asks for traces.
func Enabled() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// on is set once Start has installed an exporting provider.
var on atomic.Bool

// On reports whether Start installed an exporting provider: until then
// every span is a no-op, and a hot path may skip starting one (the
// caller's trace context, extracted, is passed on all the same).
func On() bool { return on.Load() }

// QueueSize bounds the spans waiting for export; more are dropped.
const QueueSize = 2048

// Tracing is the process's tracer provider and its export queue.
type Tracing struct {
	provider *sdktrace.TracerProvider
	queue    *queue
}

// Dropped is how many spans did not fit in the queue (or failed to
// export) since start.
func (t *Tracing) Dropped() uint64 {
	if t == nil {
		return 0
	}
	return t.queue.dropped.Load()
}

// Start sets up tracing for service when the environment asks for it and
// installs it as the global provider and propagator; it returns nil (and
// tracing stays a no-op) otherwise. Shutdown flushes what is queued.
func Start(ctx context.Context, service string, log *slog.Logger) (*Tracing, error) {
	otel.SetTextMapPropagator(propagation.TraceContext{})
	if !Enabled() {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, err
	}
	q := newQueue(exp, log)
	res, _ := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(q), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	on.Store(true)
	return &Tracing{provider: tp, queue: q}, nil
}

// Shutdown exports what is queued (within ctx) and stops.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}

// Tracer is Sluice's tracer (a no-op until Start enables tracing).
func Tracer() trace.Tracer { return otel.Tracer("github.com/sluice-dev/sluice") }

// Middleware starts a server span per request, named by the route
// pattern that served it (set by the route tables with obs.SetRoute), and
// continues a trace the caller's traceparent names.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := otel.GetTextMapPropagator().Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := Tracer().Start(ctx, "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindServer))
		defer span.End()
		ctx, slot := obs.WithRouteSlotIfNone(ctx)
		rec := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(rec, r.WithContext(ctx))
		if route := slot.Route(); route != "" {
			span.SetName(route)
			span.SetAttributes(attribute.String("http.route", route))
		}
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// queue is a span processor with a bounded queue: OnEnd never blocks; a
// full queue drops the span and counts it. One goroutine exports batches.
type queue struct {
	exp     sdktrace.SpanExporter
	log     *slog.Logger
	spans   chan sdktrace.ReadOnlySpan
	dropped atomic.Uint64
	flush   chan chan struct{}
	done    chan struct{}
	once    sync.Once
	wg      sync.WaitGroup
}

const (
	batchSize     = 256
	batchInterval = time.Second
	exportTimeout = 10 * time.Second
)

func newQueue(exp sdktrace.SpanExporter, log *slog.Logger) *queue {
	q := &queue{exp: exp, log: log, spans: make(chan sdktrace.ReadOnlySpan, QueueSize), flush: make(chan chan struct{}), done: make(chan struct{})}
	q.wg.Add(1)
	go q.loop()
	return q
}

func (q *queue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

func (q *queue) OnEnd(s sdktrace.ReadOnlySpan) {
	if !s.SpanContext().IsSampled() {
		return
	}
	select {
	case q.spans <- s:
	default:
		q.dropped.Add(1)
	}
}

func (q *queue) loop() {
	defer q.wg.Done()
	t := time.NewTicker(batchInterval)
	defer t.Stop()
	var batch []sdktrace.ReadOnlySpan
	send := func() {
		if len(batch) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), exportTimeout)
		if err := q.exp.ExportSpans(ctx, batch); err != nil {
			q.dropped.Add(uint64(len(batch)))
			q.log.Debug("spans not exported", "spans", len(batch), "err", err)
		}
		cancel()
		batch = batch[:0]
	}
	for {
		select {
		case s := <-q.spans:
			batch = append(batch, s)
			if len(batch) >= batchSize {
				send()
			}
		case <-t.C:
			send()
		case ack := <-q.flush:
			for len(q.spans) > 0 {
				batch = append(batch, <-q.spans)
			}
			send()
			close(ack)
		case <-q.done:
			for len(q.spans) > 0 {
				batch = append(batch, <-q.spans)
			}
			send()
			return
		}
	}
}

func (q *queue) ForceFlush(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case q.flush <- ack:
	case <-ctx.Done():
		return ctx.Err()
	case <-q.done:
		return nil
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue) Shutdown(ctx context.Context) error {
	q.once.Do(func() { close(q.done) })
	stopped := make(chan struct{})
	go func() { q.wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
	}
	return q.exp.Shutdown(ctx)
}
