package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/httplimit"
)

// Gateway watch timing: a long poll is answered at once when the state
// differs from the runtime's, else as soon as it changes, else after
// gatewayWait with 304 and no body: an idle watch is sent nothing new.
// A change is heard at once when this process makes it, and through the
// store's change feed when another replica sharing PostgreSQL does (the
// server turns the feed into apis.Service.Notify). What nothing announces
// (another process writing the same SQLite file, a signing key another
// replica added, a lease past its expiry, which the gateway refuses by
// itself) is found by compiling again every gatewayResync, once per
// runtime however many watches it has. That resync used to be 250 ms,
// when it was the only way to hear other replicas: with tens of runtimes
// an idle control plane re-read the store a hundred times a second. On
// SQLite a resync compiles only when the files' write stamp moved (or a
// minute went by): an idle control plane there reads nothing.
const (
	gatewayWait   = 25 * time.Second
	gatewayResync = 5 * time.Second
)

// IsGatewayWatch says whether r is a runtime's long poll on its gateway
// state (?since= set). Every replica holds one open, renewed every
// gatewayWait with nothing new: the idle trim must not take that for work,
// or a control plane running runtimes would never count as idle.
func IsGatewayWatch(r *http.Request) bool {
	p := r.URL.Path
	return r.Method == http.MethodGet && strings.HasPrefix(p, "/internal/v1/runtimes/") &&
		strings.HasSuffix(p, "/gateway") && r.URL.Query().Has("since")
}

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
	st, tag, err := a.APIs.WaitGatewayState(ctx, uid, since, wait, gatewayResync)
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
