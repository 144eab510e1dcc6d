package orchestrator

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/acepolicy"
	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/serverconf"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/tracing"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Reconciler drives every runtime towards its spec. It is level-triggered:
// each pass reads the desired state of all runtimes from the store, asks
// the backend for what runs, acts on the difference and writes the
// observed status back. A pass after a crash or a restart of the control
// plane does exactly what a normal pass does, which is what makes it
// restart-safe.
type Reconciler struct {
	Store      store.Store
	Configs    *configuration.Service
	Backend    Backend
	Log        *slog.Logger
	Now        clock.Func
	Interval   time.Duration // between passes when nothing kicks; default 2s
	MaxBARSize int64         // largest external BAR fetched; default 100 MiB
	// FetchTimeout bounds one external BAR fetch; default 60s.
	FetchTimeout time.Duration
	// Resync, when set, lets a steady reconciler skip its periodic
	// passes while nothing was written to the store: every Interval it
	// compares the store's write stamp (store.WriteStamper) with the one
	// taken before its last pass instead of reading the runtimes again,
	// and passes only when the stamp moved or Resync has gone by since
	// that pass. Steady is a pass after which every runtime is Ready or
	// Stopped, none settling, none with message-server connections to
	// watch (ConnectionsReady has no event) and nothing failing. Only a
	// backend that reports every change of what runs (local.Options'
	// OnChange wired to Kick) may be given it: a crash or a replica
	// turning unready must wake the reconciler by itself. An idle
	// control plane so runs none of a pass's code (SQL engine, JSON,
	// HTTP to the replicas) and keeps none of its pages mapped.
	Resync time.Duration
	// Bundles mints the credentials runtimes fetch their bundle with, from
	// BundleBase (the control plane's URL as runtimes reach it).
	Bundles    *BundleKeys
	BundleBase string
	// BundleCA is the control plane's TLS certificate (PEM) when
	// BundleBase is https: what its runtimes trust, and nothing else.
	BundleCA func() []byte
	// EgressDeny are egress rules (package egress) no allow-list opens
	// short of naming the exact address and port: the control plane's
	// own listener and the runtimes' ports.
	EgressDeny []string
	// Metrics receives reconcile durations, the queue of a pass and the
	// runtimes by phase; nil: not measured.
	Metrics Metrics

	kick     chan struct{}
	initOnce sync.Once
	settling atomic.Bool // some runtime is on its way to its desired state
	steady   atomic.Bool // the last pass found nothing to watch (see Resync)
	leading  atomic.Bool // this process holds the reconciler leadership
	// passSettling collects, during one pass, whether any runtime settles;
	// passUnsteady whether any runtime needs watching all the same.
	passSettling, passUnsteady bool

	mu       sync.Mutex
	blobs    map[string]cachedBAR // by sha256
	external map[string]cachedBAR // by uid/generation/url: fetched once per generation
	observed map[Key]Observed
	removing map[Key]bool // runtimes whose removal is under way
	// lastSpecs is specsFingerprint of the last pass's runtimes.
	lastSpecs string
}

type cachedBAR struct {
	data []byte
	sum  string // hex sha256 of data, hashed once when it was read
	info *bar.Info
	err  error
	at   time.Time // when a failed fetch happened, to retry it later
	used bool
}

// Metrics receives the reconciler's measurements (the control plane's
// /metrics); the reconciler works the same without them.
type Metrics interface {
	// Reconciled is told how long one runtime's reconcile took and
	// whether it failed (the backend or the status write).
	Reconciled(seconds float64, failed bool)
	// Queue is told how many runtimes of the current pass wait their turn
	// (0 between passes).
	Queue(n int)
	// Phases is told, after every pass, how many runtimes are in each phase.
	Phases(map[string]int)
}

// settlingInterval is the time between passes while a runtime settles.
const settlingInterval = 150 * time.Millisecond

// fetchRetry is how long a failed external fetch is remembered before it
// is tried again.
const fetchRetry = 30 * time.Second

func (r *Reconciler) init() {
	r.initOnce.Do(func() {
		r.kick = make(chan struct{}, 1)
		r.blobs = map[string]cachedBAR{}
		r.external = map[string]cachedBAR{}
		r.observed = map[Key]Observed{}
		r.removing = map[Key]bool{}
	})
}

