package orchestrator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/sluice-dev/sluice/internal/resource"
)

// Spec is the desired state of an integration runtime, in App Connect's
// shape. Fields scripts send that Sluice has no use for yet (template,
// forceFlowBasicAuth, license…) are accepted and kept, so a GET edited and
// PUT back round-trips; anything else is refused.
type Spec struct {
	BarURL             []string        `json:"barURL"`
	Configurations     []string        `json:"configurations"`
	Replicas           *int            `json:"replicas,omitempty"`
	Version            string          `json:"version,omitempty"`
	Template           json.RawMessage `json:"template,omitempty"`
	ForceFlowBasicAuth json.RawMessage `json:"forceFlowBasicAuth,omitempty"`
	ForceFlowsHTTPS    json.RawMessage `json:"forceFlowsHTTPS,omitempty"`
	License            json.RawMessage `json:"license,omitempty"`
	LogFormat          string          `json:"logFormat,omitempty"`
}

// MaxReplicas bounds spec.replicas.
const MaxReplicas = 16

// BARRef is one entry of spec.barURL: a BAR file of the instance (Name)
// or an external https URL (URL).
type BARRef struct {
	Name string
	URL  string
}

// internalBARPath is the path of BAR urls this control plane hands out:
// /api/v1/bar-files/<name>/content. The host is not compared: the same
// BAR url must keep working when the public URL changes.
const internalBARPrefix, internalBARSuffix = "/api/v1/bar-files/", "/content"

// ParseBARURL classifies one barURL.
func ParseBARURL(raw string) (BARRef, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return BARRef{}, fmt.Errorf("spec.barURL %q is not an absolute URL", raw)
	}
	if strings.HasPrefix(u.Path, internalBARPrefix) && strings.HasSuffix(u.Path, internalBARSuffix) {
		name := strings.TrimSuffix(strings.TrimPrefix(u.Path, internalBARPrefix), internalBARSuffix)
		if err := resource.ValidateName("BAR file", name); err != nil {
			return BARRef{}, fmt.Errorf("spec.barURL %q: %v", raw, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return BARRef{}, fmt.Errorf("spec.barURL %q has scheme %q: use http(s)", raw, u.Scheme)
		}
		return BARRef{Name: name}, nil
	}
	if u.Scheme != "https" {
		return BARRef{}, fmt.Errorf("spec.barURL %q has scheme %q: external BAR files must be fetched over https", raw, u.Scheme)
	}
	if u.User != nil {
		return BARRef{}, fmt.Errorf("spec.barURL must not carry credentials: put them in a barauth configuration")
	}
	return BARRef{URL: raw}, nil
}

// Normalize checks the spec and fills defaults, so equal specs serialise
// equally and only real changes bump the generation.
func (s *Spec) Normalize() error {
	if len(s.BarURL) == 0 {
		return fmt.Errorf("spec.barURL is empty: name at least one BAR file url")
	}
	if len(s.BarURL) > 32 {
		return fmt.Errorf("spec.barURL names %d BAR files; the limit is 32", len(s.BarURL))
	}
	for _, u := range s.BarURL {
		if _, err := ParseBARURL(u); err != nil {
			return err
		}
	}
	seen := map[string]bool{}
	for _, c := range s.Configurations {
		if err := resource.ValidateName("configuration", c); err != nil {
			return fmt.Errorf("spec.configurations: %v", err)
		}
		if seen[c] {
			return fmt.Errorf("spec.configurations names %q twice", c)
		}
		seen[c] = true
	}
	if s.Configurations == nil {
		s.Configurations = []string{}
	}
	if s.Replicas == nil {
		one := 1
		s.Replicas = &one
	}
	if *s.Replicas < 0 || *s.Replicas > MaxReplicas {
		return fmt.Errorf("spec.replicas %d is out of range: give 0 (stopped) to %d", *s.Replicas, MaxReplicas)
	}
	if s.Version != "" && !versionPattern.MatchString(s.Version) {
		return fmt.Errorf("spec.version %.40q is not an App Connect version Sluice runs: give a channel (%s) or a full version such as %s",
			s.Version, strings.Join(VersionChannels, ", "), exampleFullVersion)
	}
	for name, raw := range map[string]json.RawMessage{"template": s.Template, "forceFlowBasicAuth": s.ForceFlowBasicAuth,
		"forceFlowsHTTPS": s.ForceFlowsHTTPS, "license": s.License} {
		if len(raw) > 0 && !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("{")) {
			return fmt.Errorf("spec.%s must be an object", name)
		}
	}
	if _, err := TemplateResources(s.Template); err != nil {
		return err
	}
	return nil
}

