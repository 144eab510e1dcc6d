package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Trace types.
const (
	TraceUser    = "user"    // each message through each step of the flows
	TraceService = "service" // the engine's own events
)

// Trace is a trace object: while it exists, its runtime records a trace.
type Trace struct {
	Metadata Metadata    `json:"metadata"`
	Spec     TraceSpec   `json:"spec"`
	Status   TraceStatus `json:"status"`
}

// TraceSpec names the runtime to trace and the kind of trace.
type TraceSpec struct {
	IntegrationRuntimeName string `json:"integrationRuntimeName"`
	Type                   string `json:"type"` // TraceUser or TraceService
}

// TraceStatus tells whether the runtime records the trace now.
type TraceStatus struct {
	State  string `json:"state"`
	Events int    `json:"events"`
}

func tracePath(name string) string { return "/api/v1/traces/" + url.PathEscape(name) }

// StartTrace calls PUT /api/v1/traces/{name}: it starts a trace of type typ
// (TraceUser or TraceService) of the runtime named runtime, or changes the
// trace of that name.
func (c *Client) StartTrace(ctx context.Context, name, runtime, typ string) (Trace, error) {
	var in struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec TraceSpec `json:"spec"`
	}
	in.Metadata.Name = name
	in.Spec = TraceSpec{IntegrationRuntimeName: runtime, Type: typ}
	var out Trace
	err := c.Do(ctx, http.MethodPut, tracePath(name), nil, in, &out)
	return out, err
}

// StopTrace calls DELETE /api/v1/traces/{name}: tracing stops and the
// trace object goes. Download the trace first to keep it.
func (c *Client) StopTrace(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, tracePath(name), nil, nil, nil)
}

// GetTrace calls GET /api/v1/traces/{name}.
func (c *Client) GetTrace(ctx context.Context, name string) (Trace, error) {
	var t Trace
	err := c.Do(ctx, http.MethodGet, tracePath(name), nil, nil, &t)
	return t, err
}

// ListTraces calls GET /api/v1/traces: every trace of the instance, or
// those of one runtime when runtime is not "".
func (c *Client) ListTraces(ctx context.Context, runtime string) ([]Trace, error) {
	var q url.Values
	if runtime != "" {
		q = url.Values{"spec.integrationRuntimeName": {runtime}}
	}
	return listAll[Trace](ctx, c, "/api/v1/traces", q, "traces", 0)
}

// DownloadTrace calls GET /api/v1/traces/{name}/download and streams the
// trace, a zip archive, to w; it returns how many bytes were written. A
// runtime that does not serve right now answers 409.
func (c *Client) DownloadTrace(ctx context.Context, name string, w io.Writer, progress Progress) (int64, error) {
	resp, err := c.doRaw(ctx, rawRequest{method: http.MethodGet, path: tracePath(name) + "/download", size: -1, accept: "application/zip"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	n, err := copyDownload(resp, w, progress)
	if err != nil {
		return n, fmt.Errorf("download of trace %s: %w", name, err)
	}
	return n, nil
}
