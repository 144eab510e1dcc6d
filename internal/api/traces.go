package api

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/httplimit"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// Trace is a trace object as the API shows it.
type Trace struct {
	Metadata Metadata    `json:"metadata"`
	Spec     TraceSpec   `json:"spec"`
	Status   TraceStatus `json:"status"`
}

// TraceSpec names the runtime to trace and the kind of trace.
type TraceSpec struct {
	IntegrationRuntimeName string `json:"integrationRuntimeName"`
	Type                   string `json:"type"`
}

// TraceStatus says whether the runtime records the trace now.
type TraceStatus struct {
	State  string `json:"state"`
	Events int    `json:"events"`
}

type traceInput struct {
	Metadata Metadata     `json:"metadata"`
	Spec     TraceSpec    `json:"spec"`
	Status   *TraceStatus `json:"status,omitempty"`
}

func traceObject(v orchestrator.TraceView) Trace {
	return Trace{
		Metadata: Metadata{Name: v.Name, CreatedAt: timestamp(v.CreatedAt), CreatedBy: v.CreatedBy},
		Spec:     TraceSpec{IntegrationRuntimeName: v.RuntimeName, Type: v.Type},
		Status:   TraceStatus{State: v.State, Events: v.Events},
	}
}

func (a *API) putTrace(w http.ResponseWriter, r *http.Request) {
	if !a.haveBackend(w, r) {
		return
	}
	var in traceInput
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	name, err := nameFor(r, in.Metadata.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	v, created, err := a.Traces.Put(r.Context(), principal(r), name, in.Spec.IntegrationRuntimeName, in.Spec.Type)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, createdStatus(created), traceObject(v))
}

func (a *API) listTraces(w http.ResponseWriter, r *http.Request) {
	if !a.haveBackend(w, r) {
		return
	}
	q := r.URL.Query()
	runtime := q.Get("spec.integrationRuntimeName")
	if runtime == "" {
		runtime = q.Get("integrationRuntimeName")
	}
	answerList(a, w, r, "traces", func(req iam.ListRequest) (iam.ListPage[orchestrator.TraceView], error) {
		return a.Traces.List(r.Context(), principal(r), runtime, req)
	}, traceObject)
}

func (a *API) getTrace(w http.ResponseWriter, r *http.Request) {
	if !a.haveBackend(w, r) {
		return
	}
	v, err := a.Traces.Get(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, traceObject(v))
}

func (a *API) deleteTrace(w http.ResponseWriter, r *http.Request) {
	if !a.haveBackend(w, r) {
		return
	}
	if err := a.Traces.Delete(r.Context(), principal(r), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// downloadTrace streams the trace as a zip; secret values were redacted
// by the runtime as it recorded them.
func (a *API) downloadTrace(w http.ResponseWriter, r *http.Request) {
	if !a.haveBackend(w, r) {
		return
	}
	rc, err := a.Traces.Download(r.Context(), principal(r), r.PathValue("name"))
	if errors.Is(err, orchestrator.ErrTraceUnavailable) {
		writeError(w, r, http.StatusConflict, "RuntimeNotRunning", err.Error())
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", r.PathValue("name")+".zip"))
	_, _ = io.Copy(w, rc)
}

// runtimeLogs answers the runtime's recent log lines as text, or with
// ?follow=true keeps streaming new ones as server-sent events.
func (a *API) runtimeLogs(w http.ResponseWriter, r *http.Request) {
	if !a.haveBackend(w, r) {
		return
	}
	p := principal(r)
	name := r.PathValue("name")
	if _, err := a.Runtimes.Get(r.Context(), p, name); err != nil {
		a.fail(w, r, err)
		return
	}
	tail := 100
	if v := r.URL.Query().Get("tail"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 10000 {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "tail must be a whole number from 0 to 10000")
			return
		}
		tail = n
	}
	follow := r.URL.Query().Get("follow") == "true"
	rc, err := a.Reconciler.Backend.Logs(r.Context(), orchestrator.Key{InstanceID: p.InstanceID, Name: name}, tail, follow)
	if errors.Is(err, fs.ErrNotExist) {
		// The runtime exists (checked above) but the backend never
		// started it, e.g. created with 0 replicas: it has no lines yet.
		rc, err = io.NopCloser(strings.NewReader("")), nil
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	defer rc.Close()
	if !follow {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.Copy(w, rc)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	ctl := httplimit.NewStream(w)
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		ctl.Extend()
		if _, err := fmt.Fprintf(w, "data: %s\n\n", sc.Text()); err != nil {
			return
		}
		if err := ctl.Flush(); err != nil {
			return
		}
	}
}

// haveBackend answers 503 when this control plane runs no runtime backend.
func (a *API) haveBackend(w http.ResponseWriter, r *http.Request) bool {
	if a.Reconciler == nil || a.Traces == nil {
		writeError(w, r, http.StatusServiceUnavailable, "NoBackend", "this control plane runs no integration runtime backend")
		return false
	}
	return true
}