// VersionChannels are the App Connect Enterprise versions whose runtime
// spec Sluice serves: spec.version is one of them, or a full version of
// one (App Connect's operator writes 13.0.2.1-r1); the newest is the
// default. The flow engine is Sluice's own whatever the version says:
// the field is compatibility, and status.versions says so.
var VersionChannels = []string{"12.0", "13.0"}

const exampleFullVersion = "13.0.2.1-r1"

var versionPattern = regexp.MustCompile(`^(12|13)\.0(\.[0-9]{1,3}\.[0-9]{1,3}(-r[0-9]{1,3})?)?$`)

// Versions is status.versions, in the shape of App Connect's operator:
// what the runtime was reconciled to and what is available.
type Versions struct {
	Reconciled string `json:"reconciled"`
	// Engine names what actually runs the flows.
	Engine    string `json:"engine"`
	Available struct {
		Channels []VersionName `json:"channels"`
	} `json:"available"`
}

// engine names this build: "sluice " and its module version.
var engine = sync.OnceValue(func() string {
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" {
		return "sluice " + info.Main.Version
	}
	return "sluice (devel)"
})

// VersionName is one entry of Versions.Available.
type VersionName struct {
	Name string `json:"name"`
}

// RunningVersions is the status.versions of a runtime with spec.version
// v, run by this build of Sluice.
func RunningVersions(v string) *Versions {
	if v == "" {
		v = VersionChannels[len(VersionChannels)-1]
	}
	out := &Versions{Reconciled: v, Engine: engine()}
	for _, c := range VersionChannels {
		out.Available.Channels = append(out.Available.Channels, VersionName{Name: c})
	}
	return out
}

// Refs lists what the spec names in the store.
func (s *Spec) Refs() (bars []string, configs []string) {
	for _, u := range s.BarURL {
		if r, err := ParseBARURL(u); err == nil && r.Name != "" {
			bars = append(bars, r.Name)
		}
	}
	return bars, s.Configurations
}

// Condition is a Kubernetes-style status condition.
type Condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Reason             string `json:"reason"`
	Message            string `json:"message"`
	LastTransitionTime string `json:"lastTransitionTime"`
}

// Endpoint is one HTTP flow endpoint of a runtime.
type Endpoint struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Method string `json:"method"`
	URI    string `json:"uri"`
}

// Phases of a runtime.
const (
	PhasePending = "Pending"
	PhaseReady   = "Ready"
	PhaseFailed  = "Failed" // it cannot run: fetch failed, processes cannot start, or it exits before it is ready
	PhaseStopped = "Stopped"
	// PhaseRestarting: a replica crashed and is being restarted (with
	// backoff); the runtime may still serve from its other replicas.
	PhaseRestarting = "Restarting"
)

// Status is the observed state the reconciler writes.
type Status struct {
	Phase                       string      `json:"phase"`
	Replicas                    int         `json:"replicas"`
	AvailableReplicas           int         `json:"availableReplicas"`
	ObservedGeneration          int64       `json:"observedGeneration"`
	Conditions                  []Condition `json:"conditions"`
	Endpoints                   []Endpoint  `json:"endpoints"`
	Restarts                    int         `json:"restarts"`
	LastError                   string      `json:"lastError,omitempty"`
	SupportsTraceCustomResource bool        `json:"supportsTraceCustomResource"`
	Versions                    *Versions   `json:"versions,omitempty"`
}

// PendingStatus is the status of a runtime the reconciler has not seen yet.
func PendingStatus() Status {
	return Status{Phase: PhasePending, Conditions: []Condition{}, Endpoints: []Endpoint{}, SupportsTraceCustomResource: true}
}
