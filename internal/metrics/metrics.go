// Package metrics owns the control plane's Prometheus series: their
// registry, the HTTP middleware that counts requests by route pattern, and
// the adapters that the domain packages (iam, orchestrator, store) report
// through. Every label value comes from a fixed set (route patterns, grant
// and reason names, phases), never from a path, a name or anything else a
// caller chose, so the number of series stays bounded. docs/metrics.md
// lists every series; a series added here is added there.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// Unmatched is the route label of requests no route table took (404s,
// 405s): they share one series whatever their path.
const Unmatched = "unmatched"

// Metrics is one control plane's series. Each process has its own
// registry, not the global one, so tests running several never collide.
type Metrics struct {
	reg          *prometheus.Registry
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	tokens       *prometheus.CounterVec
	leases       *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	reconcile    *prometheus.HistogramVec
	queue        prometheus.Gauge
	runtimes     *prometheus.GaugeVec
	storeQueries *prometheus.HistogramVec
}

// latencyBuckets suit the control plane: most answers take well under a
// millisecond; BAR uploads and reconciles take seconds.
var latencyBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// New returns the series, registered with Go runtime and process metrics.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_requests_total",
			Help: "HTTP requests answered, by route pattern (\"unmatched\" when no route took it) and status class (2xx, 4xx, …).",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_http_request_duration_seconds",
			Help:    "Time from receiving a request to the end of its answer, by route pattern (streams count until they end).",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_http_requests_in_flight",
			Help: "HTTP requests being answered now, streams included.",
		}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_tokens_total",
			Help: "Access tokens issued (outcome issued, reason none) or refused, by grant and refusal reason.",
		}, []string{"grant", "outcome", "reason"}),
		leases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_lease_events_total",
			Help: "Lease events of consumer apps (create, renew, revoke, expire), by audit outcome.",
		}, []string{"event", "outcome"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_rate_limit_refusals_total",
			Help: "Calls refused with 429 by a rate limit, by the policy that refused (client or instance).",
		}, []string{"policy"}),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_reconcile_duration_seconds",
			Help:    "Time to reconcile one runtime, by result (ok or failed).",
			Buckets: latencyBuckets,
		}, []string{"result"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_reconciler_queue_depth",
			Help: "Runtimes of the current reconcile pass still waiting their turn (0 between passes, and on replicas that do not lead).",
		}),
		runtimes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_runtimes",
			Help: "Integration runtimes of every instance by phase, as of the last reconcile pass of the leading replica.",
		}, []string{"phase"}),
		storeQueries: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_store_query_duration_seconds",
			Help:    "Time for a store statement to answer (its first row), by kind: select, insert, update, delete, other, tx (a whole transaction).",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
	}
	m.reg.MustRegister(m.requests, m.duration, m.inFlight, m.tokens, m.leases, m.rateLimited, m.reconcile, m.queue, m.runtimes, m.storeQueries,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the series in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Middleware counts every request by the route pattern that served it
// (set by the route tables with obs.SetRoute) and its status class.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := clock.StartStopwatch()
		m.inFlight.Inc()
		ctx, slot := obs.WithRouteSlot(r.Context())
		rec := &statusWriter{ResponseWriter: w}
		defer func() {
			m.inFlight.Dec()
			route := slot.Route()
			if route == "" {
				route = Unmatched
			}
			m.requests.WithLabelValues(route, statusClass(rec.status)).Inc()
			m.duration.WithLabelValues(route).Observe(sw.Seconds())
		}()
		next.ServeHTTP(rec, r.WithContext(ctx))
	})
}

var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func statusClass(code int) string {
	if code == 0 {
		code = http.StatusOK
	}
	if c := code/100 - 1; c >= 0 && c < len(classes) {
		return classes[c]
	}
	return strconv.Itoa(code/100) + "xx"
}

// statusWriter remembers the status a handler answered.
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

// Unwrap lets http.ResponseController reach Flush and deadlines (streams).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// CountDroppedSpans exports how many trace spans were dropped (queue full
// or export failed), as read by dropped.
func (m *Metrics) CountDroppedSpans(dropped func() uint64) {
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "sluice_trace_spans_dropped_total",
		Help: "OpenTelemetry spans dropped because the export queue was full or the collector did not take them (only with tracing on).",
	}, func() float64 { return float64(dropped()) }))
}

// CountAuditExport exports the audit export's progress, as read by stats:
// events written to the sink, events left out of it (they are in the
// store), and events waiting — the export's lag.
func (m *Metrics) CountAuditExport(stats func() (exported, dropped uint64, queued int)) {
	const help = "Audit events written to the --audit-export sink (result=\"exported\") or left out of it because it failed or fell behind (result=\"dropped\"; they stay in the store)."
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "sluice_audit_export_events_total",
			Help:        help,
			ConstLabels: prometheus.Labels{"result": "exported"},
		}, func() float64 { e, _, _ := stats(); return float64(e) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "sluice_audit_export_events_total",
			Help:        help,
			ConstLabels: prometheus.Labels{"result": "dropped"},
		}, func() float64 { _, d, _ := stats(); return float64(d) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sluice_audit_export_queue",
			Help: "Committed audit events waiting to be written to the --audit-export sink (its lag).",
		}, func() float64 { _, _, q := stats(); return float64(q) }))
}

// IAM is what the iam service reports through.
func (m *Metrics) IAM() iam.Metrics { return iamMetrics{m} }

type iamMetrics struct{ m *Metrics }

func (i iamMetrics) Token(grant, reason string) {
	if reason == "" {
		i.m.tokens.WithLabelValues(grant, "issued", "none").Inc()
		return
	}
	i.m.tokens.WithLabelValues(grant, "refused", reason).Inc()
}

func (i iamMetrics) Lease(event, outcome string) { i.m.leases.WithLabelValues(event, outcome).Inc() }

// RateLimited counts one call a rate limit refused (iam.RateLimiter.OnRefuse).
func (m *Metrics) RateLimited(policy string) { m.rateLimited.WithLabelValues(policy).Inc() }

// StoreQuery records one store statement (store.ObserveQueries).
func (m *Metrics) StoreQuery(kind string, seconds float64) {
	m.storeQueries.WithLabelValues(kind).Observe(seconds)
}

// Reconciler is what the reconciler reports through.
func (m *Metrics) Reconciler() orchestrator.Metrics { return reconcilerMetrics{m} }

type reconcilerMetrics struct{ m *Metrics }

func (r reconcilerMetrics) Reconciled(seconds float64, failed bool) {
	result := "ok"
	if failed {
		result = "failed"
	}
	r.m.reconcile.WithLabelValues(result).Observe(seconds)
}

func (r reconcilerMetrics) Queue(n int) { r.m.queue.Set(float64(n)) }

func (r reconcilerMetrics) Phases(byPhase map[string]int) {
	for phase, n := range byPhase {
		r.m.runtimes.WithLabelValues(phase).Set(float64(n))
	}
}

var (
	_ iam.Metrics          = iamMetrics{}
	_ orchestrator.Metrics = reconcilerMetrics{}
)
