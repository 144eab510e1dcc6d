package api

import (
	"bytes"
	"errors"
	"net/http"
	"strconv"

	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// getRuntimeBundle serves a runtime generation its BARs and configurations
// (a zip). It is authenticated by the runtime's bundle token alone: user
// tokens open nothing here, and a bundle token opens nothing else.
func (a *API) getRuntimeBundle(w http.ResponseWriter, r *http.Request) {
	if a.Reconciler == nil || a.Bundles == nil {
		writeError(w, r, http.StatusServiceUnavailable, "NoBackend", "this control plane runs no integration runtime backend")
		return
	}
	gen, err := strconv.ParseInt(r.PathValue("generation"), 10, 64)
	token, problem := bearerToken(r)
	if err != nil || problem != "" {
		writeError(w, r, http.StatusUnauthorized, "Unauthorized", "send the runtime's bundle token as Authorization: Bearer")
		return
	}
	var buf bytes.Buffer
	err = a.Reconciler.WriteBundle(r.Context(), a.Bundles, r.PathValue("uid"), gen, token, &buf)
	switch {
	case errors.Is(err, orchestrator.ErrBundleDenied):
		a.Log.WarnContext(r.Context(), "runtime bundle refused", "uid", r.PathValue("uid"), "generation", gen, "remote", clientAddr(r))
		writeError(w, r, http.StatusForbidden, "Forbidden", "this token does not open this bundle")
		return
	case err != nil:
		a.Log.WarnContext(r.Context(), "runtime bundle unavailable", "uid", r.PathValue("uid"), "generation", gen, "err", err)
		writeError(w, r, http.StatusConflict, "BundleUnavailable", "the runtime's BAR files or configurations are not available now; its status says why")
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	_, _ = w.Write(buf.Bytes())
}
