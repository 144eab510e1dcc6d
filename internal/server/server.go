// Package server owns the control-plane process: it prepares the data
// directory, opens the store, unlocks the secrets at rest with the master
// key, serves the API and shuts down gracefully. It wires the domain
// packages together and holds no business logic of its own.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/api"
	"github.com/sluice-dev/sluice/internal/apic"
	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/auditexport"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/httplimit"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/metrics"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/orchestrator/kubernetes"
	"github.com/sluice-dev/sluice/internal/orchestrator/local"
	"github.com/sluice-dev/sluice/internal/procmem"
	"github.com/sluice-dev/sluice/internal/sampling"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/tlsconf"
	"github.com/sluice-dev/sluice/internal/tracing"
	"github.com/sluice-dev/sluice/internal/web"
)

// Config is what `sluice serve` needs.
type Config struct {
	Listen            string             // host:port to serve on
	DataDir           string             // where the embedded store, key file and runtime files live
	Store             string             // "" for SQLite in DataDir, or a postgres:// URL
	MasterKey         secret.Value       // from SLUICE_MASTER_KEY; empty: the key file in DataDir
	ShutdownTimeout   time.Duration      // how long in-flight requests may take to finish
	PublicURL         string             // the URL clients reach this control plane at; "" for http://<listen>
	TokenLifetime     time.Duration      // lifetime of access tokens
	SigningAlg        string             // iam.AlgEdDSA or iam.AlgRS256
	RateLimitClient   iam.Limit          // per client id; zero: none
	RateLimitInstance iam.Limit          // per instance; zero: none
	RateLimitSource   iam.Limit          // unauthenticated and failed calls per source address; zero: none
	MaxBARSize        int64              // largest BAR upload; 0: the default
	MaxBARValidations int                // BAR uploads validated at once; 0: the default
	Quotas            Quotas             // of every instance
	RuntimeBackend    string             // "local" (default), "kubernetes" or "none"
	Federation        *FederationConfig  // nil: no Gravitee federation agent
	HTTPTimeouts      httplimit.Timeouts // zero fields: httplimit.ControlPlane's
	// Kubernetes configures the "kubernetes" runtime backend.
	Kubernetes KubernetesConfig
	// MetricsListen is the host:port /metrics (Prometheus) is served on,
	// apart from the API so it can be firewalled apart; "": no metrics.
	MetricsListen string
	// BundleListen is a host:port serving only what runtime replicas
	// fetch (api.BundleHandler: their bundle and gateway state), with the
	// API's TLS, so a cluster can let runtimes reach it and nothing else
	// of the control plane; "": those routes are on Listen only.
	BundleListen string
	// SampleInterval is how often the runtimes' metrics are sampled for
	// the dashboard's charts; 0: sampling.DefaultInterval.
	SampleInterval time.Duration
	// LogLevel is Log's level; on SIGHUP the control plane sets it from
	// <data dir>/log-level, or back to its start value when that file is
	// gone. nil: the level stays.
	LogLevel *slog.LevelVar
	// TLS: a certificate and key file (reloaded when they change), or a
	// self-signed certificate kept in DataDir/tls; neither: plain HTTP.
	TLSCertFile, TLSKeyFile string
	TLSSelfSigned           bool
	// AuditRetention is how long audit events are kept; 0 keeps them all.
	AuditRetention time.Duration
	// AuditExport copies every audit event as a JSON line to "stdout" or
	// "file:PATH" (rotated at AuditExportMaxBytes, AuditExportKeep old
	// files kept); "" exports nothing.
	AuditExport         string
	AuditExportMaxBytes int64
	AuditExportKeep     int
	// Lifetimes of other tools' tokens (Airbyte applications, IBM Cloud
	// IAM access and refresh tokens); zero: TokenLifetime (30 days for
	// refresh tokens).
	ApplicationTokenLifetime, APIKeyTokenLifetime, RefreshTokenLifetime time.Duration
	Now                                                                 clock.Func
	Log                                                                 *slog.Logger
	Stdout                                                              io.Writer // where the one start-up line goes
	// ShowSecrets prints the first start's secrets on Stdout; set it only
	// when Stdout is a terminal (and logs are not JSON). Otherwise the
	// log names the file that holds them.
	ShowSecrets bool
}

