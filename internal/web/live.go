package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/httplimit"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// livePoll is how often the status stream looks for changes: it reads the
// store as the API's watch does, so every control-plane replica sees what
// any reconciler wrote, and a change shows within about this long.
const livePoll = 500 * time.Millisecond

// liveRuntime is what the page's script needs to redraw one runtime: the
// status fields the pages show, nothing of the spec but the replicas.
type liveRuntime struct {
	Name       string                   `json:"name"`
	Phase      string                   `json:"phase"`
	Available  int                      `json:"available"`
	Running    int                      `json:"running"`
	Wanted     int                      `json:"wanted"`
	LastError  string                   `json:"lastError,omitempty"`
	Endpoints  []orchestrator.Endpoint  `json:"endpoints"`
	Conditions []orchestrator.Condition `json:"conditions"`
}

// runtimeEvents streams the instance's runtimes (or one, with ?name=) as
// server-sent events: "update" when a runtime's record changes, "deleted"
// when it goes. static/live.js redraws the rows and facts it names.
func (d *Dashboard) runtimeEvents(w http.ResponseWriter, r *http.Request) {
	ctx, p, only := r.Context(), principal(r), r.URL.Query().Get("name")
	rc := httplimit.NewStream(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	seen := map[string]int64{}
	var chartSeq uint64
	charts := only != "" && d.Samples != nil
	tick := time.NewTicker(livePoll)
	defer tick.Stop()
	// A change made through any replica wakes the stream at once; the
	// ticker stays the guarantee.
	changes, unsubscribe := d.Store.SubscribeChanges()
	defer unsubscribe()
	se := sessionOf(r).se
	for {
		if !d.alive(ctx, se) || !d.accountCurrent(ctx, se) {
			// The browser's EventSource reconnects and is then sent to
			// log in again.
			return
		}
		rts, err := iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
			return d.Runtimes.List(ctx, p, req)
		})
		if err != nil {
			return
		}
		rc.Extend()
		present := map[string]bool{}
		for _, rt := range rts {
			if only != "" && rt.Name != only {
				continue
			}
			present[rt.Name] = true
			if v, ok := seen[rt.Name]; ok && v == rt.Version {
				continue
			}
			seen[rt.Name] = rt.Version
			b, _ := json.Marshal(liveRuntime{Name: rt.Name, Phase: rt.Status.Phase, Available: rt.Status.AvailableReplicas,
				Running: rt.Status.Replicas, Wanted: replicasOf(rt.Spec), LastError: rt.Status.LastError,
				Endpoints: rt.Status.Endpoints, Conditions: rt.Status.Conditions})
			fmt.Fprintf(w, "event: update\ndata: %s\n\n", b)
		}
		if charts && present[only] {
			// The runtime's page: a new sample redraws its charts.
			if cv := d.chartsOf(p.InstanceID, only); cv.Seq != chartSeq {
				chartSeq = cv.Seq
				b, _ := json.Marshal(map[string]any{"name": only, "seq": cv.Seq, "now": cv.Now, "note": cv.Note})
				fmt.Fprintf(w, "event: charts\ndata: %s\n\n", b)
			}
		}
		for n := range seen {
			if !present[n] {
				delete(seen, n)
				fmt.Fprintf(w, "event: deleted\ndata: {\"name\":%s}\n\n", strconv.Quote(n))
			}
		}
		// A comment line each pass also finds a browser that went away.
		fmt.Fprint(w, ": -\n\n")
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-changes:
		}
	}
}

// accountCurrent reports whether se's identity still exists in the same
// session epoch; a store error keeps the stream (the next page load asks again).
func (d *Dashboard) accountCurrent(ctx context.Context, se *session) bool {
	_, ended, err := d.account(ctx, se)
	return err != nil || ended == ""
}
