package web

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// errNoBackend answers trace actions on a control plane that runs no
// runtimes, so there is nothing to trace.
var errNoBackend = iam.Invalidf("this control plane runs no runtime backend, so nothing can be traced")

// startTrace switches tracing on for the runtime: a trace object of the
// chosen type, named <runtime>-<type> unless the form names it.
func (d *Dashboard) startTrace(w http.ResponseWriter, r *http.Request) {
	runtime := r.PathValue("name")
	typ := r.FormValue("type")
	name := strings.TrimSpace(r.FormValue("trace"))
	if name == "" {
		name = runtime + "-" + typ
	}
	if d.Traces == nil {
		d.showRuntime(w, r, http.StatusConflict, view{TraceErr: errNoBackend.Error()})
		return
	}
	if _, _, err := d.Traces.Put(r.Context(), principal(r), name, runtime, typ); err != nil {
		status, msg := d.message(r, err)
		d.showRuntime(w, r, status, view{TraceErr: msg, Form: map[string]string{"trace": r.FormValue("trace"), "type": typ}})
		return
	}
	d.redirect(w, r, "/runtimes/"+runtime, fmt.Sprintf("%s trace %s started", typ, name))
}

// stopTrace switches tracing off; what was recorded goes with it.
func (d *Dashboard) stopTrace(w http.ResponseWriter, r *http.Request) {
	if d.Traces == nil {
		d.fail(w, r, errNoBackend)
		return
	}
	ctx, p, name := r.Context(), principal(r), r.PathValue("trace")
	tv, err := d.Traces.Get(ctx, p, name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	if err := d.Traces.Delete(ctx, p, name); err != nil {
		d.fail(w, r, err)
		return
	}
	d.redirect(w, r, "/runtimes/"+tv.RuntimeName, "trace "+name+" stopped")
}

// downloadTrace streams the trace as a zip; the runtime redacted secret
// values as it recorded them.
func (d *Dashboard) downloadTrace(w http.ResponseWriter, r *http.Request) {
	if d.Traces == nil {
		d.fail(w, r, errNoBackend)
		return
	}
	name := r.PathValue("trace")
	rc, err := d.Traces.Download(r.Context(), principal(r), name)
	if errors.Is(err, orchestrator.ErrTraceUnavailable) {
		d.render(w, r, http.StatusConflict, "error", view{Title: "Trace not available", Error: err.Error()})
		return
	}
	if err != nil {
		d.fail(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name+".zip"))
	_, _ = io.Copy(w, rc)
}
