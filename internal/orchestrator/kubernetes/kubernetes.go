// Package kubernetes is the orchestrator backend that runs integration
// runtimes on a Kubernetes cluster through client-go's dynamic client
// (not its typed clientset, whose initialisers every sluice process would
// run; see client.go): per runtime a
// Deployment of `sluice runtime` pods (rolling update that never lowers
// availability, probes on the runtime's /readyz and /healthz, the
// resources of spec.template, non-root with a read-only root file
// system), a Service in front of them and a Secret holding the runtime's
// bundle and admin credentials; per instance a NetworkPolicy that keeps
// its runtimes apart from other instances' and from the control plane
// except its runtime-facing port. Pods fetch their BARs and
// configurations from the control plane (`--bundle-url`) as the local
// backend's processes do; nothing of a configuration is written to the
// cluster.
//
// Every object carries labels naming the installation, instance, runtime
// and generation, and annotations with the exact instance id and runtime
// name, so a restarted control plane finds (adopts) what its predecessor
// made by listing them. Status is read from the Deployment and its Pods.
// A cluster that cannot be reached or refuses (RBAC, quota, admission)
// is reported as an orchestrator.ClusterError saying what it answered,
// and the runtime is retried with exponential backoff on the injected
// clock; nothing here panics or exits on a cluster's answer.
//
// It never puts a credential into a log, an error or an object other than
// its Secret.
package kubernetes

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/rest"
)

var _ orchestrator.Backend = (*Backend)(nil)

// Ports of the runtime container.
const (
	FlowPort  = 7800
	AdminPort = 7600
)

// Labels and annotations on every object the backend makes.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelRole      = "sluice.dev/role"        // "runtime" on runtime pods, "control-plane" on the control plane's
	LabelInstall   = "sluice.dev/install"     // which Sluice installation owns it (Options.Install)
	LabelInstance  = "sluice.dev/instance"    // instance id (hashed when not a valid label value)
	LabelRuntime   = "sluice.dev/runtime"     // runtime name (likewise)
	LabelRuntimeID = "sluice.dev/runtime-id"  // the object name: the pods' selector
	LabelGen       = "sluice.dev/generation"  // generation of the spec a pod runs
	AnnInstance    = "sluice.dev/instance-id" // exact instance id
	AnnRuntime     = "sluice.dev/runtime-name"
	AnnUID         = "sluice.dev/uid"
	// AnnRestarts, on a Deployment, adds up the container restarts of
	// its pods that are gone (replaced by a rollout, evicted, deleted):
	// the pods' own counts start again at 0 in every new pod.
	AnnRestarts   = "sluice.dev/restarts-of-replaced-pods"
	RoleRuntime   = "runtime"
	RoleControl   = "control-plane"
	fieldManager  = "sluice"
	containerName = "runtime"
)

// Options configure a Kubernetes backend.
type Options struct {
	// Config reaches the cluster. Nil: LoadConfig(Kubeconfig) on first
	// use, and again after each failure (so fixing a kubeconfig needs no
	// restart).
	Config     *rest.Config
	Kubeconfig string // path; "": in-cluster configuration
	// Namespace holds every runtime's objects.
	Namespace string
	// Image is the sluice image the runtime pods run (`sluice runtime`).
	Image string
	// ImagePullPolicy: "" leaves the cluster's default.
	ImagePullPolicy string
	// Install names this Sluice installation in the sluice.dev/install
	// label, so two installations sharing a namespace never adopt (or
	// delete) each other's runtimes; "": "sluice".
	Install string
	// ControlPlaneSelector are the labels of the control plane's pods:
	// runtimes may reach them on BundlePort only, and they may reach the
	// runtimes' admin port. nil: {sluice.dev/role: control-plane}.
	ControlPlaneSelector map[string]string
	// ControlPlaneNamespace is where the control plane's pods run; "":
	// Namespace.
	ControlPlaneNamespace string
	// BundlePort is the control plane's port runtimes fetch their bundle
	// on; 0: the port of the reconciler's bundle URL is not known here,
	// so 8443.
	BundlePort int
	// EgressExcept are CIDRs (the cluster's pod and service ranges)
	// excluded from the runtimes' open egress to the rest of the world.
	// Network plugins that apply ipBlock rules to pod traffic need them for
	// the isolation between instances to hold.
	EgressExcept []string
	// IngressDomain, when set, gives every runtime an Ingress (owned by
	// its Deployment, like its Service) for host
	// <object name>.<IngressDomain>, e.g. rt-hello-3f2a9c01de.apps.example.com:
	// one wildcard DNS name and one wildcard certificate cover every
	// runtime. Its endpoints then report that host. "": no Ingress.
	IngressDomain string
	// IngressClass is the Ingresses' spec.ingressClassName; "": the
	// cluster's default class.
	IngressClass string
	// IngressTLSSecret names a Secret in Namespace holding a certificate
	// for *.IngressDomain; set, the Ingresses terminate TLS with it and
	// the endpoints are https. "": http.
	IngressTLSSecret string
	// RunAsUser is the uid runtime pods run as; 0: 65532.
	RunAsUser int64
	Log       *slog.Logger
	// Now is the clock of retry backoff; nil: the wall clock.
	Now clock.Func
}