// Quotas bound what one instance may ask of the host (0: no quota, but
// ConfigArchive 0 is its default).
type Quotas struct {
	Runtimes      int   // integration runtimes
	Replicas      int   // replicas of all its runtimes together
	BARStorage    int64 // bytes of stored BAR files
	ConfigArchive int64 // bytes one zip configuration inflates to
}

// TokenAudience is the "aud" of every access token this control plane issues.
const TokenAudience = "sluice"

// Run serves until ctx is done, then shuts down gracefully. Every error it
// returns is a one-line message that says what to do.
func Run(ctx context.Context, cfg Config) (err error) {
	dataDir, created, err := prepareDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	defer func() {
		// A start that fails leaves nothing behind: a data dir this run
		// made goes again.
		if err != nil && created {
			_ = os.RemoveAll(dataDir)
		}
	}()
	// Listen before touching the store, so a busy port fails before
	// anything is written.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %v; choose another address with --listen", cfg.Listen, errors.Unwrap(err))
	}
	defer ln.Close()
	var met *metrics.Metrics
	var metricsLn net.Listener
	if cfg.MetricsListen != "" {
		if metricsLn, err = net.Listen("tcp", cfg.MetricsListen); err != nil {
			return fmt.Errorf("cannot listen on %s: %v; choose another address with --metrics-listen", cfg.MetricsListen, errors.Unwrap(err))
		}
		defer metricsLn.Close()
		met = metrics.New()
	}
	var bundleLn net.Listener
	if cfg.BundleListen != "" {
		if bundleLn, err = net.Listen("tcp", cfg.BundleListen); err != nil {
			return fmt.Errorf("cannot listen on %s: %v; choose another address with --bundle-listen", cfg.BundleListen, errors.Unwrap(err))
		}
		defer bundleLn.Close()
	}

	tlsFiles, err := serveTLS(cfg, dataDir)
	if err != nil {
		return err
	}
	scheme := "http://"
	if tlsFiles != nil {
		scheme = "https://"
	}

	// Traces (OpenTelemetry), when OTEL_EXPORTER_OTLP_ENDPOINT asks for
	// them; spans left are flushed at the end, briefly.
	traces, err := tracing.Start(ctx, "sluice-control-plane", cfg.Log.With("component", "tracing"))
	if err != nil {
		return fmt.Errorf("unable to set up tracing from the OTEL_* variables: %w", err)
	}
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = traces.Shutdown(fctx)
	}()
	if met != nil && traces != nil {
		met.CountDroppedSpans(traces.Dropped)
	}

	st, err := store.Open(ctx, cfg.Store, dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	if met != nil {
		store.ObserveQueries(st, met.StoreQuery)
	}
	keyring, err := unlockSecrets(ctx, st, dataDir, cfg.MasterKey, cfg.Log)
	if err != nil {
		return err
	}
	listenURL := scheme + ln.Addr().String()
	url := listenURL
	if cfg.PublicURL != "" {
		url = strings.TrimRight(cfg.PublicURL, "/")
	}
	auditor := iam.NewAuditor(st)
	auditor.Log = cfg.Log
	if cfg.AuditExport != "" {
		exp, err := auditexport.New(auditexport.Options{Target: cfg.AuditExport, MaxBytes: cfg.AuditExportMaxBytes,
			Keep: cfg.AuditExportKeep, Stdout: cfg.Stdout, Log: cfg.Log.With("component", "audit-export")})
		if err != nil {
			return err
		}
		defer func() {
			closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = exp.Close(closeCtx)
		}()
		auditor.Export = exp.Export
		if met != nil {
			met.CountAuditExport(exp.Stats)
		}
	}
	defer auditor.Close()
	tokens := &iam.Tokens{Store: st, Keyring: keyring, Alg: cfg.SigningAlg, Issuer: url, Audience: TokenAudience,
		Lifetime: cfg.TokenLifetime, MaxLifetime: max(cfg.ApplicationTokenLifetime, cfg.APIKeyTokenLifetime), Now: cfg.Now}
	if err := tokens.Init(ctx); err != nil {
		return err
	}
	svc := &iam.Service{Store: st, Tokens: tokens, Audit: auditor, Now: cfg.Now, AuditRetention: cfg.AuditRetention, ApplicationTokenLifetime: cfg.ApplicationTokenLifetime,
		APIKeyTokenLifetime: cfg.APIKeyTokenLifetime, RefreshTokenLifetime: cfg.RefreshTokenLifetime}
	if met != nil {
		svc.Metrics = met.IAM()
	}
	creds, err := svc.Bootstrap(ctx)
	if err != nil {
		return fmt.Errorf("unable to create the first instance: %w", err)
	}
	// The control plane allocates little that lives long; collecting
	// garbage half as often costs some heap and saves CPU on the hot
	// paths (token exchange, per-request checks). GOGC still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}
	// Hashing the admin's password (argon2id, 64 MiB) leaves that much heap
	// behind; give it back rather than carry it for the process's life.
	debug.FreeOSMemory()
	if creds != nil {
		creds.Endpoint = url
		if err := announceInitialCredentials(cfg.Stdout, cfg.Log, dataDir, *creds, cfg.ShowSecrets); err != nil {
			return err
		}
	}
	refreshCtx, stopRefresh := context.WithCancel(context.Background())
	defer stopRefresh()
	keyChanges, stopKeyChanges := st.SubscribeChanges()
	defer stopKeyChanges()
	go tokens.Refresh(refreshCtx, keyChanges, time.Minute)
	usageDone := make(chan struct{})
	go func() {
		defer close(usageDone)
		svc.RecordUsage(refreshCtx, time.Second)
	}()
	refusalsDone := make(chan struct{})
	go func() {
		defer close(refusalsDone)
		svc.RecordRefusals(refreshCtx, 5*time.Second)
	}()
	// Last-used times and refusal counts still in memory are written
	// before the store closes.
	defer func() {
		stopRefresh()
		<-usageDone
		<-refusalsDone
	}()

	runtimes := &orchestrator.Service{Store: st, IAM: svc, Now: cfg.Now, MaxRuntimes: cfg.Quotas.Runtimes, MaxReplicas: cfg.Quotas.Replicas}
	configs := &configuration.Service{Store: st, Keyring: keyring, IAM: svc, Now: cfg.Now, InUse: runtimes.InUse,
		MaxArchiveInflated: cfg.Quotas.ConfigArchive}
	published := &apis.Service{Store: st, IAM: svc, Now: cfg.Now}
	// Changes made through other replicas (PostgreSQL's change feed) make
	// the gateway states compile again at once, not at their next poll.
	go func() {
		changes, unsubscribe := st.SubscribeChanges()
		defer unsubscribe()
		for {
			select {
			case <-ctx.Done():
				return
			case <-changes:
				published.Notify()
			}
		}
	}()
	// A BAR file is in use while runtimes run it (force overrides) or a
	// published API serves its flows (force does not).
	barInUse := func(ctx context.Context, instanceID, kind, name string, force bool) error {
		if err := published.BARInUse(ctx, instanceID, name); err != nil {
			return err
		}
		return runtimes.InUse(ctx, instanceID, kind, name, force)
	}
	a := &api.API{Store: st, IAM: svc, Log: cfg.Log, Now: cfg.Now, PublicURL: url, Runtimes: runtimes, Configs: configs,
		BARs: &barstore.Service{Store: st, IAM: svc, TempDir: filepath.Join(dataDir, "tmp"), MaxSize: cfg.MaxBARSize, Now: cfg.Now,
			InUse: barInUse, MaxValidations: cfg.MaxBARValidations, MaxStorage: cfg.Quotas.BARStorage},
		APIs: published,
	}
	a.Apps = &apps.Service{Store: st, IAM: svc, Now: cfg.Now}
	// Subscriptions name apps, and runtimes' gateways get the subscribed
	// apps' credentials; a change to those wakes the gateways' watches.
	a.APIs.Apps, a.APIs.Credentials = apis.AppsDirectory{Apps: a.Apps}, apis.AppsDirectory{Apps: a.Apps}
	a.Apps.Watch(func(apps.Event) { a.APIs.Notify() })
	// Expired leases never authenticate; the sweeper (on the leader) also
	// deletes them. Replicas sharing PostgreSQL cannot wake the leader's
	// timer, so it looks at the next expiry at least every second there.
	sweeper := &apps.Sweeper{Apps: a.Apps, Log: cfg.Log.With("component", "lease-sweeper"), MaxWait: time.Minute, Gather: 20 * time.Millisecond}
	if st.Kind() == "postgres" {
		sweeper.MaxWait = time.Second
	}
	go sweeper.Run(refreshCtx)
	retention := &iam.AuditRetention{Store: st, Keep: cfg.AuditRetention, Now: cfg.Now, Log: cfg.Log.With("component", "audit-retention")}
	go retention.Run(refreshCtx)
	// API Connect's platform API (/api/…, outside /api/v1) over the same services.
	apicAdapter := &apic.Adapter{IAM: svc, Apps: a.Apps, APIs: a.APIs, Store: st, Keyring: keyring, PublicURL: url,
		Log: cfg.Log.With("component", "apic"), Now: cfg.Now}
	var samples *sampling.Sampler // nil without a runtime backend: no charts
	if cfg.RuntimeBackend != "none" {
		// A replica becoming ready (or crashing) wakes the reconciler, so
		// the status and its endpoints are written at once; rec is set
		// before anything can start a supervisor (the reconciler does).
		var rec *orchestrator.Reconciler
		// Local runtimes fetch from the bundle listener when there is one,
		// as pods do, so both backends use the same door.
		runtimeDoor := ln.Addr()
		if bundleLn != nil {
			runtimeDoor = bundleLn.Addr()
		}
		backend, bundleBase, err := runtimeBackend(cfg, dataDir, loopbackURL(scheme, runtimeDoor), bundleLn, func(orchestrator.Key) { rec.Kick() })
		if err != nil {
			return err
		}
		bundles, err := orchestrator.LoadBundleKeys(ctx, st, keyring)
		if err != nil {
			return fmt.Errorf("unable to load the runtime bundle key: %w", err)
		}
		// Local runtimes reach the control plane on its listen (or bundle)
		// address; pods on the URL --kube-bundle-url names.
		rec = &orchestrator.Reconciler{Store: st, Configs: configs, Backend: backend, Log: cfg.Log.With("component", "reconciler"),
			Now: cfg.Now, MaxBARSize: cfg.MaxBARSize, Bundles: bundles, BundleBase: bundleBase}
		if tlsFiles != nil {
			rec.BundleCA = tlsFiles.ChainPEM
		}
		if cfg.RuntimeBackend != "kubernetes" {
			// The local backend tells of every crash, readiness change
			// and restart (onChange above), and SQLite's files tell of
			// every write: a steady reconciler re-reads nothing until one
			// of them moves, or until localResync (which catches what
			// neither announces: a TLS certificate renewed on disk).
			rec.Resync = localResync
		}
		a.Bundles = bundles
		rec.EgressDeny = egressDeny(ln.Addr())
		if bundleLn != nil {
			rec.EgressDeny = egressDeny(ln.Addr(), bundleLn.Addr())
		}
		if met != nil {
			rec.Metrics = met.Reconciler()
		}
		a.Egress = &orchestrator.EgressPolicies{Store: st, IAM: svc, Kick: rec.Kick}
		runtimes.Kick = rec.Kick
		a.Reconciler = rec
		a.Traces = &orchestrator.Traces{Store: st, IAM: svc, Reconciler: rec, Now: cfg.Now}
		// The reconciler stops with the control plane; the runtimes it
		// started keep serving and are adopted at the next start.
		go rec.Run(refreshCtx)
		// The dashboard's charts: the runtimes this process leads are the
		// ones it can reach.
		samples = &sampling.Sampler{Targets: sampleTargets(rec), Now: cfg.Now, Interval: cfg.SampleInterval,
			Log: cfg.Log.With("component", "sampling")}
		go samples.Run(refreshCtx)
	}
	if cfg.Federation != nil {
		agent, err := startFederation(ctx, *cfg.Federation, st, runtimes, a.APIs, a.Apps, cfg.Log.With("component", "federation"))
		if err != nil {
			return err
		}
		// It ends with the control plane, before the store closes; a
		// refused HELLO ends it alone (logged), the API keeps serving.
		agentDone := make(chan struct{})
		go func() {
			defer close(agentDone)
			_ = agent.Run(refreshCtx)
		}()
		defer func() {
			stopRefresh()
			<-agentDone
		}()
	}
	if cfg.RateLimitClient.Requests > 0 || cfg.RateLimitInstance.Requests > 0 || cfg.RateLimitSource.Requests > 0 {
		a.RateLimit = &iam.RateLimiter{PerClient: cfg.RateLimitClient, PerInstance: cfg.RateLimitInstance, PerSource: cfg.RateLimitSource, Now: cfg.Now}
		if met != nil {
			a.RateLimit.OnRefuse = met.RateLimited
		}
		if st.Kind() == "postgres" {
			// Replicas share one count (iam/ratelimit_shared.go); SQLite
			// has one process, which counts in memory.
			a.RateLimit.Shared = st
			a.RateLimit.OnSharedError = sharedLimitWarning(cfg.Log, cfg.Now)
		}
	}
	apicAdapter.RateLimit = a.RateLimit // one count per client and instance, whichever wire it comes in on
	// Requests get a context that ends when shutdown begins, so
	// long-lived streams (watch, log follow) end at once and only real
	// in-flight requests hold up a graceful stop.
	baseCtx, endStreams := context.WithCancel(context.Background())
	defer endStreams()
	// The dashboard answers its own pages and hands everything else to
	// the API; it works through the same services, so it is not an API route.
	dash := &web.Dashboard{Store: st, IAM: svc, Configs: a.Configs, BARs: a.BARs, Runtimes: runtimes, Reconciler: a.Reconciler,
		Traces: a.Traces, Apps: a.Apps, APIs: a.APIs, Samples: samples, BARQuota: cfg.Quotas.BARStorage, PublicURL: url, Log: cfg.Log.With("component", "dashboard"), Now: cfg.Now}
	handler := dash.Mount(apic.Mount(a.Handler(), apicAdapter.Handler()), cfg.Log)
	if traces != nil {
		handler = tracing.Middleware(handler)
	}
	if met != nil {
		handler = met.Middleware(handler)
		msrv := controlPlaneTimeouts(cfg.HTTPTimeouts).Apply(&http.Server{
			Handler:  metricsMux(met),
			ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		})
		go func() { _ = msrv.Serve(metricsLn) }()
		defer msrv.Close()
		cfg.Log.Info("serving metrics", "url", "http://"+metricsLn.Addr().String()+"/metrics")
	}
	// An idle control plane gives back the heap a burst of requests grew
	// and the executable's pages start-up mapped (package procmem).
	var requests procmem.Activity
	if procmem.Enabled() {
		next := handler
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !api.IsGatewayWatch(r) {
				requests.Begin()
				defer requests.End()
			}
			next.ServeHTTP(w, r)
		})
		go procmem.TrimWhenIdle(refreshCtx, time.Second, requests.Count, func(err error) {
			cfg.Log.Warn("unable to give back idle memory", "err", err)
		})
	}
	srv := controlPlaneTimeouts(cfg.HTTPTimeouts).Apply(&http.Server{
		Handler:     handler,
		ErrorLog:    slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return baseCtx },
	})
	srv.RegisterOnShutdown(endStreams)
	public := ""
	if url != listenURL {
		public = "public URL " + url + ", "
	}
	fmt.Fprintf(cfg.Stdout, "sluice: serving %s (%sdata in %s, store %s %s)\n", listenURL, public, dataDir, st.Kind(), st.Location())
	cfg.Log.Info("control plane started", "url", url, "data_dir", dataDir, "store", st.Kind())

	if cfg.LogLevel != nil {
		stopHUP := watchLogLevel(cfg.Log, cfg.LogLevel, filepath.Join(dataDir, LogLevelFile))
		defer stopHUP()
	}
	served := make(chan error, 1)
	if bundleLn != nil {
		bsrv := controlPlaneTimeouts(cfg.HTTPTimeouts).Apply(&http.Server{
			Handler:     a.BundleHandler(),
			ErrorLog:    slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn),
			BaseContext: func(net.Listener) context.Context { return baseCtx },
		})
		if tlsFiles != nil {
			bsrv.TLSConfig = tlsFiles.ServerConfig()
			go func() { _ = bsrv.ServeTLS(bundleLn, "", "") }()
		} else {
			go func() { _ = bsrv.Serve(bundleLn) }()
		}
		// Shut down with the API (below): a gateway watch in flight ends
		// with endStreams, a bundle download gets the same grace.
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			if bsrv.Shutdown(sctx) != nil {
				_ = bsrv.Close()
			}
		}()
		cfg.Log.Info("serving the runtimes' bundle routes alone", "url", scheme+bundleLn.Addr().String())
	}
	if tlsFiles != nil {
		srv.TLSConfig = tlsFiles.ServerConfig()
		cfg.Log.Info("serving TLS", "cert_sha256", tlsFiles.Fingerprint(), "cert_file", tlsFiles.CertFile)
		fmt.Fprintf(cfg.Stdout, "sluice: TLS certificate SHA-256 fingerprint %s (%s)\n", tlsFiles.Fingerprint(), tlsFiles.CertFile)
		go func() { served <- srv.ServeTLS(ln, "", "") }()
	} else {
		go func() { served <- srv.Serve(ln) }()
	}
	select {
	case err := <-served:
		return fmt.Errorf("server stopped: %w", err)
	case <-ctx.Done():
	}
	cfg.Log.Info("shutting down", "grace", cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		cfg.Log.Warn("in-flight requests cut off at the shutdown deadline", "err", err)
		_ = srv.Close()
	}
	cfg.Log.Info("stopped")
	return nil
}