func (r *Reconciler) now() time.Time { return r.Now.Now().UTC() }

// Kick asks for a pass now.
func (r *Reconciler) Kick() {
	r.init()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Observed returns what the last pass saw of a runtime.
func (r *Reconciler) Observed(k Key) (Observed, bool) {
	r.init()
	r.mu.Lock()
	defer r.mu.Unlock()
	o, ok := r.observed[k]
	return o, ok
}

// Leading reports whether this process leads the reconciler: only then
// are its Observed answers current, and its runtimes reachable from here.
func (r *Reconciler) Leading() bool { return r.leading.Load() }

// ObservedAll returns what the last pass saw of every runtime, while this
// process leads; nil otherwise.
func (r *Reconciler) ObservedAll() map[Key]Observed {
	r.init()
	if !r.Leading() {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[Key]Observed, len(r.observed))
	for k, o := range r.observed {
		out[k] = o
	}
	return out
}

// Run reconciles until ctx is done. Among control planes sharing a store,
// only the one holding the reconciler leadership acts; the others wait to
// take over.
func (r *Reconciler) Run(ctx context.Context) {
	r.init()
	for ctx.Err() == nil {
		lost, release, err := r.Store.AcquireLeader(ctx, "reconciler")
		if err != nil {
			if ctx.Err() == nil {
				r.Log.Warn("unable to take the reconciler leadership", "err", err)
				time.Sleep(2 * time.Second)
			}
			continue
		}
		r.Log.Info("leading the reconciler")
		lctx, cancel := context.WithCancel(ctx)
		go func() {
			select {
			case <-lost:
				r.Log.Warn("reconciler leadership lost")
			case <-lctx.Done():
			}
			cancel()
		}()
		r.leading.Store(true)
		r.lead(lctx)
		r.leading.Store(false)
		cancel()
		release()
	}
}

// lead runs passes while this process leads.
func (r *Reconciler) lead(ctx context.Context) {
	interval := r.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	// A spec written through another control plane sharing the store
	// reaches this one through the store's change feed (PostgreSQL); the
	// feed also fires on every status write, so a signal only starts a
	// pass when the runtimes or their generations differ from the last
	// pass's. The timer stays the guarantee.
	changes, unsubscribe := r.Store.SubscribeChanges()
	defer unsubscribe()
	timer := time.NewTimer(0)
	defer timer.Stop()
	plog := &passLog{log: r.Log}
	for {
		// The stamp is taken before the pass reads, so a write made
		// during the pass moves it.
		stamp, stamped := r.writeStamp()
		err := r.Pass(ctx)
		last := r.now()
		if ctx.Err() == nil {
			plog.pass(err, last)
		}
		if err != nil {
			r.steady.Store(false)
		}
		// While a runtime is starting or rolling over, look again soon so
		// its status turns Ready (and its endpoints appear) promptly.
		wait := interval
		if r.settling.Load() {
			wait = settlingInterval
		}
		timer.Reset(wait)
	wait:
		for {
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
				if stamped && r.quiet(stamp, last) {
					timer.Reset(wait)
					continue
				}
				break wait
			case <-r.kick:
				timer.Stop()
				break wait
			case <-changes:
				if r.specsChanged(ctx) {
					timer.Stop()
					break wait
				}
			}
		}
	}
}

// writeStamp is the store's write stamp, when Resync is set and the store
// has one.
func (r *Reconciler) writeStamp() (store.WriteStamp, bool) {
	ws, ok := r.Store.(store.WriteStamper)
	if r.Resync <= 0 || !ok {
		return store.WriteStamp{}, false
	}
	return ws.WriteStamp(), true
}

// quiet says whether the periodic pass due now may be skipped: the last
// pass (which began at stamp and ended at last) left every runtime steady,
// nothing was written to the store since, and Resync has not gone by.
// Kicks and the change feed still start passes at once.
func (r *Reconciler) quiet(stamp store.WriteStamp, last time.Time) bool {
	if !r.steady.Load() || r.now().Sub(last) >= r.Resync {
		return false
	}
	now, ok := r.writeStamp()
	return ok && now == stamp
}

