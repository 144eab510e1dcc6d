package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Phases of an integration runtime.
const (
	PhasePending = "Pending"
	PhaseReady   = "Ready"
	PhaseFailed  = "Failed" // it cannot run (the Ready condition says why)
	PhaseStopped = "Stopped"
	// PhaseRestarting: a replica crashed and is being restarted.
	PhaseRestarting = "Restarting"
)

// IntegrationRuntime is an integration runtime: BAR files and
// configurations that run together, and what the server observes of them.
type IntegrationRuntime struct {
	Metadata RuntimeMetadata `json:"metadata"`
	Spec     RuntimeSpec     `json:"spec"`
	Status   RuntimeStatus   `json:"status"`
}

// RuntimeMetadata is a runtime's metadata; the server sets all but Name.
type RuntimeMetadata struct {
	Name       string    `json:"name"`
	UID        string    `json:"uid,omitempty"`
	Generation int64     `json:"generation,omitempty"` // bumped by each change of spec
	CreatedAt  time.Time `json:"createdAt,omitzero"`
	CreatedBy  string    `json:"createdBy,omitempty"`
	UpdatedAt  time.Time `json:"updatedAt,omitzero"`
	UpdatedBy  string    `json:"updatedBy,omitempty"`
}

// RuntimeSpec is what a caller sets on a runtime. The fields App Connect
// has but Sluice does not act on (template, license, …) are carried as
// raw JSON so a GET edited and PUT back keeps them.
type RuntimeSpec struct {
	// BarURL lists the BAR files to run: each a BARFile.URL of this
	// instance or an external https URL.
	BarURL []string `json:"barURL"`
	// Configurations names the configurations the runtime is given.
	Configurations []string `json:"configurations"`
	// Replicas is how many processes serve; nil means one, zero stops the
	// runtime.
	Replicas           *int            `json:"replicas,omitempty"`
	Version            string          `json:"version,omitempty"`
	Template           json.RawMessage `json:"template,omitempty"`
	ForceFlowBasicAuth json.RawMessage `json:"forceFlowBasicAuth,omitempty"`
	ForceFlowsHTTPS    json.RawMessage `json:"forceFlowsHTTPS,omitempty"`
	License            json.RawMessage `json:"license,omitempty"`
	LogFormat          string          `json:"logFormat,omitempty"`
}

// RuntimeStatus is what the server observes of a runtime.
type RuntimeStatus struct {
	Phase                       string             `json:"phase"` // PhasePending, PhaseReady, …
	Replicas                    int                `json:"replicas"`
	AvailableReplicas           int                `json:"availableReplicas"`
	ObservedGeneration          int64              `json:"observedGeneration"`
	Conditions                  []RuntimeCondition `json:"conditions"`
	Endpoints                   []RuntimeEndpoint  `json:"endpoints"`
	Restarts                    int                `json:"restarts"`
	LastError                   string             `json:"lastError,omitempty"`
	SupportsTraceCustomResource bool               `json:"supportsTraceCustomResource"`
}

// RuntimeCondition is one aspect of a runtime's state, such as "Ready".
type RuntimeCondition struct {
	Type               string `json:"type"`
	Status             string `json:"status"` // "True", "False"
	Reason             string `json:"reason"`
	Message            string `json:"message"`
	LastTransitionTime string `json:"lastTransitionTime"`
}

// RuntimeEndpoint is one HTTP endpoint a runtime serves.
type RuntimeEndpoint struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Method string `json:"method"`
	URI    string `json:"uri"`
}

// Condition returns the condition of type typ and whether there is one.
func (s RuntimeStatus) Condition(typ string) (RuntimeCondition, bool) {
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c, true
		}
	}
	return RuntimeCondition{}, false
}

// Ready reports whether the runtime serves its current spec: phase Ready
// with the latest generation observed.
func (rt IntegrationRuntime) Ready() bool {
	return rt.Status.Phase == PhaseReady && rt.Status.ObservedGeneration >= rt.Metadata.Generation
}

