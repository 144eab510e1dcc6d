package runtime

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the runtime's Prometheus series. Each process has its own
// registry (not the global one) so tests and several runtimes in one
// process never collide.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec   // project, flow, trigger, code
	errors    *prometheus.CounterVec   // project, flow, kind
	duration  *prometheus.HistogramVec // project, flow, trigger
	inFlight  *prometheus.GaugeVec     // project, flow
	abandoned *prometheus.CounterVec   // project, flow
	unmatched *prometheus.CounterVec   // code (404, 405, 413 before a flow)
	ready     prometheus.Gauge
	traceOn   *prometheus.GaugeVec // type
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_flow_requests_total",
			Help: "Messages handled by each flow, by answer status (schedules count as 200 or 500).",
		}, []string{"project", "flow", "trigger", "code"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_flow_errors_total",
			Help: "Flow runs that ended in an error, by kind: flow (a fail step or failed step), timeout, internal, overload.",
		}, []string{"project", "flow", "kind"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_flow_duration_seconds",
			Help:    "Time from receiving a message to the flow's answer.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"project", "flow", "trigger"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_flow_in_flight",
			Help: "Runs of each flow in progress, including runs past their timeout that have not stopped yet.",
		}, []string{"project", "flow"}),
		abandoned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_flow_abandoned_total",
			Help: "Runs answered with a timeout while the flow kept running (it ignored cancellation).",
		}, []string{"project", "flow"}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_unmatched_total",
			Help: "Requests refused before reaching a flow, by status (404 no route, 405 wrong method).",
		}, []string{"code"}),
		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_runtime_ready",
			Help: "1 when the runtime has loaded its BARs and serves; 0 while loading or draining.",
		}),
		traceOn: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_trace_enabled",
			Help: "1 when the trace of that type is recording.",
		}, []string{"type"}),
	}
	m.reg.MustRegister(m.requests, m.errors, m.duration, m.inFlight, m.abandoned, m.unmatched, m.ready, m.traceOn,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.traceOn.WithLabelValues(TraceUser).Set(0)
	m.traceOn.WithLabelValues(TraceService).Set(0)
	return m
}

// flowMetrics are one flow's series, resolved once at load so the request
// path does not hash label values for the common answers.
type flowMetrics struct {
	m        *metrics
	project  string
	flow     string
	trigger  string
	ok       prometheus.Counter
	duration prometheus.Observer
	inFlight prometheus.Gauge
}

func (m *metrics) forFlow(project, flow, trigger string) *flowMetrics {
	fm := &flowMetrics{
		m: m, project: project, flow: flow, trigger: trigger,
		ok:       m.requests.WithLabelValues(project, flow, trigger, "200"),
		duration: m.duration.WithLabelValues(project, flow, trigger),
		inFlight: m.inFlight.WithLabelValues(project, flow),
	}
	// Series that exist from the start make dashboards and alerts on
	// rate() work before the first error happens.
	for _, kind := range []string{"flow", "timeout", "internal", "overload", "gateway"} {
		m.errors.WithLabelValues(project, flow, kind)
	}
	return fm
}

func (fm *flowMetrics) count(code int) {
	if code == 200 {
		fm.ok.Inc()
		return
	}
	fm.m.requests.WithLabelValues(fm.project, fm.flow, fm.trigger, strconv.Itoa(code)).Inc()
}

func (fm *flowMetrics) fail(kind string) {
	fm.m.errors.WithLabelValues(fm.project, fm.flow, kind).Inc()
}