// metricsMux is the metrics listener's whole surface: /metrics, and a
// health answer so a scraper's probe has somewhere to go.
func metricsMux(m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"status":"ok"}`)
	})
	return mux
}

// egressDeny are the addresses flows may not reach even when an
// instance's allow-list opens loopback or the host's network: this
// control plane's listeners (API and bundle) and the local backend's runtime ports (their
// default range, on loopback). Admin listeners have ports of the kernel's
// choosing and a credential of their own.
func egressDeny(listeners ...net.Addr) []string {
	deny := []string{"127.0.0.0/8:7801-8800"}
	for _, listen := range listeners {
		host, port, err := net.SplitHostPort(listen.String())
		if err != nil {
			continue
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			deny = append(deny, "0.0.0.0/0:"+port, "[::/0]:"+port)
			continue
		}
		deny = append(deny, net.JoinHostPort(host, port))
	}
	return deny
}

// controlPlaneTimeouts fills the limits not given with the defaults.
func controlPlaneTimeouts(t httplimit.Timeouts) httplimit.Timeouts {
	d := httplimit.ControlPlane
	if t.ReadHeader > 0 {
		d.ReadHeader = t.ReadHeader
	}
	if t.Read > 0 {
		d.Read = t.Read
	}
	if t.Write > 0 {
		d.Write = t.Write
	}
	if t.Idle > 0 {
		d.Idle = t.Idle
	}
	return d
}

// prepareDataDir makes the data directory (0700) and proves it writable, so
// an unusable directory fails with a clear message before anything starts.
// created reports whether this call made the directory.
func prepareDataDir(dir string) (abs string, created bool, err error) {
	if abs, err = filepath.Abs(dir); err != nil {
		return "", false, fmt.Errorf("data dir %q: %v", dir, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		created = true
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return "", false, fmt.Errorf("cannot create data dir %s: %v; choose another with --data-dir", abs, unwrapPath(err))
	}
	probe, err := os.CreateTemp(abs, ".write-probe-*")
	if err != nil {
		return "", false, fmt.Errorf("data dir %s is not writable: %v; fix its permissions or choose another with --data-dir", abs, unwrapPath(err))
	}
	probe.Close()
	os.Remove(probe.Name())
	return abs, created, nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// loopbackURL is the listen address as a URL processes on this host can
// dial: an unspecified host (0.0.0.0, ::) becomes 127.0.0.1.
// sampleTargets lists, for the charts' sampler, the ready replicas of every
// runtime the reconciler observed; nothing while this process does not
// lead it (another control plane runs, and can reach, the runtimes).
func sampleTargets(rec *orchestrator.Reconciler) func() []sampling.Target {
	return func() []sampling.Target {
		var out []sampling.Target
		for k, o := range rec.ObservedAll() {
			urls := o.AdminURLs
			if len(urls) == 0 && o.AdminURL != "" {
				urls = []string{o.AdminURL}
			}
			out = append(out, sampling.Target{Key: k, URLs: urls, Token: o.AdminToken})
		}
		return out
	}
}

func loopbackURL(scheme string, addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP == nil || tcp.IP.IsUnspecified() {
		port := 0
		if ok {
			port = tcp.Port
		}
		return fmt.Sprintf("%s127.0.0.1:%d", scheme, port)
	}
	return scheme + addr.String()
}

// serveTLS loads the listener's certificate: the files given, or the
// self-signed pair of the data dir (made on first use). nil: plain HTTP.
func serveTLS(cfg Config, dataDir string) (*tlsconf.Files, error) {
	certFile, keyFile := cfg.TLSCertFile, cfg.TLSKeyFile
	switch {
	case cfg.TLSSelfSigned && (certFile != "" || keyFile != ""):
		return nil, errors.New("--tls-self-signed and --tls-cert/--tls-key exclude each other: give one or the other")
	case (certFile == "") != (keyFile == ""):
		return nil, errors.New("--tls-cert and --tls-key go together: give both")
	case cfg.TLSSelfSigned:
		host, _, _ := net.SplitHostPort(cfg.Listen)
		var err error
		// The wall clock, not cfg.Now: browsers, curl and runtimes check
		// the validity against their own clocks.
		certFile, keyFile, err = tlsconf.SelfSigned(filepath.Join(dataDir, "tls"), clock.Wall, host)
		if err != nil {
			return nil, err
		}
	case certFile == "":
		return nil, nil
	}
	f := &tlsconf.Files{CertFile: certFile, KeyFile: keyFile, Log: cfg.Log.With("component", "tls")}
	if err := f.Load(); err != nil {
		return nil, err
	}
	return f, nil
}

// sharedLimitWarning logs, at most once a minute, that the shared rate
// limits could not be reached and each replica counts alone meanwhile.
func sharedLimitWarning(log *slog.Logger, now clock.Func) func(error) {
	var mu sync.Mutex
	var last time.Time
	return func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if t := now.Now(); t.Sub(last) >= time.Minute {
			last = t
			log.Warn("shared rate limits unreachable: this replica counts its own traffic until the store answers", "err", err)
		}
	}
}

// KubernetesConfig is `sluice serve --runtime-backend kubernetes`'s.
type KubernetesConfig struct {
	Kubeconfig string // "": in-cluster configuration
	Namespace  string // of the runtimes' objects
	Image      string // the sluice image runtime pods run
	// BundleURL is the control plane's URL as runtime pods reach it (its
	// Service), e.g. http://sluice-runtimes.sluice.svc:8080.
	BundleURL    string
	Install      string   // the sluice.dev/install label; "": sluice
	EgressExcept []string // the cluster's pod and service CIDRs
	// IngressDomain gives each runtime an Ingress for
	// <object name>.<IngressDomain>, of IngressClass ("": the default),
	// with TLS from IngressTLSSecret ("": none); "": no Ingresses.
	IngressDomain, IngressClass, IngressTLSSecret string
}

// runtimeBackend makes the configured backend and says where its
// runtimes reach the control plane.
//
// The Kubernetes backend's NetworkPolicy lets runtimes reach the control
// plane's pods on one port: the bundle listener's when there is one (a
// container port, as policies name), else the port of --kube-bundle-url.
// localResync is the longest a steady reconciler of local runtimes goes
// without a pass (orchestrator.Reconciler.Resync).
const localResync = time.Minute

func runtimeBackend(cfg Config, dataDir, loopback string, bundleLn net.Listener, onChange func(orchestrator.Key)) (orchestrator.Backend, string, error) {
	if cfg.RuntimeBackend == "kubernetes" {
		k := cfg.Kubernetes
		if k.BundleURL == "" {
			return nil, "", errors.New("--runtime-backend kubernetes needs --kube-bundle-url: the control plane's URL as runtime pods reach it")
		}
		port := kubernetes.BundlePortOf(k.BundleURL)
		if bundleLn != nil {
			port = bundleLn.Addr().(*net.TCPAddr).Port
		}
		b, err := kubernetes.New(kubernetes.Options{Kubeconfig: k.Kubeconfig, Namespace: k.Namespace, Image: k.Image, Install: k.Install,
			EgressExcept: k.EgressExcept, BundlePort: port, IngressDomain: k.IngressDomain, IngressClass: k.IngressClass,
			IngressTLSSecret: k.IngressTLSSecret, Log: cfg.Log, Now: cfg.Now})
		if err != nil {
			return nil, "", fmt.Errorf("unable to start the kubernetes runtime backend: %w", err)
		}
		return b, k.BundleURL, nil
	}
	b, err := local.New(local.Options{Dir: filepath.Join(dataDir, "runtimes"), Log: cfg.Log, Now: cfg.Now, OnChange: onChange})
	if err != nil {
		return nil, "", fmt.Errorf("unable to start the local runtime backend: %w", err)
	}
	return b, loopback, nil
}