// runtimeBody is what is sent: the name and the spec. The status is the
// server's, so it is left out.
func runtimeBody(rt IntegrationRuntime) any {
	var in struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec RuntimeSpec `json:"spec"`
	}
	in.Metadata.Name, in.Spec = rt.Metadata.Name, rt.Spec
	if in.Spec.BarURL == nil {
		in.Spec.BarURL = []string{}
	}
	if in.Spec.Configurations == nil {
		in.Spec.Configurations = []string{}
	}
	return in
}

func runtimePath(name string) string { return "/api/v1/integration-runtimes/" + url.PathEscape(name) }

// ListRuntimes calls GET /api/v1/integration-runtimes.
func (c *Client) ListRuntimes(ctx context.Context) ([]IntegrationRuntime, error) {
	return listAll[IntegrationRuntime](ctx, c, "/api/v1/integration-runtimes", nil, "integrationRuntimes", 0)
}

// GetRuntime calls GET /api/v1/integration-runtimes/{name}.
func (c *Client) GetRuntime(ctx context.Context, name string) (IntegrationRuntime, error) {
	var rt IntegrationRuntime
	err := c.Do(ctx, http.MethodGet, runtimePath(name), nil, nil, &rt)
	return rt, err
}

// CreateRuntime calls POST /api/v1/integration-runtimes: it creates the
// runtime named by rt.Metadata.Name and fails with 409 when the name is
// taken. The answer's status is Pending; WaitRuntime or WatchRuntimes
// follow it.
func (c *Client) CreateRuntime(ctx context.Context, rt IntegrationRuntime) (IntegrationRuntime, error) {
	var out IntegrationRuntime
	err := c.Do(ctx, http.MethodPost, "/api/v1/integration-runtimes", nil, runtimeBody(rt), &out)
	return out, err
}

// PutRuntime calls PUT /api/v1/integration-runtimes/{name}: it creates the
// runtime or replaces its spec (a rolling redeploy when the spec changed).
func (c *Client) PutRuntime(ctx context.Context, rt IntegrationRuntime) (IntegrationRuntime, error) {
	var out IntegrationRuntime
	err := c.Do(ctx, http.MethodPut, runtimePath(rt.Metadata.Name), nil, runtimeBody(rt), &out)
	return out, err
}

// DeleteRuntime calls DELETE /api/v1/integration-runtimes/{name}: the
// runtime stops and its materialised configurations are removed.
func (c *Client) DeleteRuntime(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, runtimePath(name), nil, nil, nil)
}

// Event types of a runtime watch.
const (
	EventUpdate  = "update"  // the runtime is new or changed; Runtime is all of it
	EventDeleted = "deleted" // the runtime is gone; only Runtime.Metadata.Name is set
)

// RuntimeEvent is one event of a runtime watch.
type RuntimeEvent struct {
	Type    string             `json:"type"` // EventUpdate or EventDeleted
	Runtime IntegrationRuntime `json:"object"`
}

// RuntimeWatch is an open stream of runtime events. Next blocks for the
// next one; Close ends the stream. A watch is not safe for concurrent use.
type RuntimeWatch struct {
	body io.ReadCloser
	sse  *sseReader
}

// WatchRuntimes calls GET /api/v1/integration-runtimes?watch=true (or, with
// a name, /{name}?watch=true) and returns the stream of server-sent events:
// first an update with each runtime as it is, then one whenever a runtime
// changes or goes. Watching replaces polling, which would spend the rate
// limit. The stream lasts until ctx ends or Close is called.
func (c *Client) WatchRuntimes(ctx context.Context, name string) (*RuntimeWatch, error) {
	path := "/api/v1/integration-runtimes"
	if name != "" {
		path = runtimePath(name)
	}
	resp, err := c.doRaw(ctx, rawRequest{method: http.MethodGet, path: path, query: url.Values{"watch": {"true"}},
		size: -1, accept: "text/event-stream"})
	if err != nil {
		return nil, err
	}
	return &RuntimeWatch{body: resp.Body, sse: newSSEReader(resp.Body)}, nil
}

