package api

import (
	"context"
	"net/http"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// ---- Published APIs, plans, subscriptions (package apis decides) ----

// PublishedAPI is a published API as the API shows it.
type PublishedAPI struct {
	Metadata Metadata       `json:"metadata"`
	Spec     apis.APISpec   `json:"spec"`
	Status   *APIStatusBody `json:"status,omitempty"`
}

// APIStatusBody is what Sluice found in the API's BAR files, with the url
// of its OpenAPI document.
type APIStatusBody struct {
	apis.APIStatus
	DocumentURL string `json:"documentURL"`
}

// PlanObject is a plan as the API shows it.
type PlanObject struct {
	Metadata Metadata      `json:"metadata"`
	Spec     apis.PlanSpec `json:"spec"`
}

// SubscriptionObject is a subscription as the API shows it.
type SubscriptionObject struct {
	Metadata Metadata                 `json:"metadata"`
	Spec     apis.SubscriptionSpec    `json:"spec"`
	Status   *apis.SubscriptionStatus `json:"status,omitempty"`
}

func publishedMeta(o store.PublishedObject) Metadata {
	return Metadata{Name: o.Name, ID: o.ID, CreatedAt: timestamp(o.CreatedAt), CreatedBy: o.CreatedBy, UpdatedAt: timestamp(o.UpdatedAt)}
}

func (a *API) apiObject(x apis.API) PublishedAPI {
	return PublishedAPI{Metadata: publishedMeta(x.PublishedObject), Spec: x.Spec,
		Status: &APIStatusBody{APIStatus: x.Status, DocumentURL: a.PublicURL + "/api/v1/apis/" + x.Name + "/openapi"}}
}

func planObject(x apis.Plan) PlanObject {
	return PlanObject{Metadata: publishedMeta(x.PublishedObject), Spec: x.Spec}
}

func subscriptionObject(x apis.Subscription) SubscriptionObject {
	st := x.Status
	return SubscriptionObject{Metadata: publishedMeta(x.PublishedObject), Spec: x.Spec, Status: &st}
}

// putPublished decodes an object of shape {metadata, spec}, names it and
// hands its spec to put; the answer is 201 for a new object, 200 else.
func putPublished[In any, T any, O any](a *API, createOnly bool, meta func(*In) *Metadata,
	put func(ctx context.Context, p iam.Principal, name string, in *In, createOnly bool) (T, bool, error), object func(T) O) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var in In
		if err := decodeJSON(w, r, &in); err != nil {
			a.fail(w, r, err)
			return
		}
		m := meta(&in)
		name, err := nameFor(r, m.Name)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		x, created, err := put(r.Context(), principal(r), name, &in, createOnly)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		writeJSON(w, createdStatus(created), object(x))
	}
}

func (a *API) putAPI(createOnly bool) http.HandlerFunc {
	return putPublished(a, createOnly, func(in *PublishedAPI) *Metadata { return &in.Metadata },
		func(ctx context.Context, p iam.Principal, name string, in *PublishedAPI, c bool) (apis.API, bool, error) {
			return a.APIs.PutAPI(ctx, p, name, in.Spec, c)
		}, a.apiObject)
}

func (a *API) listAPIs(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("watch") == "true" {
		a.watchAPIs(w, r)
		return
	}
	answerList(a, w, r, "apis", func(req iam.ListRequest) (iam.ListPage[apis.API], error) {
		return a.APIs.ListAPIs(r.Context(), principal(r), req)
	}, a.apiObject)
}

// watchAPIs streams the instance's APIs as server-sent events.
func (a *API) watchAPIs(w http.ResponseWriter, r *http.Request) {
	p := principal(r)
	a.watchList(w, r, func(ctx context.Context) ([]watched, error) {
		xs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return a.APIs.ListAPIs(ctx, p, req) })
		out := make([]watched, 0, len(xs))
		for _, x := range xs {
			out = append(out, watched{x.Name, x.Version, a.apiObject(x)})
		}
		return out, err
	})
}

func (a *API) getAPI(w http.ResponseWriter, r *http.Request) {
	x, err := a.APIs.GetAPI(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, a.apiObject(x))
}

// getAPIDocument serves the API's OpenAPI document as a download.
func (a *API) getAPIDocument(w http.ResponseWriter, r *http.Request) {
	x, doc, err := a.APIs.Document(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+x.Name+`-openapi.json"`)
	_, _ = w.Write(doc)
}

func (a *API) deleteAPI(w http.ResponseWriter, r *http.Request) {
	if err := a.APIs.DeleteAPI(r.Context(), principal(r), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) putPlan(createOnly bool) http.HandlerFunc {
	return putPublished(a, createOnly, func(in *PlanObject) *Metadata { return &in.Metadata },
		func(ctx context.Context, p iam.Principal, name string, in *PlanObject, c bool) (apis.Plan, bool, error) {
			return a.APIs.PutPlan(ctx, p, name, in.Spec, c)
		}, planObject)
}

func (a *API) listPlans(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "plans", func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) {
		return a.APIs.ListPlans(r.Context(), principal(r), req)
	}, planObject)
}

func (a *API) getPlan(w http.ResponseWriter, r *http.Request) {
	x, err := a.APIs.GetPlan(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, planObject(x))
}

func (a *API) deletePlan(w http.ResponseWriter, r *http.Request) {
	force, err := forceParam(r)
	if err == nil {
		err = a.APIs.DeletePlan(r.Context(), principal(r), r.PathValue("name"), force)
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *API) putSubscription(createOnly bool) http.HandlerFunc {
	return putPublished(a, createOnly, func(in *SubscriptionObject) *Metadata { return &in.Metadata },
		func(ctx context.Context, p iam.Principal, name string, in *SubscriptionObject, c bool) (apis.Subscription, bool, error) {
			return a.APIs.PutSubscription(ctx, p, name, in.Spec, c)
		}, subscriptionObject)
}

func (a *API) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "subscriptions", func(req iam.ListRequest) (iam.ListPage[apis.Subscription], error) {
		return a.APIs.ListSubscriptions(r.Context(), principal(r), req)
	}, subscriptionObject)
}

func (a *API) getSubscription(w http.ResponseWriter, r *http.Request) {
	x, err := a.APIs.GetSubscription(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, subscriptionObject(x))
}

func (a *API) approveSubscription(w http.ResponseWriter, r *http.Request) {
	x, err := a.APIs.ApproveSubscription(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, subscriptionObject(x))
}

func (a *API) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if err := a.APIs.DeleteSubscription(r.Context(), principal(r), r.PathValue("name")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// generateBasicAuth makes a runtime's flow basic credential and shows its
// password this once.
func (a *API) generateBasicAuth(w http.ResponseWriter, r *http.Request) {
	user, pw, err := a.APIs.GenerateBasicAuth(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"username": user, "password": pw.Reveal()})
}
