// Package runtime owns the integration runtime process (`sluice runtime`):
// it loads BAR files and a configuration directory, all or nothing, before
// serving; serves the HTTP flows on a SO_REUSEPORT listener; runs the
// schedules; keeps one flow's slowness or hang from stalling the others;
// answers health, readiness, Prometheus metrics, the flow listing and
// trace control on an admin listener; and drains in-flight work on
// SIGTERM.
//
// It does not parse or execute flows (package flow does), does not read
// archives itself (package bar does) and knows nothing of the control
// plane: the control plane starts it with flags and a config directory and
// watches its admin endpoints like anyone else.
package runtime

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/sluice-dev/sluice/internal/tracing"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	rtdebug "runtime/debug"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/egress"
	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/httplimit"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/procmem"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/serverconf"
)

// processStart approximates the start of the process (package variables
// initialise before main runs), for the startup time the ready log reports.
var processStart = time.Now()

// Options are the command-line inputs of a runtime.
type Options struct {
	BARs        []string // BAR files to serve, at least one
	ConfigDir   string   // configuration directory (docs/runtime.md); empty: none
	Listen      string   // address of the flows' HTTP listener
	AdminListen string   // address of the admin listener
	// PublicURL is the base URL advertised for the flows' endpoints in
	// the flow listing; empty: http://<listen address>.
	PublicURL string
	// LogOutput receives the JSON (or text) log; nil: os.Stderr.
	LogOutput io.Writer
	// Traces are the trace types ("user", "service") recording from the
	// start, so the service trace also holds the loading of the BARs; the
	// control plane passes the traces that were on when it (re)starts a
	// replica.
	Traces []string
	// Gateway, when set, enforces the plans of published APIs on the
	// flows it names (see package gateway); its state is kept current by
	// whoever made it (gateway.Follow). nil: every flow is open.
	Gateway *gateway.Gateway
	// AdminTokenFile holds the admin credential: every admin endpoint
	// but /healthz and /readyz needs it as a bearer token. Empty: those
	// endpoints are refused.
	AdminTokenFile string
	// AdminPprof serves Go's profiles under /debug/pprof/ (behind the
	// admin credential).
	AdminPprof bool
	// EgressAllow adds entries to the egress allow-list of the http
	// steps (see package egress), e.g. "127.0.0.1:9000".
	EgressAllow []string
	// OnReady, when set, is called once, when the flows are served: a
	// supervisor told at that moment need not poll /readyz to find out
	// (`sluice runtime --ready-fd`).
	OnReady func()
}

// Runtime is one running integration runtime.
type Runtime struct {
	opts     Options
	conf     *Configuration
	log      *slog.Logger
	redact   *redactor
	metrics  *metrics
	trace    *tracer
	router   *router
	cron     *cron.Cron
	workers  *workerPool
	flows    []*loadedFlow
	archives []*bar.Archive
	projects []projectInfo
	// hub holds the connections of publish and sql steps and the
	// consumers of message-source triggers (connectors.go).
	hub         *hub
	connMetrics *connectorMetrics

	state      atomic.Value // "loading", "ready", "draining"
	reqPrefix  string
	reqSeq     atomic.Uint64
	publicURL  string
	runCtx     context.Context // schedules run under it; cancelled when the drain gives up
	cancelRuns context.CancelFunc
	adminToken secret.Value
}