// specsFingerprint names every runtime with its uid and generation: what
// a write through another control plane changes when it asks for work.
func specsFingerprint(rts []store.Runtime) string {
	var b strings.Builder
	for _, rt := range rts {
		fmt.Fprintf(&b, "%s/%s/%s/%d\n", rt.InstanceID, rt.Name, rt.UID, rt.Generation)
	}
	return b.String()
}

// specsChanged says whether the runtimes differ from what the last pass
// saw (a read error counts as a change: the pass will say what is wrong).
func (r *Reconciler) specsChanged(ctx context.Context) bool {
	rts, err := r.Store.ListRuntimes(ctx, "", store.Page{})
	if err != nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return specsFingerprint(rts) != r.lastSpecs
}

// Pass reconciles every runtime once.
func (r *Reconciler) Pass(ctx context.Context) error {
	r.init()
	rts, err := r.Store.ListRuntimes(ctx, "", store.Page{})
	if err != nil {
		return err
	}
	r.passSettling, r.passUnsteady = false, false
	defer func() {
		r.settling.Store(r.passSettling)
		r.steady.Store(!r.passSettling && !r.passUnsteady)
	}()
	r.mu.Lock()
	r.lastSpecs = specsFingerprint(rts)
	r.mu.Unlock()
	want := map[Key]bool{}
	phases := map[string]int{PhasePending: 0, PhaseReady: 0, PhaseFailed: 0, PhaseStopped: 0, PhaseRestarting: 0}
	for i, rec := range rts {
		if r.Metrics != nil {
			r.Metrics.Queue(len(rts) - i)
		}
		rt, err := Decode(rec)
		if err != nil {
			r.Log.Error("skipping a runtime whose record does not decode", "runtime", rec.Name, "err", err)
			r.passUnsteady = true
			continue
		}
		k := Key{InstanceID: rt.InstanceID, Name: rt.Name}
		want[k] = true
		if r.beingRemoved(k) {
			// Deleted and made again while the old one drains: it is
			// reconciled once the old one is gone.
			r.passSettling = true
			continue
		}
		sw := clock.StartStopwatch()
		rctx, span := tracing.Tracer().Start(ctx, "reconcile", trace.WithAttributes(attribute.String("sluice.runtime.uid", rt.UID)))
		phase, failed := r.reconcile(rctx, rt)
		span.SetAttributes(attribute.String("sluice.runtime.phase", phase))
		if failed {
			span.SetStatus(codes.Error, "reconcile failed")
		}
		span.End()
		phases[phase]++
		if failed || (phase != PhaseReady && phase != PhaseStopped) {
			r.passUnsteady = true
		}
		if r.Metrics != nil {
			r.Metrics.Reconciled(sw.Seconds(), failed)
		}
	}
	if r.Metrics != nil {
		r.Metrics.Queue(0)
		r.Metrics.Phases(phases)
	}
	// Runtimes whose record is gone are stopped and their files removed.
	running, err := r.Backend.List(ctx)
	if err != nil {
		return err
	}
	for _, k := range running {
		if !want[k] {
			r.remove(ctx, k)
		}
	}
	r.sweepCaches()
	return nil
}

// remove stops and removes a runtime whose record is gone, on a goroutine
// of its own: its replicas may take a while to drain, and the other
// runtimes' passes (a new one waiting to start) must not wait for them.
// A runtime being removed is left alone by the passes until it is gone.
func (r *Reconciler) remove(ctx context.Context, k Key) {
	r.mu.Lock()
	if r.removing[k] {
		r.mu.Unlock()
		return
	}
	r.removing[k] = true
	r.mu.Unlock()
	r.Log.Info("removing deleted runtime", "runtime", k.String())
	go func() {
		err := r.Backend.Delete(ctx, k)
		if err != nil {
			r.Log.Warn("unable to remove deleted runtime", "runtime", k.String(), "err", err)
		}
		r.mu.Lock()
		delete(r.removing, k)
		delete(r.observed, k)
		r.mu.Unlock()
		r.Kick() // a runtime of the same name may be waiting
	}()
}

// beingRemoved says whether k's removal is under way.
func (r *Reconciler) beingRemoved(k Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.removing[k]
}

