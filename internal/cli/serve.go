package cli

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/internal/auditexport"
	"github.com/sluice-dev/sluice/internal/httplimit"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server"
)

// envOr returns the environment variable's value, or def when it is unset.
func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

// storeFlags are the flags every command that opens the store shares.
type storeFlags struct {
	dataDir string
	store   string
}

func (f *storeFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.dataDir, "data-dir", "./sluice-data",
		"directory for the embedded store, the master key file and runtime files")
	cmd.Flags().StringVar(&f.store, "store", "",
		"store to use: empty for SQLite in the data dir, postgres://user@host:port/db for PostgreSQL, or sqlite:PATH")
	bindEnv(cmd, "data-dir", "SLUICE_DATA_DIR")
	bindEnv(cmd, "store", "SLUICE_STORE")
}

// envAnnotation is the flag annotation naming a flag's environment variable.
const envAnnotation = "sluice_env"

// bindEnv gives a flag an environment variable: applyEnv reads it, and the
// flag's help says its name.
func bindEnv(cmd *cobra.Command, flag, env string) {
	f := cmd.Flags().Lookup(flag)
	_ = cmd.Flags().SetAnnotation(flag, envAnnotation, []string{env})
	f.Usage += " (env " + env + ")"
}

// applyEnv sets every flag that the command line left alone from its
// environment variable, if set. The variable is parsed as the flag would
// be, so a bad value is refused naming the variable.
func applyEnv(cmd *cobra.Command) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		env := f.Annotations[envAnnotation]
		if err != nil || f.Changed || len(env) == 0 {
			return
		}
		if v, ok := os.LookupEnv(env[0]); ok {
			if e := f.Value.Set(v); e != nil {
				err = &usageError{err: fmt.Errorf("%s is not a valid --%s: %v", env[0], f.Name, e), cmd: cmd.CommandPath()}
			}
		}
	})
	return err
}

