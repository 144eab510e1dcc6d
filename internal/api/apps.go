package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// ---- consumer apps: catalogs, consumer orgs, apps, credentials, leases ----

// Consumer is a catalog, consumer org or app as the API shows it.
type Consumer struct {
	Metadata Metadata       `json:"metadata"`
	Spec     ConsumerSpec   `json:"spec"`
	Status   ConsumerStatus `json:"status"`
}

// ConsumerSpec is what a caller sets. State and CredentialPolicy are
// for apps only.
type ConsumerSpec struct {
	Title            string            `json:"title"`
	Summary          string            `json:"summary"`
	State            string            `json:"state,omitempty"`
	CredentialPolicy *CredentialPolicy `json:"credentialPolicy,omitempty"`
}

// CredentialPolicy bounds an app's leases; durations like "1h", "30m".
type CredentialPolicy struct {
	DefaultTTL string `json:"defaultTtl,omitempty"`
	MaxTTL     string `json:"maxTtl,omitempty"`
}

// ConsumerStatus names the parents (read-only).
type ConsumerStatus struct {
	Catalog     string `json:"catalog,omitempty"`
	ConsumerOrg string `json:"consumerOrg,omitempty"`
	UpdatedBy   string `json:"updatedBy,omitempty"`
}

func entityMeta(e store.Entity) Metadata {
	return Metadata{Name: e.Name, ID: e.ID, CreatedAt: timestamp(e.CreatedAt), CreatedBy: e.CreatedBy, UpdatedAt: timestamp(e.UpdatedAt)}
}

func catalogObject(c store.Catalog) Consumer {
	return Consumer{Metadata: entityMeta(c.Entity), Spec: ConsumerSpec{Title: c.Title, Summary: c.Summary}, Status: ConsumerStatus{UpdatedBy: c.UpdatedBy}}
}

func consumerOrgObject(catalog string) func(store.ConsumerOrg) Consumer {
	return func(o store.ConsumerOrg) Consumer {
		return Consumer{Metadata: entityMeta(o.Entity), Spec: ConsumerSpec{Title: o.Title, Summary: o.Summary},
			Status: ConsumerStatus{Catalog: catalog, UpdatedBy: o.UpdatedBy}}
	}
}

func appObject(catalog, corg string) func(store.App) Consumer {
	return func(a store.App) Consumer {
		o := Consumer{Metadata: entityMeta(a.Entity), Spec: ConsumerSpec{Title: a.Title, Summary: a.Summary, State: a.State},
			Status: ConsumerStatus{Catalog: catalog, ConsumerOrg: corg, UpdatedBy: a.UpdatedBy}}
		if a.DefaultTTL != 0 || a.MaxTTL != 0 {
			o.Spec.CredentialPolicy = &CredentialPolicy{DefaultTTL: duration(a.DefaultTTL), MaxTTL: duration(a.MaxTTL)}
		}
		return o
	}
}

// duration writes a duration the way it is read back ("1h30m", "45s").
func duration(d time.Duration) string {
	if d == 0 {
		return ""
	}
	s := d.String()
	for _, cut := range []struct{ suffix, repl string }{{"m0s", "m"}, {"h0m", "h"}} {
		if len(s) > len(cut.suffix) && s[len(s)-len(cut.suffix):] == cut.suffix {
			s = s[:len(s)-len(cut.suffix)] + cut.repl
		}
	}
	return s
}

// parseDuration reads a duration field; "" is zero.
func parseDuration(field, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, &badRequest{http.StatusBadRequest, "BadRequest", fmt.Sprintf("%s %q is not a duration such as \"1h\", \"30m\" or \"90s\"", field, v)}
	}
	return d, nil
}

// AppCredential is an app credential (or lease) as the API shows it.
type AppCredential struct {
	Metadata Metadata            `json:"metadata"`
	Spec     AppCredentialSpec   `json:"spec"`
	Status   AppCredentialStatus `json:"status"`
}

// AppCredentialSpec is what a caller sets.
type AppCredentialSpec struct {
	Title   string `json:"title"`
	Summary string `json:"summary"`
}

// AppCredentialStatus is what the server reports; never the secret.
type AppCredentialStatus struct {
	ClientID     string `json:"clientId"`
	SecretHint   string `json:"secretHint"`
	Lease        bool   `json:"lease"`
	ExpiresAt    string `json:"expiresAt,omitempty"`
	MaxExpiresAt string `json:"maxExpiresAt,omitempty"`
}

// AppCredentialCreated is the one answer carrying the client secret.
type AppCredentialCreated struct {
	AppCredential
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
}

// leaseTime formats lease expiries to the millisecond: leases are short.
func leaseTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}

func appCredentialObject(c store.AppCredential) AppCredential {
	return AppCredential{
		Metadata: Metadata{Name: c.Name, ID: c.ID, CreatedAt: timestamp(c.CreatedAt), CreatedBy: c.CreatedBy, UpdatedAt: timestamp(c.UpdatedAt)},
		Spec:     AppCredentialSpec{Title: c.Title, Summary: c.Summary},
		Status: AppCredentialStatus{ClientID: c.ClientID, SecretHint: c.SecretHint, Lease: c.Leased(),
			ExpiresAt: leaseTime(c.ExpiresAt), MaxExpiresAt: leaseTime(c.MaxExpiresAt)},
	}
}

