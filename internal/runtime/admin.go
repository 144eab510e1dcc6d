package runtime

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-dev/sluice/internal/bar"
)

// adminHandler is the admin listener's route table. Only /healthz and
// /readyz are open (they say nothing but "alive" and "ready", and probes
// must reach them); everything else (traces hold message bodies and
// headers, metrics and the flow listing describe the tenant's flows)
// needs the runtime's admin credential as a bearer token. On one host
// every process can connect to every loopback port, another tenant's
// flow included, so a private address alone protects nothing.
func (rt *Runtime) adminHandler() http.Handler {
	r := newRouter(nil)
	must := func(pattern string, h http.HandlerFunc) {
		if err := r.handle(pattern, "admin", h); err != nil {
			panic(err) // a programming error in this table
		}
	}
	guarded := func(pattern string, h http.HandlerFunc) { must(pattern, rt.requireAdmin(h)) }
	must("GET /healthz", rt.healthz)
	must("GET /readyz", rt.readyz)
	guarded("GET /metrics", promhttp.HandlerFor(rt.metrics.reg, promhttp.HandlerOpts{}).ServeHTTP)
	guarded("GET /flows", rt.listFlows)
	guarded("GET /connections", rt.listConnections)
	guarded("GET /trace", rt.traceStatus)
	guarded("GET /trace/{type}", rt.traceStatus)
	guarded("POST /trace/{type}/start", rt.traceStart)
	guarded("POST /trace/{type}/stop", rt.traceStop)
	guarded("DELETE /trace/{type}", rt.traceClear)
	guarded("GET /trace/{type}/stream", rt.traceStream)
	guarded("GET /trace/{type}/download", rt.traceDownload)
	// Go profiles (what a busy or bloated runtime spends itself on) show
	// command lines and memory; they exist only when asked for.
	if rt.opts.AdminPprof {
		guarded("GET /debug/pprof/", pprof.Index)
		guarded("GET /debug/pprof/cmdline", pprof.Cmdline)
		guarded("GET /debug/pprof/profile", pprof.Profile)
		guarded("GET /debug/pprof/symbol", pprof.Symbol)
		guarded("GET /debug/pprof/trace", pprof.Trace)
	}
	return r
}

// requireAdmin lets a request through only with the admin credential in
// `Authorization: Bearer …`, compared in constant time (over digests, so
// the length does not show either). A runtime started without a
// credential serves none of these endpoints.
func (rt *Runtime) requireAdmin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if rt.adminToken.IsZero() {
			writeError(w, http.StatusForbidden, "this runtime has no admin credential (--admin-token-file): only /healthz and /readyz are served")
			return
		}
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		want := sha256.Sum256([]byte(rt.adminToken.Reveal()))
		have := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if !ok || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice runtime admin"`)
			writeError(w, http.StatusUnauthorized, "the admin credential is missing or wrong")
			return
		}
		h(w, r)
	}
}

// healthz says the process is alive: it answers as long as it can answer.
func (rt *Runtime) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz says whether to send traffic: only once every BAR is loaded and
// the listener is open, and no longer once draining has begun.
func (rt *Runtime) readyz(w http.ResponseWriter, r *http.Request) {
	state, _ := rt.state.Load().(string)
	status := http.StatusServiceUnavailable
	if state == "ready" {
		status = http.StatusOK
	}
	writeJSON(w, status, map[string]string{"status": state})
}

type flowView struct {
	Project  string      `json:"project"`
	BAR      string      `json:"bar"`
	Name     string      `json:"name"`
	File     string      `json:"file"`
	Trigger  bar.Trigger `json:"trigger"`
	Endpoint string      `json:"endpoint,omitempty"`
	Timeout  string      `json:"timeout"`
	InFlight int64       `json:"inFlight"`
}

