package orchestrator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// Trace types: user traces follow each message through each step of the
// flows; service traces record the engine's own events.
const (
	TraceUser    = "user"
	TraceService = "service"
)

// Traces manages trace objects: a trace object switches tracing on for a
// runtime while it exists. The reconciler keeps tracing on across runtime
// restarts and rollouts; the runtime records and redacts.
type Traces struct {
	Store      store.Store
	IAM        *iam.Service
	Reconciler *Reconciler
	HTTP       *http.Client // talks to runtimes' admin listeners
	Now        clock.Func
}

// TraceView is a trace object with what the runtime reports about it.
type TraceView struct {
	store.Trace
	State  string // Active, Pending (the runtime does not serve yet)
	Events int
}

func (t *Traces) now() time.Time { return t.Now.Now().UTC() }

func (t *Traces) client() *http.Client {
	if t.HTTP != nil {
		return t.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// runtimeTraceStatus is the runtime admin listener's answer about a trace.
type runtimeTraceStatus struct {
	Enabled bool `json:"enabled"`
	Events  int  `json:"events"`
}

// adminCall calls a runtime's admin listener for a trace, with the
// runtime's admin credential.
func adminCall(ctx context.Context, c *http.Client, obs Observed, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, obs.AdminURL+path, nil)
	if err != nil {
		return nil, err
	}
	if !obs.AdminToken.IsZero() {
		req.Header.Set("Authorization", "Bearer "+obs.AdminToken.Reveal())
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("runtime admin %s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

// ensureTrace switches a trace type on at a runtime unless it already is.
func ensureTrace(ctx context.Context, c *http.Client, obs Observed, typ string) (runtimeTraceStatus, error) {
	var st runtimeTraceStatus
	resp, err := adminCall(ctx, c, obs, http.MethodGet, "/trace/"+typ)
	if err != nil {
		return st, err
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Enabled {
		return st, err
	}
	resp, err = adminCall(ctx, c, obs, http.MethodPost, "/trace/"+typ+"/start")
	if err != nil {
		return st, err
	}
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	return st, err
}

func (t *Traces) view(ctx context.Context, tr store.Trace) TraceView {
	v := TraceView{Trace: tr, State: "Pending"}
	obs, ok := t.Reconciler.Observed(Key{InstanceID: tr.InstanceID, Name: tr.RuntimeName})
	if !ok || obs.AdminURL == "" {
		return v
	}
	if st, err := ensureTrace(ctx, t.client(), obs, tr.Type); err == nil && st.Enabled {
		v.State, v.Events = "Active", st.Events
	}
	return v
}

// Put creates (or replaces) a trace object and switches tracing on.
func (t *Traces) Put(ctx context.Context, p iam.Principal, name, runtimeName, typ string) (TraceView, bool, error) {
	if err := resource.ValidateName("trace", name); err != nil {
		return TraceView{}, false, iam.Invalidf("%s", err.Error())
	}
	if typ != TraceUser && typ != TraceService {
		return TraceView{}, false, iam.Invalidf("spec.type %q is not user or service", typ)
	}
	if runtimeName == "" {
		return TraceView{}, false, iam.Invalidf("spec.integrationRuntimeName is missing")
	}
	rt, err := t.Store.GetRuntime(ctx, p.InstanceID, runtimeName)
	if err != nil {
		return TraceView{}, false, iam.Invalidf("spec.integrationRuntimeName names %s, which is not an integration runtime of this instance", runtimeName)
	}
	existing, err := t.Store.ListTraces(ctx, p.InstanceID, runtimeName, store.Page{})
	if err != nil {
		return TraceView{}, false, err
	}
	for _, e := range existing {
		if e.Name != name && e.Type == typ {
			return TraceView{}, false, iam.Conflictf("trace %s already traces %s (%s)", e.Name, runtimeName, typ)
		}
	}
	tr := store.Trace{InstanceID: p.InstanceID, Name: name, RuntimeName: runtimeName, RuntimeUID: rt.UID, Type: typ, CreatedAt: t.now(), CreatedBy: p.Actor()}
	if t.Now != nil {
		tr.CreatedAt = t.Now().UTC()
	}
	created, err := t.Store.PutTrace(ctx, tr)
	if err != nil {
		return TraceView{}, false, err
	}
	if err := t.IAM.Finish(ctx, p, "trace.start", "trace/"+name, nil); err != nil {
		return TraceView{}, false, err
	}
	if stored, err := t.Store.GetTrace(ctx, p.InstanceID, name); err == nil {
		tr = stored
	}
	return t.view(ctx, tr), created, nil
}

// Get reads a trace object and its state.
func (t *Traces) Get(ctx context.Context, p iam.Principal, name string) (TraceView, error) {
	tr, err := t.Store.GetTrace(ctx, p.InstanceID, name)
	if err != nil {
		return TraceView{}, iam.StoreErr(err, "trace "+name)
	}
	return t.view(ctx, tr), nil
}

// List lists trace objects, of one runtime when runtimeName is set.
func (t *Traces) List(ctx context.Context, p iam.Principal, runtimeName string, req iam.ListRequest) (iam.ListPage[TraceView], error) {
	return iam.PageMap(req, []string{"traces", p.InstanceID, runtimeName}, func(pg store.Page) ([]store.Trace, error) {
		return t.Store.ListTraces(ctx, p.InstanceID, runtimeName, pg)
	}, func(tr store.Trace) (TraceView, error) { return t.view(ctx, tr), nil })
}

// Delete switches tracing off and removes the trace object.
func (t *Traces) Delete(ctx context.Context, p iam.Principal, name string) error {
	tr, err := t.Store.GetTrace(ctx, p.InstanceID, name)
	if err != nil {
		return iam.StoreErr(err, "trace "+name)
	}
	if obs, ok := t.Reconciler.Observed(Key{InstanceID: tr.InstanceID, Name: tr.RuntimeName}); ok && obs.AdminURL != "" {
		if resp, err := adminCall(ctx, t.client(), obs, http.MethodPost, "/trace/"+tr.Type+"/stop"); err == nil {
			resp.Body.Close()
		}
	}
	err = iam.StoreErr(t.Store.DeleteTrace(ctx, p.InstanceID, name), "trace "+name)
	return t.IAM.Finish(ctx, p, "trace.stop", "trace/"+name, err)
}

// ErrTraceUnavailable means the traced runtime does not serve right now.
var ErrTraceUnavailable = errors.New("the traced runtime is not running: start it, then download")

// Download streams the trace as a zip from the runtime.
func (t *Traces) Download(ctx context.Context, p iam.Principal, name string) (io.ReadCloser, error) {
	tr, err := t.Store.GetTrace(ctx, p.InstanceID, name)
	if err != nil {
		return nil, iam.StoreErr(err, "trace "+name)
	}
	obs, ok := t.Reconciler.Observed(Key{InstanceID: tr.InstanceID, Name: tr.RuntimeName})
	if !ok || obs.AdminURL == "" {
		return nil, ErrTraceUnavailable
	}
	resp, err := adminCall(ctx, t.client(), obs, http.MethodGet, "/trace/"+tr.Type+"/download?format=zip")
	if err != nil {
		return nil, fmt.Errorf("orchestrator: trace download: %w", err)
	}
	return resp.Body, nil
}
