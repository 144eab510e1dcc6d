package apic

import (
	"net/http"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

const apiVersion = "2.0.0"

// Object is every API Connect object this surface returns; the url
// fields absent from a kind are left out.
type Object struct {
	Type           string   `json:"type"`
	APIVersion     string   `json:"api_version"`
	ID             string   `json:"id"`
	Name           string   `json:"name"`
	Title          string   `json:"title"`
	Summary        string   `json:"summary"`
	State          string   `json:"state,omitempty"`
	LifecycleState string   `json:"lifecycle_state,omitempty"`
	Redirects      []string `json:"redirect_endpoints,omitempty"`
	ClientID       string   `json:"client_id,omitempty"`
	ClientSecret   string   `json:"client_secret,omitempty"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
	OrgURL         string   `json:"org_url,omitempty"`
	CatalogURL     string   `json:"catalog_url,omitempty"`
	ConsumerOrgURL string   `json:"consumer_org_url,omitempty"`
	AppURL         string   `json:"app_url,omitempty"`
	URL            string   `json:"url"`
}

func apicTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// urls builds the absolute url fields of a path of ids.
type urls struct {
	base, org, catalog, corg, app string
}

func (u urls) orgURL() string     { return u.base + "/api/orgs/" + u.org }
func (u urls) catalogURL() string { return u.base + "/api/catalogs/" + u.org + "/" + u.catalog }
func (u urls) corgURL() string {
	return u.base + "/api/consumer-orgs/" + u.org + "/" + u.catalog + "/" + u.corg
}
func (u urls) appURL() string {
	return u.base + "/api/apps/" + u.org + "/" + u.catalog + "/" + u.corg + "/" + u.app
}

func (a *Adapter) urls(r *http.Request, res apps.Resolved) urls {
	return urls{base: strings.TrimRight(a.PublicURL, "/"), org: principal(r).InstanceID, catalog: res.Catalog.ID,
		corg: res.ConsumerOrg.ID, app: res.App.ID}
}

func entity(typ string, e store.Entity) Object {
	return Object{Type: typ, APIVersion: apiVersion, ID: e.ID, Name: e.Name, Title: e.Title, Summary: e.Summary,
		State: "enabled", CreatedAt: apicTime(e.CreatedAt), UpdatedAt: apicTime(e.UpdatedAt)}
}

func catalogObj(u urls, c store.Catalog) Object {
	u.catalog = c.ID
	o := entity("catalog", c.Entity)
	o.OrgURL, o.URL = u.orgURL(), u.catalogURL()
	return o
}

func corgObj(u urls, c store.ConsumerOrg) Object {
	u.corg = c.ID
	o := entity("consumer_org", c.Entity)
	o.OrgURL, o.CatalogURL, o.URL = u.orgURL(), u.catalogURL(), u.corgURL()
	return o
}

func appObj(u urls, a store.App) Object {
	u.corg, u.app = a.ConsumerOrgID, a.ID
	o := entity("app", a.Entity)
	o.State, o.LifecycleState, o.Redirects = a.State, "production", []string{}
	o.OrgURL, o.CatalogURL, o.ConsumerOrgURL, o.URL = u.orgURL(), u.catalogURL(), u.corgURL(), u.appURL()
	return o
}

func credObj(u urls, c store.AppCredential) Object {
	return Object{Type: "credential", APIVersion: apiVersion, ID: c.ID, Name: c.Name, Title: c.Title, Summary: c.Summary,
		ClientID: c.ClientID, CreatedAt: apicTime(c.CreatedAt), UpdatedAt: apicTime(c.UpdatedAt),
		OrgURL: u.orgURL(), CatalogURL: u.catalogURL(), ConsumerOrgURL: u.corgURL(), AppURL: u.appURL(),
		URL: u.appURL() + "/credentials/" + c.ID}
}

func path(r *http.Request) apps.Path {
	return apps.Path{Catalog: r.PathValue("catalog"), ConsumerOrg: r.PathValue("corg"), App: r.PathValue("app")}
}

// ---- orgs (the instance is the provider org) ----

func (a *Adapter) orgObj(r *http.Request) (Object, error) {
	in, err := a.Store.GetInstance(r.Context(), principal(r).InstanceID)
	if err != nil {
		return Object{}, err
	}
	u := urls{base: strings.TrimRight(a.PublicURL, "/"), org: in.ID}
	return Object{Type: "org", APIVersion: apiVersion, ID: in.ID, Name: in.Name, Title: in.Name, State: "enabled",
		CreatedAt: apicTime(in.CreatedAt), UpdatedAt: apicTime(in.CreatedAt), URL: u.orgURL()}, nil
}

func (a *Adapter) listOrgs(w http.ResponseWriter, r *http.Request) {
	o, err := a.orgObj(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	count, list := onePage([]Object{o})
	answerList(a, w, r, count, list, func(o Object) Object { return o })
}

func (a *Adapter) getOrg(w http.ResponseWriter, r *http.Request) {
	o, err := a.orgObj(r)
	a.answer(w, r, http.StatusOK, o, err)
}

func (a *Adapter) answer(w http.ResponseWriter, r *http.Request, status int, v any, err error) {
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, status, v)
}

// ---- catalogs, consumer orgs, apps ----

func (a *Adapter) listCatalogs(w http.ResponseWriter, r *http.Request) {
	ctx, p := r.Context(), principal(r)
	u := a.urls(r, apps.Resolved{})
	answerList(a, w, r, func() (int, error) { return a.Apps.CountCatalogs(ctx, p) },
		func(req iam.ListRequest) (iam.ListPage[store.Catalog], error) {
			return a.Apps.ListCatalogs(ctx, p, req)
		},
		func(c store.Catalog) Object { return catalogObj(u, c) })
}

func (a *Adapter) getCatalog(w http.ResponseWriter, r *http.Request) {
	c, err := a.Apps.GetCatalog(r.Context(), principal(r), r.PathValue("catalog"))
	a.answer(w, r, http.StatusOK, catalogObj(a.urls(r, apps.Resolved{}), c), err)
}

func (a *Adapter) listConsumerOrgs(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.Resolve(r.Context(), principal(r), apps.Path{Catalog: r.PathValue("catalog")})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, p := r.Context(), principal(r)
	u := a.urls(r, res)
	answerList(a, w, r, func() (int, error) { return a.Apps.CountConsumerOrgs(ctx, p, res.Catalog.ID) },
		func(req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
			return a.Apps.ListConsumerOrgs(ctx, p, res.Catalog.ID, req)
		},
		func(o store.ConsumerOrg) Object { return corgObj(u, o) })
}

func (a *Adapter) getConsumerOrg(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.GetConsumerOrg(r.Context(), principal(r), path(r))
	a.answer(w, r, http.StatusOK, corgObj(a.urls(r, res), res.ConsumerOrg), err)
}

// createBody is the body of the creates: read-only members API Connect
// clients send back (type, url, …) are accepted and ignored.
type createBody struct {
	Name         string `json:"name"`
	Title        string `json:"title"`
	Summary      string `json:"summary"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

func (a *Adapter) createConsumerOrg(w http.ResponseWriter, r *http.Request) {
	a.idempotent(w, r, func(b createBody) (int, any, error) {
		res, err := a.Apps.Resolve(r.Context(), principal(r), apps.Path{Catalog: r.PathValue("catalog")})
		if err != nil {
			return 0, nil, err
		}
		o, err := a.Apps.CreateConsumerOrg(r.Context(), principal(r), res.Catalog.ID, apps.Input{Name: b.Name, Title: b.Title, Summary: b.Summary})
		return http.StatusCreated, corgObj(a.urls(r, res), o), err
	})
}

func (a *Adapter) listCatalogApps(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.Resolve(r.Context(), principal(r), apps.Path{Catalog: r.PathValue("catalog")})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.answerApps(w, r, res, apps.Path{Catalog: res.Catalog.ID})
}

func (a *Adapter) listApps(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.GetConsumerOrg(r.Context(), principal(r), path(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.answerApps(w, r, res, apps.Path{Catalog: res.Catalog.ID, ConsumerOrg: res.ConsumerOrg.ID})
}

// answerApps lists the apps of a catalog, or of one consumer org (ids).
func (a *Adapter) answerApps(w http.ResponseWriter, r *http.Request, res apps.Resolved, ids apps.Path) {
	ctx, p := r.Context(), principal(r)
	u := a.urls(r, res)
	answerList(a, w, r, func() (int, error) { return a.Apps.CountApps(ctx, p, ids) },
		func(req iam.ListRequest) (iam.ListPage[store.App], error) { return a.Apps.ListApps(ctx, p, ids, req) },
		func(x store.App) Object { return appObj(u, x) })
}

func (a *Adapter) createApp(w http.ResponseWriter, r *http.Request) {
	a.idempotent(w, r, func(b createBody) (int, any, error) {
		res, err := a.Apps.CreateApp(r.Context(), principal(r), path(r), apps.AppInput{Input: apps.Input{Name: b.Name, Title: b.Title, Summary: b.Summary}})
		return http.StatusCreated, appObj(a.urls(r, res), res.App), err
	})
}

func (a *Adapter) getApp(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.GetApp(r.Context(), principal(r), path(r))
	a.answer(w, r, http.StatusOK, appObj(a.urls(r, res), res.App), err)
}

// ---- credentials ----

func (a *Adapter) listCredentials(w http.ResponseWriter, r *http.Request) {
	res, err := a.Apps.Resolve(r.Context(), principal(r), path(r))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ctx, p := r.Context(), principal(r)
	u := a.urls(r, res)
	answerList(a, w, r, func() (int, error) { return a.Apps.CountCredentials(ctx, p, res.App.ID) },
		func(req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
			return a.Apps.ListCredentials(ctx, p, path(r), req)
		},
		func(c store.AppCredential) Object { return credObj(u, c) })
}

func (a *Adapter) createCredential(w http.ResponseWriter, r *http.Request) {
	a.idempotent(w, r, func(b createBody) (int, any, error) {
		if b.ClientID != "" || b.ClientSecret != "" {
			return 0, nil, bad("client_id and client_secret are chosen by the server: leave them out")
		}
		res, is, err := a.Apps.CreateCredential(r.Context(), principal(r), path(r),
			apps.CredentialInput{Input: apps.Input{Name: b.Name, Title: b.Title, Summary: b.Summary}})
		o := credObj(a.urls(r, res), is.Credential)
		o.ClientSecret = is.Secret.Reveal()
		return http.StatusCreated, o, err
	})
}

func (a *Adapter) getCredential(w http.ResponseWriter, r *http.Request) {
	res, c, err := a.Apps.GetCredential(r.Context(), principal(r), path(r), r.PathValue("credential"))
	a.answer(w, r, http.StatusOK, credObj(a.urls(r, res), c), err)
}

func (a *Adapter) deleteCredential(w http.ResponseWriter, r *http.Request) {
	if err := a.Apps.DeleteCredential(r.Context(), principal(r), path(r), r.PathValue("credential")); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