// listFlows answers the loaded projects, their flows and the URLs of the
// HTTP ones: what the control plane copies into status.endpoints.
func (rt *Runtime) listFlows(w http.ResponseWriter, r *http.Request) {
	state, _ := rt.state.Load().(string)
	if state == "loading" {
		writeError(w, http.StatusServiceUnavailable, "the runtime is still loading")
		return
	}
	flows := make([]flowView, 0, len(rt.flows))
	endpoints := []string{}
	for _, lf := range rt.flows {
		v := flowView{Project: lf.project, BAR: lf.bar, Name: lf.f.Name, File: lf.f.File, Trigger: bar.TriggerOf(lf.f),
			Timeout: lf.timeout.String(), InFlight: lf.inFlight.Load()}
		if lf.f.HTTP != nil {
			v.Endpoint = rt.publicURL + lf.f.HTTP.Path
			endpoints = append(endpoints, v.Endpoint)
		}
		flows = append(flows, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"projects":  rt.projects,
		"flows":     flows,
		"endpoints": endpoints,
		"baseURL":   rt.publicURL,
	})
}

// listConnections says which connections of message servers (nats, amqp,
// mqtt, kafka) are up: the control plane turns it into the runtime's
// ConnectionsReady condition. A policy appears once its connection was
// first tried.
func (rt *Runtime) listConnections(w http.ResponseWriter, r *http.Request) {
	conns := []connState{}
	if rt.hub != nil {
		conns = rt.hub.connections()
	}
	writeJSON(w, http.StatusOK, map[string]any{"connections": conns})
}

func (rt *Runtime) traceBuffer(w http.ResponseWriter, r *http.Request) *traceBuffer {
	b := rt.trace.buffer(r.PathValue("type"))
	if b == nil {
		writeError(w, http.StatusNotFound, "unknown trace type "+quote(r.PathValue("type"))+": want user or service")
	}
	return b
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64]
	}
	return `"` + s + `"`
}

func (rt *Runtime) traceStatus(w http.ResponseWriter, r *http.Request) {
	if r.PathValue("type") == "" {
		writeJSON(w, http.StatusOK, map[string]any{"traces": []TraceStatus{rt.trace.user.status(), rt.trace.service.status()}})
		return
	}
	if b := rt.traceBuffer(w, r); b != nil {
		writeJSON(w, http.StatusOK, b.status())
	}
}

func (rt *Runtime) traceStart(w http.ResponseWriter, r *http.Request) {
	b := rt.traceBuffer(w, r)
	if b == nil {
		return
	}
	b.start(time.Now().UTC())
	rt.metrics.traceOn.WithLabelValues(b.kind).Set(1)
	rt.log.Info("trace started", "type", b.kind)
	rt.trace.serviceEvent(serviceEvent{Event: "trace", Message: b.kind + " trace started"})
	writeJSON(w, http.StatusOK, b.status())
}

func (rt *Runtime) traceStop(w http.ResponseWriter, r *http.Request) {
	b := rt.traceBuffer(w, r)
	if b == nil {
		return
	}
	rt.trace.serviceEvent(serviceEvent{Event: "trace", Message: b.kind + " trace stopped"})
	b.stop(time.Now().UTC())
	rt.metrics.traceOn.WithLabelValues(b.kind).Set(0)
	rt.log.Info("trace stopped", "type", b.kind)
	writeJSON(w, http.StatusOK, b.status())
}

func (rt *Runtime) traceClear(w http.ResponseWriter, r *http.Request) {
	if b := rt.traceBuffer(w, r); b != nil {
		b.clear()
		writeJSON(w, http.StatusOK, b.status())
	}
}

func (rt *Runtime) traceStream(w http.ResponseWriter, r *http.Request) {
	if b := rt.traceBuffer(w, r); b != nil {
		rt.trace.serveStream(w, r, b)
	}
}

func (rt *Runtime) traceDownload(w http.ResponseWriter, r *http.Request) {
	if b := rt.traceBuffer(w, r); b != nil {
		rt.trace.serveDownload(w, r, b)
	}
}