// reconcile handles one runtime and writes its status. It returns the
// phase it wrote and whether the backend or the status write failed.
func (r *Reconciler) reconcile(ctx context.Context, rt Runtime) (phase string, failed bool) {
	k := Key{InstanceID: rt.InstanceID, Name: rt.Name}
	st := rt.Status
	st.SupportsTraceCustomResource = true
	replicas := 1
	if rt.Spec.Replicas != nil {
		replicas = *rt.Spec.Replicas
	}

	configs, barauth, missingCfg := r.gatherConfigs(ctx, rt)
	ignored, ignoredPolicies := ignoredServerconf(configs), ignoredPolicies(configs)
	bars, infos, missingBAR, fetchErr := r.gatherBARs(ctx, rt, barauth)
	missing := append(missingBAR, missingCfg...)

	var obs Observed
	var err error
	switch {
	case len(missing) > 0 || fetchErr != "":
		// Keep whatever generation serves now; report what is missing.
		obs, err = r.Backend.Observe(ctx, k)
	default:
		d := Deployment{Key: k, UID: rt.UID, Generation: rt.Generation, Replicas: replicas, BARs: bars, Configs: configs}
		d.Resources, _ = TemplateResources(rt.Spec.Template) // checked when the spec was written
		if r.Bundles != nil && r.BundleBase != "" {
			d.BundleURL = BundleURL(r.BundleBase, rt.UID, rt.Generation)
			d.BundleToken = r.Bundles.Token(rt.UID, rt.Generation)
			if r.BundleCA != nil {
				d.BundleCA = r.BundleCA()
			}
		}
		obs, err = r.Backend.Apply(ctx, d)
		if err == nil {
			st.ObservedGeneration = rt.Generation
			st.Versions = RunningVersions(rt.Spec.Version)
		}
	}
	now := r.now()
	if err != nil {
		obs.LastError = err.Error()
	}
	r.mu.Lock()
	r.observed[k] = obs
	r.mu.Unlock()

	st.Replicas, st.AvailableReplicas, st.Restarts, st.LastError = obs.Replicas, obs.AvailableReplicas, obs.Restarts, obs.LastError
	st.Endpoints = endpoints(obs.BaseURL, infos)
	if obs.AvailableReplicas == 0 {
		st.Endpoints = []Endpoint{}
	}
	switch {
	case len(missing) > 0:
		st.Conditions = setCondition(st.Conditions, "DependenciesAvailable", "False", "Missing", "not found: "+strings.Join(missing, ", ")+"; the runtime starts when they exist", now)
	case fetchErr != "":
		st.Conditions = setCondition(st.Conditions, "DependenciesAvailable", "False", "BARFetchFailed", fetchErr, now)
	default:
		st.Conditions = setCondition(st.Conditions, "DependenciesAvailable", "True", "Found", "every BAR file and configuration is available", now)
	}
	// A cluster that refuses or cannot be reached is said apart from the
	// runtime's own failures: what the cluster answered, until it accepts.
	var ce *ClusterError
	switch {
	case errors.As(err, &ce):
		st.Conditions = setCondition(st.Conditions, "ClusterAccepted", "False", ce.Reason, ce.Message, now)
	case err == nil && hasCondition(st.Conditions, "ClusterAccepted"):
		st.Conditions = setCondition(st.Conditions, "ClusterAccepted", "True", "Accepted", "the cluster accepted the runtime's objects", now)
	}
	if typ, status, reason, msg, ok := barAuthCondition(rt, barauth); ok {
		st.Conditions = setCondition(st.Conditions, typ, status, reason, msg, now)
	}
	switch {
	case len(ignored) > 0 || len(ignoredPolicies) > 0:
		var parts []string
		if len(ignored) > 0 {
			parts = append(parts, "serverconf keys "+serverconf.Describe(ignored)+" have no effect in Sluice")
		}
		if len(ignoredPolicies) > 0 {
			parts = append(parts, "policies "+serverconf.Describe(ignoredPolicies)+" have no effect in Sluice")
		}
		st.Conditions = setCondition(st.Conditions, "ConfigurationIgnored", "True", "KeysIgnored", strings.Join(parts, "; "), now)
	case hasCondition(st.Conditions, "ConfigurationIgnored"):
		st.Conditions = setCondition(st.Conditions, "ConfigurationIgnored", "False", "NoneIgnored",
			"every serverconf key has an effect in Sluice", now)
	}
	upToDate := obs.Generation == rt.Generation && !obs.Progressing
	var status, reason, msg string
	st.Phase, status, reason, msg = readiness(obs, replicas, upToDate, missing, fetchErr)
	st.Conditions = setCondition(st.Conditions, "Ready", status, reason, msg, now)
	if (st.Phase == PhasePending || st.Phase == PhaseRestarting) && len(missing) == 0 {
		r.passSettling = true
	}
	progress := "False"
	if obs.Progressing || (!upToDate && len(missing) == 0 && fetchErr == "") {
		progress = "True"
	}
	st.Conditions = setCondition(st.Conditions, "Progressing", progress, "Rollout", fmt.Sprintf("generation %d desired, %d serving", rt.Generation, obs.Generation), now)
	if obs.AdminURL != "" {
		r.keepTracing(ctx, rt, obs)
		if typ, status, reason, msg, ok := connectionsCondition(ctx, obs); ok {
			st.Conditions = setCondition(st.Conditions, typ, status, reason, msg, now)
			r.passUnsteady = true // a connection going down has no event: keep asking
		}
	}
	b, _ := json.Marshal(st)
	if err := r.Store.SetRuntimeStatus(ctx, rt.InstanceID, rt.Name, string(b)); err != nil && ctx.Err() == nil {
		r.Log.Warn("unable to write runtime status", "runtime", k.String(), "err", err)
		failed = true
	}
	return st.Phase, failed || obs.LastError != ""
}