type projectInfo struct {
	Name        string `json:"name"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	BAR         string `json:"bar"`
}

// loadedFlow is one flow as the runtime serves it.
type loadedFlow struct {
	project     string
	ref         string // "project/flow", as the gateway names flows
	bar         string
	f           *flow.Flow
	timeout     time.Duration
	params      []string // wildcard names of the HTTP trigger's path
	maxInFlight int64
	inFlight    atomic.Int64
	metrics     *flowMetrics
	workers     *workerPool
	// local is f.Local(): its runs do their work in the process and end
	// when it does, so they run on the caller's goroutine (see run).
	local bool
	// exec replaces f.Run in tests that need a run misbehaving in ways
	// the engine never does (ignoring cancellation, panicking).
	exec func(context.Context, *flow.Message, flow.Tracer) (*flow.Response, error)
}

// errAbandoned marks a run that did not stop within the grace period after
// its context ended; the caller answers, the run goes on in the background
// and keeps its in-flight slot until it really ends.
var errAbandoned = errors.New("flow run abandoned after its timeout")

// abandonGrace is how long a run may take to notice its context ended.
// The engine checks cancellation between steps and inside jq; only a
// runaway (a step blocked in code that ignores ctx) needs more.
const abandonGrace = 500 * time.Millisecond

func (lf *loadedFlow) acquire() bool {
	if lf.inFlight.Add(1) > lf.maxInFlight {
		lf.inFlight.Add(-1)
		return false
	}
	lf.metrics.inFlight.Inc()
	return true
}

func (lf *loadedFlow) release() {
	lf.inFlight.Add(-1)
	lf.metrics.inFlight.Dec()
}

type result struct {
	resp *flow.Response
	err  error
}

// panicError is a panic inside a flow run, turned into an error so one bad
// message cannot take the process (and every other flow) down.
type panicError struct {
	value any
	stack string
}

func (p *panicError) Error() string { return fmt.Sprintf("panic: %v", p.value) }

// run executes the flow in its own goroutine, which holds the flow's
// in-flight slot (taken by the caller with acquire) until the run really
// ends. The caller gets an answer by the context's deadline plus a short
// grace even if the run ignores cancellation: one stuck flow costs its own
// quota, never another flow's requests.
//
// A local flow (flow.Flow.Local) runs on the caller's goroutine instead:
// it cannot wait on anything the deadline would have to cut short, and
// the hand-off to a worker was a good part of such a request's cost.
func (lf *loadedFlow) run(ctx context.Context, msg *flow.Message, tr flow.Tracer) (*flow.Response, error) {
	if lf.local && lf.exec == nil {
		return lf.runHere(ctx, msg, tr)
	}
	done := make(chan result, 1)
	lf.workers.submit(func() {
		defer lf.release()
		defer func() {
			if p := recover(); p != nil {
				done <- result{err: &panicError{value: p, stack: string(rtdebug.Stack())}}
			}
		}()
		exec := lf.f.Run
		if lf.exec != nil {
			exec = lf.exec
		}
		resp, err := exec(ctx, msg, tr)
		done <- result{resp, err}
	})
	select {
	case res := <-done:
		return res.resp, res.err
	case <-ctx.Done():
	}
	t := time.NewTimer(abandonGrace)
	defer t.Stop()
	select {
	case res := <-done:
		return res.resp, res.err
	case <-t.C:
		lf.metrics.m.abandoned.WithLabelValues(lf.project, lf.f.Name).Inc()
		return nil, fmt.Errorf("%w: %w", errAbandoned, ctx.Err())
	}
}

// runHere is run on the caller's goroutine, for local flows and for the
// triggers that call their handler on workers of their own (NATS).
func (lf *loadedFlow) runHere(ctx context.Context, msg *flow.Message, tr flow.Tracer) (resp *flow.Response, err error) {
	defer lf.release()
	defer func() {
		if p := recover(); p != nil {
			resp, err = nil, &panicError{value: p, stack: string(rtdebug.Stack())}
		}
	}()
	if lf.exec != nil {
		return lf.exec(ctx, msg, tr)
	}
	return lf.f.Run(ctx, msg, tr)
}

// workerPool runs flow executions on goroutines that outlive one run. A
// fresh goroutine starts with a small stack that gojq's deep call chains
// grow (copy) on every run; a worker keeps its grown stack for the next
// one. Workers are made on demand, so a run never waits for one, and exit
// after a while idle, so a burst does not leave thousands behind.
type workerPool struct {
	jobs chan func()
	idle time.Duration
}

func newWorkerPool(idle time.Duration) *workerPool {
	return &workerPool{jobs: make(chan func()), idle: idle}
}

func (p *workerPool) submit(fn func()) {
	select {
	case p.jobs <- fn: // an idle worker took it
	default:
		go p.worker(fn)
	}
}

func (p *workerPool) worker(fn func()) {
	fn()
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		select {
		case fn := <-p.jobs:
			fn()
			t.Reset(p.idle)
		case <-t.C:
			return
		}
	}
}

// Run loads the runtime and serves until ctx ends, then drains. It returns
// an error, and serves nothing, when any BAR or configuration is invalid.
func Run(ctx context.Context, opts Options) error {
	if os.Getenv("GOGC") == "" {
		// A runtime's live heap is small (compiled flows, a few
		// messages), so the default GOGC=100 collects very often under
		// load; twice the headroom halves the GC's share of the CPU for
		// a few MB more at peak. GOGC in the environment still wins.
		rtdebug.SetGCPercent(200)
	}
	rt, adminLn, err := start(opts)
	if err != nil {
		return err
	}
	// Traces when OTEL_EXPORTER_OTLP_ENDPOINT asks for them; traceparent
	// is continued and passed on by http steps either way.
	traces, err := tracing.Start(ctx, "sluice-runtime", rt.log.With("component", "tracing"))
	if err != nil {
		return fmt.Errorf("runtime: unable to set up tracing from the OTEL_* variables: %w", err)
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = traces.Shutdown(fctx)
	}()
	return rt.serve(ctx, adminLn)
}

// start reads the configuration, sets up logging and opens the admin
// listener, so /healthz answers and /readyz says "loading" while the BARs
// load.
func start(opts Options) (*Runtime, net.Listener, error) {
	rt, err := newRuntime(opts)
	if err != nil {
		return nil, nil, err
	}
	adminLn, err := net.Listen("tcp", opts.AdminListen)
	if err != nil {
		return nil, nil, fmt.Errorf("runtime: admin listener: %w", err)
	}
	rt.log.Info("configuration loaded", "configDir", opts.ConfigDir, "sources", rt.conf.Sources,
		"credentials", len(rt.conf.Flow.Credentials), "policies", rt.conf.PolicyCount())
	if len(rt.conf.Ignored) > 0 {
		rt.log.Warn("App Connect settings and policies without an effect in Sluice", "ignored", serverconf.Describe(rt.conf.Ignored))
	}
	return rt, adminLn, nil
}

// newRuntime builds a runtime from its options, with nothing loaded and no
// listener open.
func newRuntime(opts Options) (*Runtime, error) {
	if len(opts.BARs) == 0 {
		return nil, errors.New("runtime: no BAR files (use --bar FILE)")
	}
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
	}
	conf, err := LoadConfigDir(opts.ConfigDir)
	if err != nil {
		return nil, err
	}
	extra, err := egress.Parse(opts.EgressAllow, nil)
	if err != nil {
		return nil, fmt.Errorf("runtime: --egress-allow: %w", err)
	}
	conf.Egress = conf.Egress.With(extra.Allow, nil)
	conf.Flow.Dial = conf.Egress.Dialer(&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second})
	red := newRedactor(conf.Flow.Credentials)
	level, _ := conf.Settings.LogLevel()
	hopts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewJSONHandler(opts.LogOutput, hopts)
	if conf.Settings.Log.Format == "text" {
		h = slog.NewTextHandler(opts.LogOutput, hopts)
	}
	// Lines logged with a run's context name its request_id and, in a
	// trace, its trace_id (a caller's id comes through the redactor).
	base := slog.New(obs.ContextIDs(obs.UniqueKeys(newRedactHandler(h, red))))
	log := base.With("component", "runtime")
	conf.Flow.Logger = base.With("component", "flow")

	var prefix [4]byte
	rand.Read(prefix[:])
	rt := &Runtime{
		opts:      opts,
		conf:      conf,
		log:       log,
		redact:    red,
		metrics:   newMetrics(),
		trace:     newTracer(conf.Settings.Trace.BufferBytes, red),
		reqPrefix: hex.EncodeToString(prefix[:]) + "-",
		workers:   newWorkerPool(30 * time.Second),
	}
	if opts.AdminTokenFile != "" {
		tok, err := os.ReadFile(opts.AdminTokenFile)
		if err != nil {
			return nil, fmt.Errorf("runtime: admin credential: %w", err)
		}
		rt.adminToken = secret.New(strings.TrimSpace(string(tok)))
		if rt.adminToken.IsZero() {
			return nil, fmt.Errorf("runtime: admin credential file %s is empty", opts.AdminTokenFile)
		}
	}
	rt.connMetrics = newConnectorMetrics(rt.metrics.reg)
	rt.hub = newHub(base.With("component", "connectors"), rt.connMetrics)
	conf.Flow.Connectors = rt.hub
	rt.state.Store("loading")
	for _, kind := range opts.Traces {
		b := rt.trace.buffer(kind)
		if b == nil {
			return nil, fmt.Errorf("runtime: unknown trace type %q: want user or service", kind)
		}
		b.start(time.Now().UTC())
		rt.metrics.traceOn.WithLabelValues(kind).Set(1)
	}
	rt.runCtx, rt.cancelRuns = context.WithCancel(context.Background())
	rt.router = newRouter(func(code int) { rt.metrics.unmatched.WithLabelValues(fmt.Sprint(code)).Inc() })
	rt.cron = cron.New(cron.WithLogger(cronLogger{log}), cron.WithChain(cron.SkipIfStillRunning(cronLogger{log})))
	return rt, nil
}

func (rt *Runtime) serve(ctx context.Context, adminLn net.Listener) error {
	s := rt.conf.Settings
	// The admin listener takes small requests without bodies and
	// answers at most a trace buffer over a near link: serverconf's
	// limits, the read limit at most 30s.
	adminLimits := httplimit.Timeouts{ReadHeader: s.HTTP.ReadHeaderTimeout, Read: min(30*time.Second, s.HTTP.ReadTimeout),
		Write: s.HTTP.WriteTimeout, Idle: s.HTTP.IdleTimeout}
	admin := adminLimits.Apply(&http.Server{Handler: rt.adminHandler(),
		ErrorLog: slog.NewLogLogger(rt.log.Handler(), slog.LevelWarn)})
	adminErr := make(chan error, 1)
	go func() { adminErr <- admin.Serve(adminLn) }()
	defer admin.Close()
	defer rt.closeArchives()
	defer rt.hub.close()

	if err := rt.load(ctx); err != nil {
		rt.log.Error("load failed; not serving", "err", err)
		return err
	}
	lc := net.ListenConfig{Control: reusePort}
	ln, err := lc.Listen(ctx, "tcp", rt.opts.Listen)
	if err != nil {
		return fmt.Errorf("runtime: listener: %w", err)
	}
	hl := newHandoverListener(ln)
	scheme := "http://"
	if certs := rt.conf.TLSCertificates; len(certs) > 0 {
		// HTTPS only, HTTP/2 offered; the certificate by server name.
		hl.tlsConfig = &tls.Config{Certificates: certs, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
		scheme = "https://"
	}
	rt.publicURL = rt.opts.PublicURL
	if rt.publicURL == "" {
		rt.publicURL = scheme + advertised(ln.Addr())
	}
	rt.publicURL = strings.TrimSuffix(rt.publicURL, "/")
	srv := &http.Server{
		Handler:           rt.withRequestID(rt.router),
		ReadHeaderTimeout: s.HTTP.ReadHeaderTimeout,
		ReadTimeout:       s.HTTP.ReadTimeout,
		// Answering may take as long as reading the request and the
		// longest flow, then writing.
		WriteTimeout: s.HTTP.ReadTimeout + rt.longestFlowTimeout() + s.HTTP.WriteTimeout,
		IdleTimeout:  s.HTTP.IdleTimeout,
		ErrorLog:     slog.NewLogLogger(rt.log.Handler(), slog.LevelWarn),
	}
	hl.install(srv)
	srvErr := make(chan error, 1)
	go func() { srvErr <- srv.Serve(hl) }()
	rt.cron.Start()
	if err := rt.startTriggers(); err != nil {
		srv.Close()
		rt.cancelRuns()
		rt.log.Error("triggers failed to start; not serving", "err", err)
		return err
	}
	// The service trace has "ready" before anyone can learn of it from
	// /readyz or the log, so a client that waited for either finds it.
	rt.trace.serviceEvent(serviceEvent{Event: "ready", Message: fmt.Sprintf("%d flows on %s", len(rt.flows), ln.Addr())})
	rt.state.Store("ready")
	rt.metrics.ready.Set(1)
	startup := time.Since(processStart)
	rt.log.Info("runtime ready", "listen", ln.Addr().String(), "admin", adminLn.Addr().String(),
		"flows", len(rt.flows), "bars", rt.opts.BARs, "startup", startup.String())
	if rt.opts.OnReady != nil {
		rt.opts.OnReady()
	}
	// Start-up mapped most of the executable and a burst of requests
	// grows the heap; an idle runtime gives both back, and what serving
	// needs is mapped again as it is used (package procmem).
	if procmem.Enabled() {
		go procmem.TrimWhenIdle(ctx, time.Second, rt.reqSeq.Load, func(err error) {
			rt.log.Warn("unable to give back idle memory", "err", err)
		})
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-srvErr:
		serveErr = fmt.Errorf("runtime: listener: %w", err)
	case err := <-adminErr:
		serveErr = fmt.Errorf("runtime: admin listener: %w", err)
	}
	return errors.Join(serveErr, rt.drain(srv, hl))
}

// drain stops taking new work and waits for what is in flight: readiness
// goes false first (a load balancer stops sending), the schedules stop
// firing, then the listener closes and in-flight requests finish, within
// the shutdown timeout.
func (rt *Runtime) drain(srv *http.Server, hl *handoverListener) error {
	rt.state.Store("draining")
	rt.metrics.ready.Set(0)
	timeout := rt.conf.Settings.Shutdown.Timeout
	rt.log.Info("draining", "timeout", timeout.String())
	rt.trace.serviceEvent(serviceEvent{Event: "shutdown", Message: "draining"})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cronDone := rt.cron.Stop()
	// Message consumers stop taking messages and finish (and
	// acknowledge) those in flight while the HTTP side drains.
	hubErr := make(chan error, 1)
	go func() { hubErr <- rt.hub.drain(ctx) }()
	hl.handOver(srv, min(handoverGrace, timeout))
	err := srv.Shutdown(ctx)
	if herr := <-hubErr; herr != nil {
		rt.log.Warn("message triggers did not drain in time; unacknowledged messages will be redelivered", "err", herr)
	}
	select {
	case <-cronDone.Done():
	case <-ctx.Done():
	}
	// Schedules still running past the deadline are cancelled.
	rt.cancelRuns()
	rt.trace.close()
	if err != nil {
		srv.Close()
		rt.log.Warn("drain timed out; open connections closed", "err", err)
		return fmt.Errorf("runtime: drain did not finish within %s: %w", timeout, err)
	}
	rt.log.Info("stopped")
	return nil
}

// longestFlowTimeout is the longest timeout of the loaded flows.
func (rt *Runtime) longestFlowTimeout() time.Duration {
	d := rt.conf.Settings.Flows.Timeout
	for _, lf := range rt.flows {
		d = max(d, lf.timeout)
	}
	return d + abandonGrace
}

func (rt *Runtime) closeArchives() {
	for _, a := range rt.archives {
		a.Close()
	}
}

// advertised turns a listener address into one a client can dial.
func advertised(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// load opens, checks and loads every BAR, then wires its flows to routes
// and schedules. Nothing serves until all of it succeeded.
func (rt *Runtime) load(ctx context.Context) error {
	seen := map[string]string{}
	for _, path := range rt.opts.BARs {
		begin := time.Now()
		a, err := bar.Open(path, nil)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		rt.archives = append(rt.archives, a)
		p, err := a.Load(ctx, rt.conf.Flow)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if prev, dup := seen[p.Name]; dup {
			return fmt.Errorf("%s: project %q is also loaded from %s", path, p.Name, prev)
		}
		seen[p.Name] = path
		rt.projects = append(rt.projects, projectInfo{Name: p.Name, Version: p.Version, Description: p.Description, BAR: path})
		for _, f := range p.Flows {
			if err := rt.addFlow(path, p, f); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
		}
		rt.log.Info("bar loaded", "bar", path, "project", p.Name, "version", p.Version, "flows", len(p.Flows),
			"duration", time.Since(begin).String())
		rt.trace.serviceEvent(serviceEvent{Event: "load", Project: p.Name, Message: path})
	}
	sort.Slice(rt.flows, func(i, j int) bool {
		if rt.flows[i].project != rt.flows[j].project {
			return rt.flows[i].project < rt.flows[j].project
		}
		return rt.flows[i].f.Name < rt.flows[j].f.Name
	})
	return nil
}

func (rt *Runtime) addFlow(path string, p *flow.Project, f *flow.Flow) error {
	trigger := "call"
	switch {
	case f.HTTP != nil:
		trigger = "http"
	case f.Schedule != nil:
		trigger = "schedule"
	case f.NATS != nil:
		trigger = "nats"
	case f.AMQP != nil:
		trigger = "amqp"
	case f.MQTT != nil:
		trigger = "mqtt"
	case f.Kafka != nil:
		trigger = "kafka"
	case f.Directory != nil:
		trigger = "file"
	}
	lf := &loadedFlow{
		project:     p.Name,
		ref:         p.Name + "/" + f.Name,
		bar:         path,
		f:           f,
		timeout:     f.Timeout,
		maxInFlight: int64(rt.conf.Settings.Flows.MaxInFlight),
		metrics:     rt.metrics.forFlow(p.Name, f.Name, trigger),
		workers:     rt.workers,
		local:       f.Local(),
	}
	if lf.timeout <= 0 {
		lf.timeout = rt.conf.Settings.Flows.Timeout
	}
	switch trigger {
	case "http":
		lf.params = wildcards(f.HTTP.Path)
		owner := fmt.Sprintf("flow %q of %s", f.Name, path)
		if err := rt.router.handle(f.HTTP.Pattern(), owner, rt.serveFlow(lf)); err != nil {
			return err
		}
	case "schedule":
		rt.cron.Schedule(schedule{f.Schedule}, cron.FuncJob(func() { rt.runScheduled(lf) }))
	}
	rt.flows = append(rt.flows, lf)
	return nil
}

// schedule adapts the engine's parsed cron schedule (with its time zone)
// to robfig/cron, so both agree on every activation.
type schedule struct{ t *flow.ScheduleTrigger }

func (s schedule) Next(t time.Time) time.Time { return s.t.Next(t) }

// runScheduled runs a schedule-triggered flow with an empty message.
// SkipIfStillRunning keeps a slow schedule from piling up runs.
func (rt *Runtime) runScheduled(lf *loadedFlow) {
	start := time.Now()
	reqID := rt.reqPrefix + "s" + fmt.Sprint(rt.reqSeq.Add(1))
	if !lf.acquire() {
		lf.metrics.fail("overload")
		lf.metrics.count(http.StatusServiceUnavailable)
		rt.log.Warn("schedule skipped: too many runs in progress", "project", lf.project, "flow", lf.f.Name)
		return
	}
	var tr flow.Tracer
	if rt.trace.user.on.Load() {
		tr = &stepTracer{b: rt.trace.user, project: lf.project, requestID: reqID}
	}
	msg := &flow.Message{Headers: map[string]string{}, Query: map[string]string{}, Params: map[string]string{}}
	ctx, cancel := context.WithTimeout(obs.WithRequestID(rt.runCtx, reqID), lf.timeout)
	_, err := lf.run(ctx, msg, tr)
	cancel()
	status := http.StatusOK
	var fe *flow.Error
	switch {
	case err == nil:
	case errors.As(err, &fe):
		status = fe.Status
		if status < 400 || status > 599 {
			status = http.StatusInternalServerError
		}
		lf.metrics.fail("flow")
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errAbandoned):
		status = http.StatusGatewayTimeout
		lf.metrics.fail("timeout")
	default:
		status = http.StatusInternalServerError
		lf.metrics.fail("internal")
	}
	elapsed := time.Since(start)
	lf.metrics.count(status)
	lf.metrics.duration.Observe(elapsed.Seconds())
	if err != nil {
		rt.log.Warn("scheduled run failed", "project", lf.project, "flow", lf.f.Name, "status", status, "err", err, "request_id", reqID)
	} else {
		rt.log.Debug("scheduled run", "project", lf.project, "flow", lf.f.Name, "durationMs", ms(elapsed), "request_id", reqID)
	}
	if rt.trace.service.on.Load() {
		ev := serviceEvent{Event: "schedule", Project: lf.project, Flow: lf.f.Name, RequestID: reqID, Status: status, DurationMs: ms(elapsed)}
		if err != nil {
			ev.Message = err.Error()
		}
		rt.trace.serviceEvent(ev)
	}
}

// cronLogger sends robfig/cron's own messages (panics, skipped runs) to
// slog.
type cronLogger struct{ l *slog.Logger }

func (c cronLogger) Info(msg string, kv ...any) { c.l.Debug("cron: "+msg, kv...) }
func (c cronLogger) Error(err error, msg string, kv ...any) {
	c.l.Error("cron: "+msg, append(kv, "err", err)...)
}
