// Package api owns the control plane's HTTP surface: the route table of
// /api/v1 and the health endpoints, request decoding, and the mapping of
// domain and store errors to JSON error answers. Handlers stay thin: the
// work is done by the domain packages (iam, store, …). The OpenAPI document
// in api/openapi.yaml is the contract of what is routed here.
package api

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/store"
)

// API holds what the handlers need.
type API struct {
	Store store.Store
	Log   *slog.Logger
}

// Handler returns the whole HTTP surface of the control plane. Every route
// is listed here, so a reader sees the API in one screen.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)
	mux.HandleFunc("/", a.notFound)
	return obs.Middleware(a.Log, mux)
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when the store answers and its schema is current,
// so a load balancer sends no traffic to a replica that cannot serve it.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.Store.Ready(ctx); err != nil {
		a.Log.Warn("not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": "store not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": a.Store.Kind()})
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusNotFound, "NotFound", "no such endpoint: "+r.Method+" "+r.URL.Path)
}