func appPath(r *http.Request) apps.Path {
	return apps.Path{Catalog: r.PathValue("catalog"), ConsumerOrg: r.PathValue("corg"), App: r.PathValue("app")}
}

// force reads ?force=true.
func force(r *http.Request) (bool, error) {
	v := r.URL.Query().Get("force")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, &badRequest{http.StatusBadRequest, "BadRequest", "force must be true or false"}
	}
	return b, nil
}

// decodeConsumer reads a catalog, consumer org or app as written; a
// metadata.name that is not the path's is refused by the service.
func (a *API) decodeConsumer(w http.ResponseWriter, r *http.Request) (apps.AppInput, bool) {
	var in Consumer
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return apps.AppInput{}, false
	}
	out := apps.AppInput{Input: apps.Input{Name: in.Metadata.Name, Title: in.Spec.Title, Summary: in.Spec.Summary}, State: in.Spec.State}
	if p := in.Spec.CredentialPolicy; p != nil {
		def, err := parseDuration("spec.credentialPolicy.defaultTtl", p.DefaultTTL)
		if err != nil {
			a.fail(w, r, err)
			return out, false
		}
		max, err := parseDuration("spec.credentialPolicy.maxTtl", p.MaxTTL)
		if err != nil {
			a.fail(w, r, err)
			return out, false
		}
		out.Policy = &apps.CredentialPolicy{DefaultTTL: def, MaxTTL: max}
	}
	return out, true
}