// Backoff of a runtime whose objects the cluster refused.
const (
	backoffMin = time.Second
	backoffMax = 5 * time.Minute
)

// Backend runs runtimes as Deployments. Create it with New.
type Backend struct {
	opts Options
	log  *slog.Logger
	now  clock.Func

	mu      sync.Mutex
	client  *client
	connErr *orchestrator.ClusterError
	connAt  time.Time // when connErr was met
	connN   int
	retry   map[orchestrator.Key]*retryState
	admin   map[orchestrator.Key]secret.Value
	pods    map[orchestrator.Key]*podRestarts
}

// podRestarts is what this backend last saw of a runtime's pods'
// restarts, to add a pod's count to AnnRestarts when it goes.
type podRestarts struct {
	seen    map[string]int // pod uid → restarts when last seen
	pending int            // counts of gone pods not yet written to AnnRestarts
}

type retryState struct {
	failures int
	at       time.Time // no call to the cluster before this
	err      *orchestrator.ClusterError
}

// New returns a backend. It does not contact the cluster: a cluster that
// cannot be reached shows on the runtimes, not as a failed start.
func New(opts Options) (*Backend, error) {
	if opts.Namespace == "" {
		return nil, errors.New("kubernetes: no namespace for the runtimes (--kube-namespace)")
	}
	if opts.Image == "" {
		return nil, errors.New("kubernetes: no image for the runtime pods (--kube-image)")
	}
	if opts.Install == "" {
		opts.Install = "sluice"
	}
	if errs := labelValue.MatchString(opts.Install); !errs || len(opts.Install) > 63 {
		return nil, fmt.Errorf("kubernetes: installation name %q is not a label value (letters, digits, '-', '_', '.', at most 63)", opts.Install)
	}
	opts.IngressDomain = strings.TrimSuffix(strings.ToLower(opts.IngressDomain), ".")
	if d := opts.IngressDomain; d != "" && (len(d) > 190 || !dnsName.MatchString(d)) {
		return nil, fmt.Errorf("kubernetes: ingress domain %q is not a DNS name (lower-case labels of letters, digits and '-', dot-separated)", d)
	}
	if opts.IngressDomain == "" && (opts.IngressClass != "" || opts.IngressTLSSecret != "") {
		return nil, errors.New("kubernetes: an ingress class or TLS secret needs an ingress domain (--kube-ingress-domain)")
	}
	if opts.ControlPlaneSelector == nil {
		opts.ControlPlaneSelector = map[string]string{LabelRole: RoleControl}
	}
	if opts.ControlPlaneNamespace == "" {
		opts.ControlPlaneNamespace = opts.Namespace
	}
	if opts.BundlePort == 0 {
		opts.BundlePort = 8443
	}
	if opts.RunAsUser == 0 {
		opts.RunAsUser = 65532
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = clock.Wall
	}
	return &Backend{opts: opts, log: opts.Log.With("component", "orchestrator.kubernetes"), now: opts.Now,
		retry: map[orchestrator.Key]*retryState{}, admin: map[orchestrator.Key]secret.Value{}, pods: map[orchestrator.Key]*podRestarts{}}, nil
}

// cluster returns the client, building it from the options when needed.
// A configuration that does not load is a ClusterError, tried again with
// backoff.
func (b *Backend) cluster() (*client, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client != nil {
		return b.client, nil
	}
	if b.connErr != nil && b.now.Now().Before(b.connAt.Add(backoffDelay(b.connN))) {
		return nil, b.connErr
	}
	cfg := b.opts.Config
	var err error
	if cfg == nil {
		cfg, err = LoadConfig(b.opts.Kubeconfig)
	}
	var c *client
	if err == nil {
		cfg = rest.CopyConfig(cfg)
		cfg.UserAgent = "sluice-control-plane"
		c, err = newClient(cfg)
	}
	if err != nil {
		b.connErr = &orchestrator.ClusterError{Reason: "ConfigInvalid", Message: "the cluster configuration does not load: " + err.Error()}
		b.connAt = b.now.Now()
		b.connN++
		return nil, b.connErr
	}
	b.client, b.connErr, b.connN = c, nil, 0
	return c, nil
}

// LoadConfig reads a kubeconfig file, or the in-cluster configuration
// (the pod's service account) when path is "".
func LoadConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("not running in a cluster and no --kubeconfig given: %w", err)
		}
		return cfg, nil
	}
	return configFromFile(path)
}

func backoffDelay(failures int) time.Duration {
	d := backoffMin
	for i := 1; i < failures && d < backoffMax; i++ {
		d *= 2
	}
	return min(d, backoffMax)
}