func newServeCommand() *cobra.Command {
	var (
		sf              storeFlags
		listen          string
		shutdownTimeout time.Duration
		logFormat       string
		logLevel        string
		publicURL       string
		tokenLifetime   time.Duration
		signingAlg      string
		rateClient      string
		rateInstance    string
		rateSource      string
		maxBARSize      int64
		maxValidations  int64
		quotas          server.Quotas
		runtimeBackend  string
		kube            server.KubernetesConfig
		gravitee        graviteeFlags
		graviteeInst    string
		timeouts        httplimit.Timeouts
		metricsListen   string
		bundleListen    string
		sampleInterval  time.Duration
		tlsCert, tlsKey string
		tlsSelfSigned   bool
		auditRetention  time.Duration
		auditExport     string
		auditExportMax  int64
		auditExportKeep int
		// Lifetimes of other tools' tokens.
		applicationLifetime, ibmIAMLifetime, ibmRefreshLifetime time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane (API, token service, store)",
		Long: `Run the Sluice control plane.

With no flags it serves http://127.0.0.1:8080 and keeps everything in
./sluice-data: a SQLite database and the master key file that seals the
secrets it holds. Point --store at PostgreSQL to share one database between
several control planes; then give every one the same SLUICE_MASTER_KEY.

Environment:
  SLUICE_MASTER_KEY   master key (32 bytes, base64 or hex) sealing the store's
                      secrets; when unset, <data-dir>/master.key is used and
                      created on first start with mode 0600`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, level, err := obs.NewLeveledLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			if quotas.Runtimes < 0 || quotas.Replicas < 0 || quotas.BARStorage < 0 || quotas.ConfigArchive < 0 {
				return fmt.Errorf("a --quota-* flag is negative: give 0 (no quota) or more")
			}
			if maxValidations < 1 || maxValidations > 1024 {
				return fmt.Errorf("--max-bar-validations %d is out of range: give 1 to 1024", maxValidations)
			}
			if sampleInterval < 100*time.Millisecond || sampleInterval > 10*time.Minute {
				return fmt.Errorf("--metrics-sample-interval %v is out of range: give 100ms to 10m", sampleInterval)
			}
			if runtimeBackend != "local" && runtimeBackend != "kubernetes" && runtimeBackend != "none" {
				return fmt.Errorf("--runtime-backend %q is not local, kubernetes or none", runtimeBackend)
			}
			if runtimeBackend == "kubernetes" {
				for flag, v := range map[string]string{"--kube-namespace": kube.Namespace, "--kube-image": kube.Image, "--kube-bundle-url": kube.BundleURL} {
					if v == "" {
						return fmt.Errorf("--runtime-backend kubernetes needs %s", flag)
					}
				}
				if u, err := url.Parse(kube.BundleURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					return fmt.Errorf("--kube-bundle-url %q is not an http(s) URL", kube.BundleURL)
				}
				for _, c := range kube.EgressExcept {
					if _, _, err := net.ParseCIDR(c); err != nil {
						return fmt.Errorf("--kube-egress-except %q is not a CIDR (e.g. 10.244.0.0/16)", c)
					}
				}
			}
			if auditRetention < 0 || (auditRetention > 0 && auditRetention < time.Hour) {
				return fmt.Errorf("--audit-retention %v is out of range: give 0 (keep everything) or 1h or more", auditRetention)
			}
			if auditExport != "" {
				if err := auditexport.CheckTarget(auditExport); err != nil {
					return fmt.Errorf("--audit-export: %w", err)
				}
			}
			if auditExportMax < 4096 {
				return fmt.Errorf("--audit-export-max-bytes %d is out of range: give 4096 or more", auditExportMax)
			}
			if auditExportKeep < 0 || auditExportKeep > 1000 {
				return fmt.Errorf("--audit-export-keep %d is out of range: give 0 to 1000", auditExportKeep)
			}
			if tokenLifetime < time.Minute || tokenLifetime > 7*24*time.Hour {
				return fmt.Errorf("--token-lifetime %v is out of range: give 1m to 168h", tokenLifetime)
			}
			for _, l := range []struct {
				flag     string
				v, limit time.Duration
			}{{"application-token-lifetime", applicationLifetime, 7 * 24 * time.Hour}, {"ibm-iam-token-lifetime", ibmIAMLifetime, 7 * 24 * time.Hour},
				{"ibm-iam-refresh-token-lifetime", ibmRefreshLifetime, 365 * 24 * time.Hour}} {
				if l.v < time.Minute || l.v > l.limit {
					return fmt.Errorf("--%s %v is out of range: give 1m to %v", l.flag, l.v, l.limit)
				}
			}
			perClient, err := iam.ParseLimit(rateClient)
			if err != nil {
				return fmt.Errorf("--rate-limit-client: %w", err)
			}
			perInstance, err := iam.ParseLimit(rateInstance)
			if err != nil {
				return fmt.Errorf("--rate-limit-instance: %w", err)
			}
			perSource, err := iam.ParseLimit(rateSource)
			if err != nil {
				return fmt.Errorf("--rate-limit-source: %w", err)
			}
			fed, err := gravitee.serveFederation(graviteeInst)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return server.Run(ctx, server.Config{
				Listen:              listen,
				DataDir:             sf.dataDir,
				Store:               sf.store,
				MasterKey:           secret.New(os.Getenv("SLUICE_MASTER_KEY")),
				ShutdownTimeout:     shutdownTimeout,
				Log:                 log,
				Stdout:              cmd.OutOrStdout(),
				ShowSecrets:         isTerminal(cmd.OutOrStdout()) && logFormat != "json",
				PublicURL:           publicURL,
				TokenLifetime:       tokenLifetime,
				SigningAlg:          signingAlg,
				RateLimitClient:     perClient,
				RateLimitInstance:   perInstance,
				RateLimitSource:     perSource,
				MaxBARSize:          maxBARSize,
				MaxBARValidations:   int(maxValidations),
				Quotas:              quotas,
				RuntimeBackend:      runtimeBackend,
				Kubernetes:          kube,
				Federation:          fed,
				HTTPTimeouts:        timeouts,
				MetricsListen:       metricsListen,
				BundleListen:        bundleListen,
				SampleInterval:      sampleInterval,
				LogLevel:            level,
				TLSCertFile:         tlsCert,
				TLSKeyFile:          tlsKey,
				TLSSelfSigned:       tlsSelfSigned,
				AuditRetention:      auditRetention,
				AuditExport:         auditExport,
				AuditExportMaxBytes: auditExportMax,
				AuditExportKeep:     auditExportKeep,

				ApplicationTokenLifetime: applicationLifetime,
				APIKeyTokenLifetime:      ibmIAMLifetime,
				RefreshTokenLifetime:     ibmRefreshLifetime,
			})
		},
	}
	sf.register(cmd)
	f := cmd.Flags()
	f.StringVar(&listen, "listen", "127.0.0.1:8080", "address to serve the API on")
	f.DurationVar(&shutdownTimeout, "shutdown-timeout", 15*time.Second, "how long in-flight requests may run after SIGINT/SIGTERM")
	f.DurationVar(&auditRetention, "audit-retention", iam.DefaultAuditRetention, "how long audit events are kept (0: for ever); older ones are deleted in small batches by one control plane")
	f.StringVar(&auditExport, "audit-export", "", "also write every audit event as a JSON line to stdout or file:PATH, for a SIEM; default: no export")
	f.Int64Var(&auditExportMax, "audit-export-max-bytes", auditexport.DefaultMaxBytes, "rotate the --audit-export file before it grows past this many bytes")
	f.IntVar(&auditExportKeep, "audit-export-keep", auditexport.DefaultKeep, "rotated --audit-export files kept (PATH.1 newest); older ones are deleted")
	f.StringVar(&tlsCert, "tls-cert", "", "serve HTTPS with this PEM certificate (chain); reloaded when the file changes")
	f.StringVar(&tlsKey, "tls-key", "", "the PEM private key of --tls-cert; reloaded when the file changes")
	f.BoolVar(&tlsSelfSigned, "tls-self-signed", false, "serve HTTPS with a self-signed certificate kept in <data-dir>/tls (made on first start; its fingerprint is printed)")
	f.StringVar(&publicURL, "public-url", "", "URL clients reach the API at (token issuer, URLs in answers); default http://<listen>")
	f.DurationVar(&tokenLifetime, "token-lifetime", 12*time.Hour, "lifetime of access tokens (expires_in)")
	f.StringVar(&signingAlg, "token-signing-alg", "EdDSA", "token signing algorithm: EdDSA or RS256")
	f.StringVar(&rateClient, "rate-limit-client", "600/1m", "API calls allowed per client id, as N/DURATION, or off")
	f.StringVar(&rateInstance, "rate-limit-instance", "3000/1m", "API calls allowed per instance, as N/DURATION, or off")
	f.StringVar(&rateSource, "rate-limit-source", "300/1m", "unauthenticated and failed calls allowed per source address, as N/DURATION, or off")
	f.Int64Var(&maxBARSize, "max-bar-size", 100<<20, "largest BAR file upload accepted, in bytes")
	f.Int64Var(&maxValidations, "max-bar-validations", 2, "BAR uploads validated at once; more are refused with 503 and Retry-After")
	// Quotas of every instance, sized for a laptop (0: no quota).
	f.IntVar(&quotas.Runtimes, "quota-runtimes", 20, "integration runtimes one instance may have (0: no quota)")
	f.IntVar(&quotas.Replicas, "quota-replicas", 40, "replicas the runtimes of one instance may ask for together (0: no quota)")
	f.Int64Var(&quotas.BARStorage, "quota-bar-storage", 1<<30, "bytes of BAR files one instance may store (0: no quota)")
	f.Int64Var(&quotas.ConfigArchive, "quota-config-archive", 16<<20, "bytes one zip configuration (generic, policyproject, loopbackdatasource) may inflate to")
	f.StringVar(&runtimeBackend, "runtime-backend", "local", "where integration runtimes run: local (child processes), kubernetes (Deployments) or none")
	f.StringVar(&kube.Kubeconfig, "kubeconfig", "", "with --runtime-backend kubernetes: kubeconfig file of the cluster (default: the in-cluster service account)")
	f.StringVar(&kube.Namespace, "kube-namespace", "", "with --runtime-backend kubernetes: namespace of the runtimes' Deployments, Services, Secrets and NetworkPolicies")
	f.StringVar(&kube.Image, "kube-image", "", "with --runtime-backend kubernetes: the sluice image runtime pods run")
	f.StringVar(&kube.BundleURL, "kube-bundle-url", "", "with --runtime-backend kubernetes: the control plane's URL as runtime pods reach it (its Service)")
	f.StringVar(&kube.Install, "kube-install", "sluice", "with --runtime-backend kubernetes: the sluice.dev/install label value, so installations sharing a namespace stay apart")
	f.StringSliceVar(&kube.EgressExcept, "kube-egress-except", nil, "with --runtime-backend kubernetes: the cluster's pod and service CIDRs, left out of the runtimes' egress to the world")
	f.StringVar(&kube.IngressDomain, "kube-ingress-domain", "", "with --runtime-backend kubernetes: give each runtime an Ingress for <object name>.<domain> (a wildcard DNS name pointing at your ingress controller); its endpoints report that host")
	f.StringVar(&kube.IngressClass, "kube-ingress-class", "", "with --kube-ingress-domain: the Ingresses' ingressClassName (default: the cluster's default class)")
	f.StringVar(&kube.IngressTLSSecret, "kube-ingress-tls-secret", "", "with --kube-ingress-domain: a Secret in --kube-namespace with a certificate for *.<domain>; the endpoints are then https")
	f.DurationVar(&timeouts.ReadHeader, "http-read-header-timeout", httplimit.ControlPlane.ReadHeader, "how long a client may take to send a request's headers")
	f.DurationVar(&timeouts.Read, "http-read-timeout", httplimit.ControlPlane.Read, "how long a client may take to send a whole request, body included (BAR uploads)")
	f.DurationVar(&timeouts.Write, "http-write-timeout", httplimit.ControlPlane.Write, "how long an answer may take to write (streams extend their own deadline)")
	f.DurationVar(&timeouts.Idle, "http-idle-timeout", httplimit.ControlPlane.Idle, "how long an idle keep-alive connection stays open")
	f.StringVar(&metricsListen, "metrics-listen", "", "address to serve Prometheus /metrics on, apart from the API (docs/metrics.md); default: no metrics")
	f.StringVar(&bundleListen, "bundle-listen", "", "address serving only what runtime replicas fetch (their bundle and gateway state), so a network policy can let runtimes reach that port alone (docs/kubernetes.md); default: those routes on --listen only")
	f.DurationVar(&sampleInterval, "metrics-sample-interval", 10*time.Second, "how often the dashboard's charts sample each runtime's metrics (kept an hour, in memory)")
	f.StringVar(&logFormat, "log-format", "auto", "log format: auto (text on a terminal, JSON otherwise), text or json")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	// The Gravitee federation agent runs inside the control plane when a
	// controller is given (docs/federation.md).
	gravitee.register(cmd, "gravitee-")
	f.StringVar(&graviteeInst, "gravitee-instance", "", "instance id whose runtimes are federated; default the only one")
	bindEnv(cmd, "gravitee-instance", "SLUICE_GRAVITEE_INSTANCE")
	f.DurationVar(&applicationLifetime, "application-token-lifetime", 15*time.Minute, "lifetime of tokens from Airbyte's /api/v1/applications/token and /api/public/v1/applications/token")
	f.DurationVar(&ibmIAMLifetime, "ibm-iam-token-lifetime", time.Hour, "lifetime of access tokens from IBM Cloud IAM's /identity/token")
	f.DurationVar(&ibmRefreshLifetime, "ibm-iam-refresh-token-lifetime", 720*time.Hour, "lifetime of refresh tokens from /identity/token (each is used once)")
	for flag, env := range map[string]string{
		"listen": "SLUICE_LISTEN", "shutdown-timeout": "SLUICE_SHUTDOWN_TIMEOUT", "public-url": "SLUICE_PUBLIC_URL",
		"token-lifetime": "SLUICE_TOKEN_LIFETIME", "token-signing-alg": "SLUICE_TOKEN_SIGNING_ALG",
		"rate-limit-client": "SLUICE_RATE_LIMIT_CLIENT", "rate-limit-instance": "SLUICE_RATE_LIMIT_INSTANCE",
		"rate-limit-source": "SLUICE_RATE_LIMIT_SOURCE",
		"max-bar-size":      "SLUICE_MAX_BAR_SIZE", "max-bar-validations": "SLUICE_MAX_BAR_VALIDATIONS",
		"quota-runtimes": "SLUICE_QUOTA_RUNTIMES", "quota-replicas": "SLUICE_QUOTA_REPLICAS", "quota-bar-storage": "SLUICE_QUOTA_BAR_STORAGE",
		"quota-config-archive": "SLUICE_QUOTA_CONFIG_ARCHIVE", "runtime-backend": "SLUICE_RUNTIME_BACKEND",
		"kubeconfig": "SLUICE_KUBECONFIG", "kube-namespace": "SLUICE_KUBE_NAMESPACE", "kube-image": "SLUICE_KUBE_IMAGE",
		"kube-bundle-url": "SLUICE_KUBE_BUNDLE_URL", "kube-install": "SLUICE_KUBE_INSTALL", "kube-egress-except": "SLUICE_KUBE_EGRESS_EXCEPT",
		"kube-ingress-domain": "SLUICE_KUBE_INGRESS_DOMAIN", "kube-ingress-class": "SLUICE_KUBE_INGRESS_CLASS", "kube-ingress-tls-secret": "SLUICE_KUBE_INGRESS_TLS_SECRET",
		"log-format": "SLUICE_LOG_FORMAT", "metrics-listen": "SLUICE_METRICS_LISTEN", "bundle-listen": "SLUICE_BUNDLE_LISTEN", "metrics-sample-interval": "SLUICE_METRICS_SAMPLE_INTERVAL", "log-level": "SLUICE_LOG_LEVEL",
		"http-read-header-timeout": "SLUICE_HTTP_READ_HEADER_TIMEOUT", "http-read-timeout": "SLUICE_HTTP_READ_TIMEOUT",
		"http-write-timeout": "SLUICE_HTTP_WRITE_TIMEOUT", "http-idle-timeout": "SLUICE_HTTP_IDLE_TIMEOUT",
		"application-token-lifetime": "SLUICE_APPLICATION_TOKEN_LIFETIME", "ibm-iam-token-lifetime": "SLUICE_IBM_IAM_TOKEN_LIFETIME",
		"ibm-iam-refresh-token-lifetime": "SLUICE_IBM_IAM_REFRESH_TOKEN_LIFETIME",
		"audit-retention":                "SLUICE_AUDIT_RETENTION", "audit-export": "SLUICE_AUDIT_EXPORT",
		"audit-export-max-bytes": "SLUICE_AUDIT_EXPORT_MAX_BYTES", "audit-export-keep": "SLUICE_AUDIT_EXPORT_KEEP", "tls-cert": "SLUICE_TLS_CERT", "tls-key": "SLUICE_TLS_KEY", "tls-self-signed": "SLUICE_TLS_SELF_SIGNED",
	} {
		bindEnv(cmd, flag, env)
	}
	return cmd
}

func newMasterKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "master-key",
		Short: "Generate or rotate the master key that seals secrets at rest",
	}
	generate := &cobra.Command{
		Use:   "generate",
		Short: "Print a new random master key (for SLUICE_MASTER_KEY)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			mk, err := secret.NewMasterKey()
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), mk.Encode().Reveal())
			return nil
		},
	}
	var sf storeFlags
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Re-wrap the store's data keys under a new master key",
		Long: `Re-wrap the store's data keys under a new master key. Sealed data is not
rewritten, so rotation takes a moment whatever the size of the store.

With the key file (no SLUICE_MASTER_KEY), a new key is generated and replaces
<data-dir>/master.key. With SLUICE_MASTER_KEY, the new key is read from
SLUICE_NEW_MASTER_KEY (or generated and printed); afterwards start every
control plane with SLUICE_MASTER_KEY set to the new key.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := obs.NewLogger(os.Stderr, "auto", "info")
			if err != nil {
				return err
			}
			envKey := secret.New(os.Getenv("SLUICE_MASTER_KEY"))
			next, err := server.RotateMasterKey(context.Background(), sf.store, sf.dataDir, envKey,
				secret.New(os.Getenv("SLUICE_NEW_MASTER_KEY")), log)
			if err != nil {
				return err
			}
			if !envKey.IsZero() && os.Getenv("SLUICE_NEW_MASTER_KEY") == "" {
				fmt.Fprintf(cmd.OutOrStdout(), "new master key (set SLUICE_MASTER_KEY to it everywhere): %s\n", next.Encode().Reveal())
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "master key rotated; new fingerprint %s\n", next.Fingerprint())
			return nil
		},
	}
	sf.register(rotate)
	cmd.AddCommand(generate, rotate)
	return cmd
}

func newSigningKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "signing-key",
		Short: "Manage the keys access tokens are signed with",
	}
	var (
		sf       storeFlags
		alg      string
		lifetime time.Duration
	)
	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Create a new token signing key; the old one stays valid until its tokens expire",
		Long: `Create a new token signing key. Control planes sharing a PostgreSQL store sign with
it and list it in their JWKS within milliseconds (the store's change feed), a
control plane on SQLite within a minute; tokens signed with the previous key keep working until they
expire, and the previous key stays in the JWKS (/oauth/jwks) until then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := obs.NewLogger(os.Stderr, "auto", "info")
			if err != nil {
				return err
			}
			kid, err := server.RotateSigningKey(cmd.Context(), sf.store, sf.dataDir, alg, secret.New(os.Getenv("SLUICE_MASTER_KEY")), lifetime, log)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "new signing key %s (%s)\n", kid, alg)
			return nil
		},
	}
	sf.register(rotate)
	rotate.Flags().StringVar(&alg, "alg", envOr("SLUICE_TOKEN_SIGNING_ALG", "EdDSA"), "algorithm of the new key: EdDSA or RS256")
	rotate.Flags().DurationVar(&lifetime, "token-lifetime", 12*time.Hour, "token lifetime the control planes use")
	cmd.AddCommand(rotate)
	return cmd
}

// isTerminal reports whether w is a terminal, where a person reads what is
// printed and nothing keeps it.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