// readiness decides a runtime's phase and its Ready condition from what
// the backend observes. Failed is for a runtime that cannot run; a replica
// that crashed and is being restarted is Restarting, not Failed.
func readiness(obs Observed, replicas int, upToDate bool, missing []string, fetchErr string) (phase, status, reason, msg string) {
	switch {
	case replicas == 0 && obs.Replicas == 0:
		return PhaseStopped, "False", "Stopped", "spec.replicas is 0"
	case fetchErr != "":
		return PhaseFailed, "False", "BARFetchFailed", fetchErr
	case obs.CannotRun != "" && obs.AvailableReplicas == 0 && len(missing) == 0:
		return PhaseFailed, "False", "CannotRun", obs.CannotRun
	case upToDate && obs.AvailableReplicas >= replicas && replicas > 0:
		return PhaseReady, "True", "Available", fmt.Sprintf("%d of %d replicas ready", obs.AvailableReplicas, replicas)
	case obs.Restarting && len(missing) == 0:
		return PhaseRestarting, "False", "Restarting",
			fmt.Sprintf("%d of %d replicas ready; a replica crashed and is being restarted: %s", obs.AvailableReplicas, replicas, obs.LastError)
	case obs.LastError != "" && obs.AvailableReplicas == 0 && len(missing) == 0:
		return PhaseFailed, "False", "Failing", obs.LastError
	case len(missing) > 0:
		return PhasePending, "False", "Missing", "waiting for: " + strings.Join(missing, ", ")
	}
	return PhasePending, "False", "Starting", fmt.Sprintf("%d of %d replicas ready", obs.AvailableReplicas, replicas)
}

// ignoredServerconf lists the App Connect serverconf keys of the
// runtime's configurations that have no effect in Sluice, as
// "configuration: Section.key". A file that does not parse is left to the
// runtime, which refuses it with the line to blame.
func ignoredServerconf(configs []ConfigFile) []string {
	var out []string
	for _, c := range configs {
		if c.Type != "serverconf" {
			continue
		}
		res, err := serverconf.Parse(c.Data)
		if err != nil {
			continue
		}
		for _, k := range res.Ignored {
			out = append(out, c.Name+": "+k)
		}
	}
	return out
}

