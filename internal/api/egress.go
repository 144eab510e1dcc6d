package api

import (
	"net/http"

	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// egressPolicy is the body of GET and PUT /api/v1/egress-policy.
type egressPolicy struct {
	Allow []string `json:"allow"`
}

func (a *API) egress() *orchestrator.EgressPolicies {
	if a.Egress != nil {
		return a.Egress
	}
	return &orchestrator.EgressPolicies{Store: a.Store, IAM: a.IAM}
}

func (a *API) getEgressPolicy(w http.ResponseWriter, r *http.Request) {
	allow, err := a.egress().Get(r.Context(), principal(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, egressPolicy{Allow: allow})
}

func (a *API) putEgressPolicy(w http.ResponseWriter, r *http.Request) {
	var in egressPolicy
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	allow, err := a.egress().Put(r.Context(), principal(r), in.Allow)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, egressPolicy{Allow: allow})
}
