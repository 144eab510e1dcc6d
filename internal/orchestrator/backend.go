// Package orchestrator owns integration runtimes as a resource and drives
// them to their desired state: the spec and its validation, the service
// behind /api/v1/integration-runtimes (with referential integrity against
// configurations and BAR files), the level-triggered reconciler that
// writes observed status back, and the Backend interface that the local
// (child processes) and Kubernetes backends implement. It never returns
// configuration data or fetch credentials in a status or error.
package orchestrator

import (
	"context"
	"io"
	"time"

	"github.com/sluice-dev/sluice/internal/secret"
)

// Key names one integration runtime.
type Key struct {
	InstanceID string
	Name       string
}

func (k Key) String() string { return k.InstanceID + "/" + k.Name }

// ConfigFile is one configuration given to a runtime, decrypted. Data is
// secret: backends write it with mode 0600 and never log it.
type ConfigFile struct {
	Type string
	Name string
	Data []byte
}

// BAR is one BAR file of a runtime, already fetched and validated by the
// reconciler (from the store, or from an external https URL).
type BAR struct {
	Name   string // file name to materialise it under, e.g. "hello.bar"
	SHA256 string
	Data   []byte
}

// Deployment is what a backend must run for one runtime: one generation of
// its spec with everything it needs.
type Deployment struct {
	Key        Key
	UID        string // stable id of the runtime (survives spec changes)
	Generation int64  // bumps on every spec change; a new generation rolls over
	Replicas   int    // 0 stops the runtime
	BARs       []BAR
	Configs    []ConfigFile
	// BundleURL and BundleToken let the runtime fetch its BARs and
	// configurations from the control plane itself (`sluice runtime
	// --bundle-url`), with a credential that opens this runtime
	// generation's bundle and nothing else. A backend that does so need
	// not write BARs and Configs anywhere.
	BundleURL   string
	BundleToken secret.Value
	// BundleCA is the PEM certificate the runtime trusts when BundleURL is
	// https (the control plane's own); nil for plain http.
	BundleCA []byte
	// Resources are the container resources of spec.template (nil: none
	// named), for backends that can set them.
	Resources *Resources
}

// Observed is what a backend reports about a runtime.
type Observed struct {
	Generation        int64        // generation currently serving (0: none)
	Replicas          int          // processes/pods of any generation that exist
	AvailableReplicas int          // ready replicas of the serving generation
	Restarts          int          // crashes restarted since the runtime was created
	LastError         string       // last crash or start failure, without secrets
	BaseURL           string       // where its flows are served, e.g. http://127.0.0.1:7801
	AdminURL          string       // admin listener of one ready replica (traces), "" if none
	AdminToken        secret.Value // the runtime's admin credential, sent as a bearer token to AdminURL
	// AdminURLs are the admin listeners of every ready replica of the
	// serving generation (AdminURL among them): each replica counts its
	// own requests, so the dashboard's charts add up all of them.
	AdminURLs   []string
	Progressing bool // a rollout to a newer generation is under way
	// Restarting: a replica of the wanted generation crashed and is being
	// restarted (backing off, or started again and not ready yet).
	Restarting bool
	// CannotRun says why the wanted generation cannot run at all: its
	// processes cannot be started, or every start exits before it is
	// ready. "" while it can (a crash after serving is Restarting).
	CannotRun string
}

// Backend runs integration runtimes. Implementations must be idempotent
// (Apply is called every reconcile pass with the same Deployment) and
// restart-safe: a new Backend value created after a control-plane restart
// must adopt the runtimes its predecessor started (List/Observe find them)
// instead of starting them again.
type Backend interface {
	// Apply makes the runtime match d and returns what it observes. A new
	// generation is started and made ready before the previous one is
	// stopped (rolling redeploy, no failed requests); Replicas 0 stops
	// everything. It must not block for long: it starts work and reports.
	Apply(ctx context.Context, d Deployment) (Observed, error)
	// Observe reports on a runtime without changing anything.
	Observe(ctx context.Context, k Key) (Observed, error)
	// Delete stops the runtime and removes everything materialised for it
	// (its secrets included).
	Delete(ctx context.Context, k Key) error
	// List names every runtime the backend is running, for adoption and
	// for removing runtimes whose record was deleted.
	List(ctx context.Context) ([]Key, error)
	// Logs returns the runtime's recent log lines (at most tail) and, when
	// follow is set, keeps streaming new lines until ctx ends.
	Logs(ctx context.Context, k Key, tail int, follow bool) (io.ReadCloser, error)
}

// Clock lets tests drive time (backoff) without sleeping.
type Clock interface {
	Now() time.Time
}