// ignoredPolicies lists the App Connect policies (*.policyxml) of the
// runtime's policy projects that Sluice has no connection for, as
// "configuration: policy (type)". A project that does not open is left
// to the runtime, which refuses it.
func ignoredPolicies(configs []ConfigFile) []string {
	var out []string
	for _, c := range configs {
		if c.Type != "policyproject" {
			continue
		}
		zr, err := zip.NewReader(bytes.NewReader(c.Data), int64(len(c.Data)))
		if err != nil {
			continue
		}
		for _, f := range zr.File {
			if !strings.EqualFold(path.Ext(f.Name), ".policyxml") || f.UncompressedSize64 > 1<<20 {
				continue
			}
			rc, err := f.Open()
			if err != nil {
				continue
			}
			data, err := io.ReadAll(io.LimitReader(rc, 1<<20))
			rc.Close()
			if err != nil {
				continue
			}
			pols, err := acepolicy.Parse(data)
			if err != nil {
				continue
			}
			for _, p := range pols {
				if p.Def == nil {
					out = append(out, fmt.Sprintf("%s: %s (%s)", c.Name, p.Name, p.Kind))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

func hasCondition(cs []Condition, typ string) bool {
	for _, c := range cs {
		if c.Type == typ {
			return true
		}
	}
	return false
}

// barAuthCondition says whether the runtime's barauth configuration
// applies to its external barURLs: one without appliesTo (made before
// bindings existed, or without one) sends its credentials nowhere, and
// the runtime says so.
func barAuthCondition(rt Runtime, ba *configuration.BarAuth) (typ, status, reason, msg string, ok bool) {
	if ba == nil {
		return "", "", "", "", false
	}
	typ = "BarAuthApplies"
	if !ba.Bound() {
		return typ, "False", "NoBinding", fmt.Sprintf("barauth configuration %s names no hosts or URL prefixes (appliesTo): its credentials are sent nowhere until it does", ba.Name), true
	}
	for _, raw := range rt.Spec.BarURL {
		if ref, err := ParseBARURL(raw); err == nil && ref.Name == "" && !ba.AppliesToURL(raw) {
			return typ, "False", "NotForURL", fmt.Sprintf("barauth configuration %s does not apply to %s (appliesTo): it is fetched without credentials", ba.Name, redactURL(raw)), true
		}
	}
	return typ, "True", "Applies", fmt.Sprintf("barauth configuration %s applies to every external barURL", ba.Name), true
}

// setCondition sets one condition, keeping its lastTransitionTime when its
// status did not change.
func setCondition(cs []Condition, typ, status, reason, msg string, now time.Time) []Condition {
	ts := now.Truncate(time.Second).Format("2006-01-02T15:04:05Z")
	for i, c := range cs {
		if c.Type == typ {
			if c.Status != status {
				c.LastTransitionTime = ts
			}
			c.Status, c.Reason, c.Message = status, reason, msg
			cs[i] = c
			return cs
		}
	}
	return append(cs, Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: ts})
}

func endpoints(base string, infos []*bar.Info) []Endpoint {
	out := []Endpoint{}
	if base == "" {
		return out
	}
	for _, info := range infos {
		for _, e := range info.Endpoints {
			out = append(out, Endpoint{Name: e.Flow, Type: "http", Method: e.Method, URI: strings.TrimRight(base, "/") + e.Path})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URI+out[i].Method < out[j].URI+out[j].Method })
	return out
}

// gatherConfigs opens the runtime's configurations; the barauth one (if
// any) is returned decoded for fetching external BARs.
func (r *Reconciler) gatherConfigs(ctx context.Context, rt Runtime) ([]ConfigFile, *configuration.BarAuth, []string) {
	var out []ConfigFile
	var missing []string
	var ba *configuration.BarAuth
	for _, name := range rt.Spec.Configurations {
		c, data, err := r.Configs.Data(ctx, rt.InstanceID, name)
		if err != nil {
			missing = append(missing, "configuration "+name)
			continue
		}
		if c.Type == "barauth" && ba == nil {
			if b, err := configuration.ParseBarAuth(data); err == nil {
				b.Name = c.Name
				ba = &b
			}
		}
		out = append(out, ConfigFile{Type: c.Type, Name: c.Name, Data: data})
	}
	f, _ := r.egressPolicy(ctx, rt.InstanceID)
	out = append(out, egressConfig(f))
	return out, ba, missing
}

// gatherBARs reads the runtime's BARs: the instance's own from the store
// (cached by content hash), external ones fetched once per generation.
func (r *Reconciler) gatherBARs(ctx context.Context, rt Runtime, ba *configuration.BarAuth) ([]BAR, []*bar.Info, []string, string) {
	var bars []BAR
	var infos []*bar.Info
	var missing []string
	for i, raw := range rt.Spec.BarURL {
		ref, err := ParseBARURL(raw)
		if err != nil {
			return nil, nil, nil, err.Error()
		}
		var c cachedBAR
		label := ref.Name
		if ref.Name != "" {
			f, err := r.Store.GetBARFile(ctx, rt.InstanceID, ref.Name)
			if err != nil {
				missing = append(missing, "BAR file "+ref.Name)
				continue
			}
			c = r.internalBAR(ctx, f)
		} else {
			label = fmt.Sprintf("external-%d", i)
			c = r.externalBAR(ctx, rt, raw, ba)
		}
		if c.err != nil {
			return nil, nil, nil, c.err.Error()
		}
		bars = append(bars, BAR{Name: fmt.Sprintf("%02d-%s.bar", i, label), SHA256: c.sum, Data: c.data})
		infos = append(infos, c.info)
	}
	return bars, infos, missing, ""
}

func (r *Reconciler) internalBAR(ctx context.Context, f store.BARFile) cachedBAR {
	r.mu.Lock()
	c, ok := r.blobs[f.SHA256]
	r.mu.Unlock()
	if ok {
		c.used = true
		r.mu.Lock()
		r.blobs[f.SHA256] = c
		r.mu.Unlock()
		return c
	}
	rc, err := r.Store.OpenBlob(ctx, f.SHA256)
	if err != nil {
		return cachedBAR{err: fmt.Errorf("BAR file %s: %v", f.Name, err)}
	}
	data, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return cachedBAR{err: fmt.Errorf("BAR file %s: %v", f.Name, err)}
	}
	var info bar.Info
	if err := json.Unmarshal([]byte(f.Info), &info); err != nil {
		return cachedBAR{err: fmt.Errorf("BAR file %s: %v", f.Name, err)}
	}
	c = cachedBAR{data: data, sum: hashHex(data), info: &info, used: true}
	r.mu.Lock()
	r.blobs[f.SHA256] = c
	r.mu.Unlock()
	return c
}

// externalBAR fetches an https BAR with the runtime's barauth credentials,
// bounded in size and time, and validates it like an upload.
func (r *Reconciler) externalBAR(ctx context.Context, rt Runtime, raw string, ba *configuration.BarAuth) cachedBAR {
	key := fmt.Sprintf("%s/%d/%s", rt.UID, rt.Generation, raw)
	r.mu.Lock()
	c, ok := r.external[key]
	r.mu.Unlock()
	if !ok || (c.err != nil && r.now().Sub(c.at) >= fetchRetry) {
		c = r.fetch(ctx, rt.InstanceID, raw, ba)
		c.at = r.now()
	}
	c.used = true
	r.mu.Lock()
	r.external[key] = c
	r.mu.Unlock()
	return c
}

// redactURL drops the query and any user info, which may carry tokens.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable url)"
	}
	u.RawQuery, u.User, u.Fragment = "", nil, ""
	return u.String()
}

func (r *Reconciler) fetch(ctx context.Context, instanceID, raw string, ba *configuration.BarAuth) cachedBAR {
	where := redactURL(raw)
	fail := func(format string, args ...any) cachedBAR {
		return cachedBAR{err: fmt.Errorf("fetching %s: %s", where, fmt.Sprintf(format, args...))}
	}
	timeout := r.FetchTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	limit := r.MaxBARSize
	if limit <= 0 {
		limit = 100 << 20
	}
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ba != nil && ba.Credentials.CACert != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		pool.AppendCertsFromPEM([]byte(ba.Credentials.CACert))
		tlsCfg.RootCAs = pool
	}
	if ba != nil && ba.Credentials.InsecureSSL == "true" {
		tlsCfg.InsecureSkipVerify = true // the barauth configuration asked for it explicitly
	}
	// The instance's egress policy decides where the fetch may connect,
	// checked on the resolved address: a barURL naming the control plane,
	// a runtime or a private service is refused unless allowed.
	_, policy := r.egressPolicy(ctx, instanceID)
	dial := policy.Dialer(&net.Dialer{Timeout: 30 * time.Second})
	client := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment, DialContext: dial},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return errors.New("redirect away from https refused")
			}
			if !ba.AppliesToURL(req.URL.String()) {
				// net/http keeps Authorization on a redirect within the
				// host; outside the binding it must go.
				req.Header.Del("Authorization")
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		}}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return fail("%v", err)
	}
	// The credentials go only where their configuration says they apply
	// (its trust settings above apply to every fetch of the runtime);
	// anywhere else the fetch goes without them.
	if ba.AppliesToURL(raw) {
		switch ba.AuthType {
		case "BASIC_AUTH":
			req.SetBasicAuth(ba.Credentials.Username, ba.Credentials.Password)
		case "BEARER_TOKEN":
			req.Header.Set("Authorization", "Bearer "+ba.Credentials.Token)
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		// The error text of net/http names the URL; say it our way.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fail("%v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fail("the server answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return fail("%v", err)
	}
	if int64(len(data)) > limit {
		return fail("the BAR file is larger than %d bytes", limit)
	}
	info, err := bar.Inspect(ctx, bytes.NewReader(data), int64(len(data)), nil)
	if err != nil {
		return fail("not a valid BAR file: %v", strings.TrimPrefix(err.Error(), "bar: "))
	}
	return cachedBAR{data: data, sum: hashHex(data), info: info}
}

func hashHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// sweepCaches forgets BARs no runtime used in the last pass.
func (r *Reconciler) sweepCaches() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range []map[string]cachedBAR{r.blobs, r.external} {
		for k, c := range m {
			if !c.used {
				delete(m, k)
				continue
			}
			c.used = false
			m[k] = c
		}
	}
}

// keepTracing switches on, at a runtime that serves, the traces its trace
// objects ask for: a restarted or rolled-over runtime starts untraced.
func (r *Reconciler) keepTracing(ctx context.Context, rt Runtime, obs Observed) {
	trs, err := r.Store.ListTraces(ctx, rt.InstanceID, rt.Name, store.Page{})
	if err != nil || len(trs) == 0 {
		return
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, tr := range trs {
		if _, err := ensureTrace(ctx, c, obs, tr.Type); err != nil {
			r.Log.Warn("unable to switch tracing on", "runtime", rt.Name, "trace", tr.Name, "err", err)
		}
	}
}

// BundleURL is where a runtime generation fetches its bundle.
func BundleURL(base, uid string, gen int64) string {
	return fmt.Sprintf("%s/internal/v1/runtimes/%s/generations/%d/bundle", strings.TrimRight(base, "/"), uid, gen)
}

// adminClient asks runtimes' admin listeners what only they know.
var adminClient = &http.Client{Timeout: 3 * time.Second}

// connectionsCondition is ConnectionsReady: False naming the policies
// (and types) whose connection is down on any ready replica, True when
// every one is up; ok is false when the runtime has no message-server
// connection or cannot be asked. Only policy names travel: never a URL
// or a credential.
func connectionsCondition(ctx context.Context, obs Observed) (typ, status, reason, msg string, ok bool) {
	urls := obs.AdminURLs
	if len(urls) == 0 {
		urls = []string{obs.AdminURL}
	}
	down := map[string]bool{}
	seen := 0
	for _, u := range urls {
		o := obs
		o.AdminURL = u
		resp, err := adminCall(ctx, adminClient, o, http.MethodGet, "/connections")
		if err != nil {
			return "", "", "", "", false
		}
		var body struct {
			Connections []struct {
				Policy, Type string
				Up           bool
			}
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body)
		resp.Body.Close()
		if err != nil {
			return "", "", "", "", false
		}
		seen += len(body.Connections)
		for _, c := range body.Connections {
			if !c.Up {
				down[fmt.Sprintf("%s (%s)", c.Policy, c.Type)] = true
			}
		}
	}
	if seen == 0 {
		return "", "", "", "", false
	}
	if len(down) == 0 {
		return "ConnectionsReady", "True", "Connected", "every connection to a message server is up", true
	}
	names := slices.Sorted(maps.Keys(down))
	return "ConnectionsReady", "False", "ConnectionDown", "not connected (reconnecting): " + strings.Join(names, ", "), true
}