// Next returns the next event. It returns io.EOF when the server ended
// the stream, and the context's error once the watch's context ends.
func (w *RuntimeWatch) Next() (RuntimeEvent, error) {
	for {
		ev, err := w.sse.next()
		if err != nil {
			return RuntimeEvent{}, err
		}
		typ := ev.event
		if typ == "" {
			typ = EventUpdate
		}
		if typ != EventUpdate && typ != EventDeleted {
			continue // a kind of event this client does not know
		}
		out := RuntimeEvent{Type: typ}
		if err := json.Unmarshal([]byte(ev.data), &out.Runtime); err != nil {
			return RuntimeEvent{}, fmt.Errorf("watch: unable to decode a %s event: %w", typ, err)
		}
		return out, nil
	}
}

// Close ends the watch.
func (w *RuntimeWatch) Close() error { return w.body.Close() }

// WaitRuntime watches the runtime named name until ready tells it is done
// waiting (nil: until IntegrationRuntime.Ready) and returns it as it was
// then. Each event is passed to seen, when not nil, to show progress. It
// returns an error when the runtime is deleted, the stream ends, or ctx
// ends (give ctx the deadline to wait for).
func (c *Client) WaitRuntime(ctx context.Context, name string, ready func(IntegrationRuntime) (bool, error), seen func(IntegrationRuntime)) (IntegrationRuntime, error) {
	if ready == nil {
		ready = func(rt IntegrationRuntime) (bool, error) { return rt.Ready(), nil }
	}
	w, err := c.WatchRuntimes(ctx, name)
	if err != nil {
		return IntegrationRuntime{}, err
	}
	defer w.Close()
	var last IntegrationRuntime
	for {
		ev, err := w.Next()
		if err != nil {
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = errors.New("the server ended the watch")
			}
			return last, fmt.Errorf("waiting for integration runtime %s: %w", name, err)
		}
		if ev.Type == EventDeleted {
			return last, fmt.Errorf("integration runtime %s was deleted while waiting for it", name)
		}
		last = ev.Runtime
		if seen != nil {
			seen(last)
		}
		if done, err := ready(last); done || err != nil {
			return last, err
		}
	}
}

// LogOptions select the lines RuntimeLogs returns.
type LogOptions struct {
	// Tail is how many of the latest lines come first, 0 to 10000; a
	// negative Tail leaves it to the server (100 lines).
	Tail int
	// Follow keeps the stream open, adding lines as the runtime writes
	// them, until the context ends or the reader is closed.
	Follow bool
}

// RuntimeLogs calls GET /api/v1/integration-runtimes/{name}/logs and
// returns the runtime's log as lines of text, one per line, whether
// followed (server-sent events, decoded here) or not. The caller closes it.
func (c *Client) RuntimeLogs(ctx context.Context, name string, opts LogOptions) (io.ReadCloser, error) {
	q := url.Values{}
	if opts.Tail >= 0 {
		q.Set("tail", strconv.Itoa(opts.Tail))
	}
	accept := "text/plain"
	if opts.Follow {
		q.Set("follow", "true")
		accept = "text/event-stream"
	}
	resp, err := c.doRaw(ctx, rawRequest{method: http.MethodGet, path: runtimePath(name) + "/logs", query: q, size: -1, accept: accept})
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return resp.Body, nil
	}
	pr, pw := io.Pipe()
	go func() {
		sse := newSSEReader(resp.Body)
		for {
			ev, err := sse.next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				pw.CloseWithError(err)
				return
			}
			if _, err := io.WriteString(pw, ev.data+"\n"); err != nil {
				return
			}
		}
	}()
	return &logStream{PipeReader: pr, body: resp.Body}, nil
}

// logStream is a followed log: closing it ends the request too.
type logStream struct {
	*io.PipeReader
	body io.Closer
}

func (l *logStream) Close() error {
	l.PipeReader.Close()
	return l.body.Close()
}
