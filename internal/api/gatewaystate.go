package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/httplimit"
)

// Gateway watch timing: a long poll is answered at once when the state
// differs from the runtime's, else as soon as it changes (compiled again
// on every change this replica makes and, once per runtime for all its
// watches, every gatewayPoll for changes made through other replicas),
// else after gatewayWait with 304 and no body: an idle watch is sent
// nothing new.
const (
	gatewayWait = 25 * time.Second
	gatewayPoll = 250 * time.Millisecond
)

// gatewayAnswer is the body of a gateway watch answer.
type gatewayAnswer struct {
	Tag   string        `json:"tag"`
	State gateway.State `json:"state"`
}

// getGatewayState is the runtime's watch on what its gateway enforces
// (long poll: ?since=TAG). Like the bundle, it opens with the runtime's
// bundle token only, and answers about that runtime only. A runtime whose
// generation was replaced keeps its watch until it is stopped.
func (a *API) getGatewayState(w http.ResponseWriter, r *http.Request) {
	if a.Bundles == nil || a.APIs == nil {
		writeError(w, r, http.StatusServiceUnavailable, "NoBackend", "this control plane runs no integration runtime backend")
		return
	}
	gen, err := strconv.ParseInt(r.PathValue("generation"), 10, 64)
	token, problem := bearerToken(r)
	if err != nil || problem != "" {
		writeError(w, r, http.StatusUnauthorized, "Unauthorized", "send the runtime's bundle token as Authorization: Bearer")
		return
	}
	uid := r.PathValue("uid")
	if !a.Bundles.Check(uid, gen, token) {
		writeError(w, r, http.StatusForbidden, "Forbidden", "this token does not open this runtime's gateway state")
		return
	}
	since := r.URL.Query().Get("since")
	wait := gatewayWait
	if since == "" {
		wait = 0
	}
	ctx, cancel := context.WithTimeout(r.Context(), wait+5*time.Second)
	defer cancel()
	st, tag, err := a.APIs.WaitGatewayState(ctx, uid, since, wait, gatewayPoll)
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		a.fail(w, r, err)
		return
	}
	// The answer may come after a long wait: it gets its own write deadline.
	httplimit.NewStream(w)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("ETag", strconv.Quote(tag))
	if tag == since {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	writeJSON(w, http.StatusOK, gatewayAnswer{Tag: tag, State: st})
}