// blocked returns the remembered refusal of k while its backoff runs.
func (b *Backend) blocked(k orchestrator.Key) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.retry[k]; r != nil && b.now.Now().Before(r.at) {
		return r.err
	}
	return nil
}

// failed records a cluster error of k and schedules the next try; other
// errors (none of the cluster's doing) pass unchanged.
func (b *Backend) failed(k orchestrator.Key, err error) error {
	var ce *orchestrator.ClusterError
	if !errors.As(err, &ce) {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.retry[k]
	if r == nil {
		r = &retryState{}
		b.retry[k] = r
	}
	r.failures++
	delay := backoffDelay(r.failures)
	r.at = b.now.Now().Add(delay)
	r.err = &orchestrator.ClusterError{Reason: ce.Reason, Message: fmt.Sprintf("%s (retrying in %s)", ce.Message, delay)}
	b.log.Warn("the cluster refused a runtime's objects", "runtime", k.String(), "reason", ce.Reason, "err", ce.Message, "retryIn", delay.String())
	return r.err
}

func (b *Backend) succeeded(k orchestrator.Key) {
	b.mu.Lock()
	delete(b.retry, k)
	b.mu.Unlock()
}

// labelValue is what a label value may look like (Kubernetes' rule).
var labelValue = regexp.MustCompile(`^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$`)

// labelFor is s when it is a valid label value, else a hash of it: the
// exact value is in an annotation either way.
func labelFor(s string) string {
	if len(s) <= 63 && labelValue.MatchString(s) && s != "" {
		return s
	}
	h := sha256.Sum256([]byte(s))
	return "h-" + hex.EncodeToString(h[:12])
}

var unsafeName = regexp.MustCompile(`[^a-z0-9-]+`)

// dnsName is a DNS name of RFC 1123 labels, as Ingress hosts must be.
var dnsName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$`)

// objectName names runtime k's Deployment, Service and Secret: a DNS
// label (Services need one) made of a readable part and a hash that
// keeps distinct keys distinct.
func objectName(k orchestrator.Key) string {
	h := sha256.Sum256([]byte(k.InstanceID + "/" + k.Name))
	readable := strings.Trim(unsafeName.ReplaceAllString(strings.ToLower(k.Name), "-"), "-")
	if len(readable) > 30 {
		readable = strings.Trim(readable[:30], "-")
	}
	if readable == "" {
		return "rt-" + hex.EncodeToString(h[:5])
	}
	return "rt-" + readable + "-" + hex.EncodeToString(h[:5])
}

// policyName names instance id's NetworkPolicy.
func policyName(instance string) string {
	h := sha256.Sum256([]byte(instance))
	return "sluice-instance-" + hex.EncodeToString(h[:8])
}

// baseLabels are the labels of every object of runtime k.
func (b *Backend) baseLabels(k orchestrator.Key) map[string]string {
	return map[string]string{
		LabelName:      "sluice-runtime",
		LabelManagedBy: "sluice",
		LabelRole:      RoleRuntime,
		LabelInstall:   b.opts.Install,
		LabelInstance:  labelFor(k.InstanceID),
		LabelRuntime:   labelFor(k.Name),
		LabelRuntimeID: objectName(k),
	}
}

func annotations(k orchestrator.Key, uid string) map[string]string {
	a := map[string]string{AnnInstance: k.InstanceID, AnnRuntime: k.Name}
	if uid != "" {
		a[AnnUID] = uid
	}
	return a
}

// installSelector selects every object of this installation.
func (b *Backend) installSelector() string {
	return LabelManagedBy + "=sluice," + LabelRole + "=" + RoleRuntime + "," + LabelInstall + "=" + b.opts.Install
}

func (b *Backend) runtimeSelector(k orchestrator.Key) string {
	return b.installSelector() + "," + LabelRuntimeID + "=" + objectName(k)
}

// newAdminToken makes a runtime's admin credential.
func newAdminToken() (secret.Value, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return secret.Value{}, err
	}
	return secret.New("slra_" + base64.RawURLEncoding.EncodeToString(raw)), nil
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// Close releases nothing: the runtimes keep running in the cluster and a
// new Backend adopts them. It exists for symmetry with the local backend.
func (b *Backend) Close() error { return nil }

// ctxTimeout bounds one reconcile's calls to the cluster, so a cluster
// that hangs never stalls the reconciler.
func ctxTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, 20*time.Second)
}

// RBACRules are what the control plane's identity needs in the runtimes'
// namespace (deploy/kubernetes grants them): its objects, read access to
// the pods and their logs.
func RBACRules() []rbacv1.PolicyRule {
	write := []string{"get", "list", "watch", "create", "update", "patch", "delete"}
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: write},
		{APIGroups: []string{""}, Resources: []string{"services", "secrets"}, Verbs: write},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies", "ingresses"}, Verbs: write},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
	}
}