// answer writes v, or the error.
func (a *API) answer(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

func (a *API) deleted(w http.ResponseWriter, r *http.Request, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// catalogs

func (a *API) listCatalogs(w http.ResponseWriter, r *http.Request) {
	answerList(a, w, r, "catalogs", func(req iam.ListRequest) (iam.ListPage[store.Catalog], error) {
		return a.Apps.ListCatalogs(r.Context(), principal(r), req)
	}, catalogObject)
}

func (a *API) createCatalog(w http.ResponseWriter, r *http.Request) {
	in, ok := a.decodeConsumer(w, r)
	if !ok {
		return
	}
	c, err := a.Apps.CreateCatalog(r.Context(), principal(r), in.Input)
	a.answer(w, r, http.StatusCreated, catalogObject(c), err)
}

func (a *API) getCatalog(w http.ResponseWriter, r *http.Request) {
	c, err := a.Apps.GetCatalog(r.Context(), principal(r), r.PathValue("catalog"))
	a.answer(w, r, http.StatusOK, catalogObject(c), err)
}

func (a *API) putCatalog(w http.ResponseWriter, r *http.Request) {
	in, ok := a.decodeConsumer(w, r)
	if !ok {
		return
	}
	c, created, err := a.Apps.PutCatalog(r.Context(), principal(r), r.PathValue("catalog"), in.Input)
	a.answer(w, r, createdStatus(created), catalogObject(c), err)
}

func (a *API) deleteCatalog(w http.ResponseWriter, r *http.Request) {
	f, err := force(r)
	if err == nil {
		err = a.Apps.DeleteCatalog(r.Context(), principal(r), r.PathValue("catalog"), f)
	}
	a.deleted(w, r, err)
}

// consumer orgs

func (a *API) listConsumerOrgs(w http.ResponseWriter, r *http.Request) {
	c, err := a.Apps.GetCatalog(r.Context(), principal(r), r.PathValue("catalog"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	answerList(a, w, r, "consumerOrgs", func(req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
		return a.Apps.ListConsumerOrgs(r.Context(), principal(r), c.ID, req)
	}, consumerOrgObject(c.Name))
}

func (a *API) createConsumerOrg(w http.ResponseWriter, r *http.Request) {
	in, ok := a.decodeConsumer(w, r)
	if !ok {
		return
	}
	c, err := a.Apps.GetCatalog(r.Context(), principal(r), r.PathValue("catalog"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.Apps.CreateConsumerOrg(r.Context(), principal(r), c.ID, in.Input)
	a.answer(w, r, http.StatusCreated, consumerOrgObject(c.Name)(o), err)
}

func (a *API) getConsumerOrg(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.GetConsumerOrg(r.Context(), principal(r), appPath(r))
	a.answer(w, r, http.StatusOK, consumerOrgObject(res.Catalog.Name)(res.ConsumerOrg), err)
}

func (a *API) putConsumerOrg(w http.ResponseWriter, r *http.Request) {
	in, ok := a.decodeConsumer(w, r)
	if !ok {
		return
	}
	res, created, err := a.Apps.PutConsumerOrg(r.Context(), principal(r), appPath(r), in.Input)
	a.answer(w, r, createdStatus(created), consumerOrgObject(res.Catalog.Name)(res.ConsumerOrg), err)
}

func (a *API) deleteConsumerOrg(w http.ResponseWriter, r *http.Request) {
	f, err := force(r)
	if err == nil {
		err = a.Apps.DeleteConsumerOrg(r.Context(), principal(r), appPath(r), f)
	}
	a.deleted(w, r, err)
}

// apps

func (a *API) listApps(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.GetConsumerOrg(r.Context(), principal(r), appPath(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	answerList(a, w, r, "apps", func(req iam.ListRequest) (iam.ListPage[store.App], error) {
		return a.Apps.ListApps(r.Context(), principal(r), apps.Path{Catalog: res.Catalog.ID, ConsumerOrg: res.ConsumerOrg.ID}, req)
	}, appObject(res.Catalog.Name, res.ConsumerOrg.Name))
}

func (a *API) createApp(w http.ResponseWriter, r *http.Request) {
	in, ok := a.decodeConsumer(w, r)
	if !ok {
		return
	}
	res, err := a.Apps.CreateApp(r.Context(), principal(r), appPath(r), in)
	a.answer(w, r, http.StatusCreated, appObject(res.Catalog.Name, res.ConsumerOrg.Name)(res.App), err)
}

func (a *API) getApp(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.GetApp(r.Context(), principal(r), appPath(r))
	a.answer(w, r, http.StatusOK, appObject(res.Catalog.Name, res.ConsumerOrg.Name)(res.App), err)
}

func (a *API) putApp(w http.ResponseWriter, r *http.Request) {
	in, ok := a.decodeConsumer(w, r)
	if !ok {
		return
	}
	res, created, err := a.Apps.PutApp(r.Context(), principal(r), appPath(r), in)
	a.answer(w, r, createdStatus(created), appObject(res.Catalog.Name, res.ConsumerOrg.Name)(res.App), err)
}

func (a *API) deleteApp(w http.ResponseWriter, r *http.Request) {
	f, err := force(r)
	if err == nil {
		err = a.Apps.DeleteApp(r.Context(), principal(r), appPath(r), f)
	}
	a.deleted(w, r, err)
}

// credentials and leases

// leaseRequest is the body of a lease create.
type leaseRequest struct {
	Metadata Metadata          `json:"metadata"`
	Spec     AppCredentialSpec `json:"spec"`
	TTL      string            `json:"ttl"`
}

func (a *API) listAppCredentials(leases bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		list, key := a.Apps.ListCredentials, "credentials"
		if leases {
			list, key = a.Apps.ListLeases, "leases"
		}
		answerList(a, w, r, key, func(req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
			return list(r.Context(), principal(r), appPath(r), req)
		}, appCredentialObject)
	}
}

func (a *API) createAppCredential(lease bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var body leaseRequest
		var err error
		if lease {
			err = decodeJSON(w, r, &body)
		} else {
			var c AppCredential
			err = decodeJSON(w, r, &c)
			body.Metadata, body.Spec = c.Metadata, c.Spec
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		in := apps.CredentialInput{Input: apps.Input{Name: body.Metadata.Name, Title: body.Spec.Title, Summary: body.Spec.Summary}}
		var is apps.Issued
		if lease {
			ttl, perr := parseDuration("ttl", body.TTL)
			if perr != nil {
				a.fail(w, r, perr)
				return
			}
			_, is, err = a.Apps.CreateLease(r.Context(), principal(r), appPath(r), in, ttl)
		} else {
			_, is, err = a.Apps.CreateCredential(r.Context(), principal(r), appPath(r), in)
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusCreated, AppCredentialCreated{AppCredential: appCredentialObject(is.Credential),
			ClientID: is.Credential.ClientID, ClientSecret: is.Secret.Reveal()})
	}
}

func (a *API) getAppCredential(lease bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ref := r.PathValue("credential")
		_, c, err := a.Apps.GetCredential(r.Context(), principal(r), appPath(r), ref)
		if err == nil && lease && !c.Leased() {
			err = &badRequest{http.StatusNotFound, "NotFound", "lease " + ref + " not found: it is a permanent credential"}
		}
		a.answer(w, r, http.StatusOK, appCredentialObject(c), err)
	}
}

func (a *API) deleteAppCredential(lease bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		del := a.Apps.DeleteCredential
		if lease {
			del = a.Apps.RevokeLease
		}
		a.deleted(w, r, del(r.Context(), principal(r), appPath(r), r.PathValue("credential")))
	}
}

// LeaseRenewed is the answer of a renewal: the lease and whether its
// expiry was capped at creation + the app's maxTtl.
type LeaseRenewed struct {
	AppCredential
	Capped bool `json:"capped"`
}

func (a *API) renewLease(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Increment string `json:"increment"`
	}
	if err := decodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	inc, err := parseDuration("increment", body.Increment)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	_, rn, err := a.Apps.RenewLease(r.Context(), principal(r), appPath(r), r.PathValue("credential"), inc)
	a.answer(w, r, http.StatusOK, LeaseRenewed{AppCredential: appCredentialObject(rn.Credential), Capped: rn.Capped}, err)
}

func (a *API) revokeLeases(w http.ResponseWriter, r *http.Request) {
	n, err := a.Apps.RevokeLeases(r.Context(), principal(r), appPath(r))
	a.answer(w, r, http.StatusOK, map[string]int{"revoked": n}, err)
}
