package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/httplimit"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/store"
)

// RuntimeMetadata is an integration runtime's metadata.
type RuntimeMetadata struct {
	Name       string `json:"name"`
	UID        string `json:"uid,omitempty"`
	Generation int64  `json:"generation,omitempty"`
	CreatedAt  string `json:"createdAt,omitempty"`
	CreatedBy  string `json:"createdBy,omitempty"`
	UpdatedAt  string `json:"updatedAt,omitempty"`
	UpdatedBy  string `json:"updatedBy,omitempty"`
}

// Runtime is an integration runtime as the API shows it.
type Runtime struct {
	Metadata RuntimeMetadata     `json:"metadata"`
	Spec     orchestrator.Spec   `json:"spec"`
	Status   orchestrator.Status `json:"status"`
}

// runtimeInput is a PUT body: status (and read-only metadata) are
// accepted, so a GET edited and PUT back works, and ignored.
type runtimeInput struct {
	Metadata RuntimeMetadata   `json:"metadata"`
	Spec     orchestrator.Spec `json:"spec"`
	Status   json.RawMessage   `json:"status,omitempty"`
}

func runtimeObject(rt orchestrator.Runtime) Runtime {
	st := rt.Status
	if st.Conditions == nil {
		st.Conditions = []orchestrator.Condition{}
	}
	if st.Endpoints == nil {
		st.Endpoints = []orchestrator.Endpoint{}
	}
	if st.Versions == nil {
		// Not reconciled yet: what it will run.
		st.Versions = orchestrator.RunningVersions(rt.Spec.Version)
	}
	return Runtime{
		Metadata: RuntimeMetadata{Name: rt.Name, UID: rt.UID, Generation: rt.Generation, CreatedAt: timestamp(rt.CreatedAt),
			CreatedBy: rt.CreatedBy, UpdatedAt: timestamp(rt.UpdatedAt), UpdatedBy: rt.UpdatedBy},
		Spec: rt.Spec, Status: st,
	}
}

func (a *API) putRuntime(createOnly bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in runtimeInput
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
		name, err := nameFor(r, in.Metadata.Name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		rt, created, err := a.Runtimes.Put(r.Context(), principal(r), name, in.Spec, createOnly)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, createdStatus(created), runtimeObject(rt))
	}
}

func (a *API) listRuntimes(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("watch") == "true" {
		a.watchRuntimes(w, r, "")
		return
	}
	answerList(a, w, r, "integrationRuntimes", func(req iam.ListRequest) (iam.ListPage[json.RawMessage], error) {
		pg, err := a.Runtimes.ListStored(r.Context(), principal(r), req)
		if err != nil {
			return iam.ListPage[json.RawMessage]{}, err
		}
		out := iam.ListPage[json.RawMessage]{Items: make([]json.RawMessage, len(pg.Items)), Continue: pg.Continue}
		for i, row := range pg.Items {
			if out.Items[i], err = a.runtimeAnswers.answer(row); err != nil {
				return iam.ListPage[json.RawMessage]{}, err
			}
		}
		return out, nil
	}, func(b json.RawMessage) json.RawMessage { return b })
}

// runtimeAnswers remembers, by uid, the JSON a list answered for a stored
// runtime together with the row it was made from, so a list read again
// (the dashboard's and scripts' polling) decodes and encodes only the
// runtimes that changed: decoding each stored spec and status and
// encoding them again was most of a list's cost. An answer is used only
// for the very row it was made from (every column equal), so whatever a
// write changed is answered anew; the bytes are those the list encoded.
type runtimeAnswers struct {
	mu sync.Mutex
	m  map[string]runtimeAnswer
}

type runtimeAnswer struct {
	row  store.Runtime
	json json.RawMessage
}

// maxRuntimeAnswers bounds the answers remembered (deleted runtimes'
// among them): past it they start over.
const maxRuntimeAnswers = 4096

func (c *runtimeAnswers) answer(row store.Runtime) (json.RawMessage, error) {
	c.mu.Lock()
	e, ok := c.m[row.UID]
	c.mu.Unlock()
	if ok && e.row == row {
		return e.json, nil
	}
	rt, err := orchestrator.Decode(row)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as answerList
	if err := enc.Encode(runtimeObject(rt)); err != nil {
		return nil, err
	}
	b := json.RawMessage(buf.Bytes()[:buf.Len()-1]) // Encode's newline
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxRuntimeAnswers {
		c.m = make(map[string]runtimeAnswer)
	}
	c.m[row.UID] = runtimeAnswer{row, b}
	c.mu.Unlock()
	return b, nil
}

func (a *API) getRuntime(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("watch") == "true" {
		if _, err := a.Runtimes.Get(r.Context(), principal(r), r.PathValue("name")); err != nil {
			a.fail(w, r, err)
			return
		}
		a.watchRuntimes(w, r, r.PathValue("name"))
		return
	}
	rt, err := a.Runtimes.Get(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, runtimeObject(rt))
}

func (a *API) deleteRuntime(w http.ResponseWriter, r *http.Request) {
	if err := a.Runtimes.Delete(r.Context(), principal(r), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// watchPoll is how often a watch looks for changes. Polling the store
// (rather than an in-process signal) sees changes made through any
// control-plane replica; on PostgreSQL the store's change feed wakes the
// watch sooner.
const watchPoll = 500 * time.Millisecond

// watchRuntimes streams runtime objects as server-sent events (see
// watchList). name limits it to one runtime.
func (a *API) watchRuntimes(w http.ResponseWriter, r *http.Request, name string) {
	p := principal(r)
	a.watchList(w, r, func(ctx context.Context) ([]watched, error) {
		rts, err := iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
			return a.Runtimes.List(ctx, p, req)
		})
		var out []watched
		for _, rt := range rts {
			if name == "" || rt.Name == name {
				out = append(out, watched{rt.Name, rt.Version, runtimeObject(rt)})
			}
		}
		return out, err
	})
}

// watched is one object of a watched list: its name, the version that
// changes with every write, and what to send.
type watched struct {
	name    string
	version int64
	object  any
}

// watchList streams a list as server-sent events: every object once at
// the start ("update"), then each one again whenever its version changes,
// and a "deleted" event when one goes.
func (a *API) watchList(w http.ResponseWriter, r *http.Request, list func(ctx context.Context) ([]watched, error)) {
	rc := httplimit.NewStream(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	seen := map[string]int64{}
	tick := time.NewTicker(watchPoll)
	defer tick.Stop()
	// A change made through any replica wakes the watch at once (the
	// store's change feed); the ticker stays the guarantee.
	changes, unsubscribe := a.Store.SubscribeChanges()
	defer unsubscribe()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	for {
		items, err := list(r.Context())
		if err != nil {
			return
		}
		rc.Extend()
		present := map[string]bool{}
		for _, it := range items {
			present[it.name] = true
			if seen[it.name] == it.version {
				continue
			}
			seen[it.name] = it.version
			b, _ := json.Marshal(it.object)
			fmt.Fprintf(w, "event: %s\nid: %d\ndata: %s\n\n", "update", it.version, b)
		}
		for n := range seen {
			if !present[n] {
				delete(seen, n)
				fmt.Fprintf(w, "event: deleted\ndata: {\"metadata\":{\"name\":%s}}\n\n", strconv.Quote(n))
			}
		}
		if err := rc.Flush(); err != nil {
			return
		}
		select {
		case <-r.Context().Done():
			return
		case <-keepAlive.C:
			rc.Extend()
			fmt.Fprint(w, ": keep-alive\n\n")
		case <-tick.C:
		case <-changes:
		}
	}
}
