package web

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// --- consumer apps: catalogs, consumer orgs, apps, credentials, leases ----

// The consumer apps page is a tree — catalogs, their consumer orgs, the
// orgs' apps — of which each level shows at most treeRows entries and
// links to a page of its own that lists them all, a page at a time: a
// catalog's consumer orgs (/apps/{catalog}), an org's apps
// (/apps/{catalog}/{corg}). The tree itself pages its catalogs.
const treeRows = 10

type appsPage struct {
	Catalogs []appsCatalog
}

type appsCatalog struct {
	Catalog  store.Catalog
	Orgs     []appsOrg
	MoreOrgs bool // the catalog has more consumer orgs than the tree shows
}

type appsOrg struct {
	Org      store.ConsumerOrg
	Apps     []store.App
	MoreApps bool // the org has more apps than the tree shows
}

func (d *Dashboard) showApps(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	cats, pg, err := tablePageOf(r, treeRows, func(req iam.ListRequest) (iam.ListPage[store.Catalog], error) {
		return d.Apps.ListCatalogs(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = "/apps" // also when a form's answer shows the page
	var page appsPage
	v.Pager = pg
	for _, c := range cats {
		orgs, err := d.Apps.ListConsumerOrgs(r.Context(), p, c.ID, iam.ListRequest{Limit: treeRows})
		if err != nil {
			d.fail(w, r, err)
			return
		}
		ac := appsCatalog{Catalog: c, MoreOrgs: orgs.Continue != ""}
		for _, o := range orgs.Items {
			as, err := d.Apps.ListApps(r.Context(), p, apps.Path{Catalog: c.ID, ConsumerOrg: o.ID}, iam.ListRequest{Limit: treeRows})
			if err != nil {
				d.fail(w, r, err)
				return
			}
			ac.Orgs = append(ac.Orgs, appsOrg{Org: o, Apps: as.Items, MoreApps: as.Continue != ""})
		}
		page.Catalogs = append(page.Catalogs, ac)
	}
	v.Title, v.Nav, v.Page = "Consumer apps", "apps", page
	d.render(w, r, status, "apps", v)
}

func (d *Dashboard) appsPage(w http.ResponseWriter, r *http.Request) {
	d.showApps(w, r, http.StatusOK, view{})
}

// catalogPage is one catalog's consumer orgs, a page at a time.
type catalogPage struct {
	Catalog store.Catalog
	Orgs    []store.ConsumerOrg
}

func (d *Dashboard) showCatalog(w http.ResponseWriter, r *http.Request, status int, catalog string, v view) {
	p := principal(r)
	c, err := d.Apps.GetCatalog(r.Context(), p, catalog)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	orgs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
		return d.Apps.ListConsumerOrgs(r.Context(), p, c.ID, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = "/apps/" + url.PathEscape(c.Name)
	v.Pager = pg
	v.Title, v.Nav, v.Page = "Catalog "+c.Name, "apps", catalogPage{Catalog: c, Orgs: orgs}
	d.render(w, r, status, "catalog", v)
}

func (d *Dashboard) catalogPage(w http.ResponseWriter, r *http.Request) {
	d.showCatalog(w, r, http.StatusOK, r.PathValue("catalog"), view{})
}

// orgPage is one consumer org's apps, a page at a time.
type orgPage struct {
	Res  apps.Resolved // its catalog and itself
	Apps []store.App
}

func (d *Dashboard) showOrg(w http.ResponseWriter, r *http.Request, status int, path apps.Path, v view) {
	p := principal(r)
	res, err := d.Apps.GetConsumerOrg(r.Context(), p, path)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	as, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[store.App], error) {
		return d.Apps.ListApps(r.Context(), p, apps.Path{Catalog: res.Catalog.ID, ConsumerOrg: res.ConsumerOrg.ID}, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = "/apps/" + url.PathEscape(res.Catalog.Name) + "/" + url.PathEscape(res.ConsumerOrg.Name)
	v.Pager = pg
	v.Title, v.Nav, v.Page = "Consumer org "+res.ConsumerOrg.Name, "apps", orgPage{Res: res, Apps: as}
	d.render(w, r, status, "corg", v)
}

func (d *Dashboard) orgPage(w http.ResponseWriter, r *http.Request) {
	d.showOrg(w, r, http.StatusOK, apps.Path{Catalog: r.PathValue("catalog"), ConsumerOrg: r.PathValue("corg")}, view{})
}

// A form of the tree page, of a catalog's page (back=catalog) or of an
// org's page (back=org) answers on the page it came from.

func (d *Dashboard) createConsumerOrg(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"catalog": r.FormValue("catalog"), "name": strings.TrimSpace(r.FormValue("name")), "title": r.FormValue("title")}
	if _, err := d.Apps.CreateConsumerOrg(r.Context(), principal(r), form["catalog"], apps.Input{Name: form["name"], Title: form["title"]}); err != nil {
		status, msg := d.message(r, err)
		if r.FormValue("back") == "catalog" {
			d.showCatalog(w, r, status, form["catalog"], view{Form: form, FormErr: msg})
			return
		}
		d.showApps(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	to := "/apps"
	if r.FormValue("back") == "catalog" {
		to += "/" + url.PathEscape(form["catalog"])
	}
	d.redirect(w, r, to, "consumer org "+form["name"]+" created")
}

func (d *Dashboard) createApp(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"org": r.FormValue("org"), "name": strings.TrimSpace(r.FormValue("name")), "title": r.FormValue("title"),
		"defaultTtl": strings.TrimSpace(r.FormValue("defaultTtl")), "maxTtl": strings.TrimSpace(r.FormValue("maxTtl"))}
	catalog, org, _ := strings.Cut(form["org"], "/")
	path := apps.Path{Catalog: catalog, ConsumerOrg: org}
	in := apps.AppInput{Input: apps.Input{Name: form["name"], Title: form["title"]}}
	var pol apps.CredentialPolicy
	var err error
	if pol.DefaultTTL, err = formDuration("default TTL", form["defaultTtl"]); err == nil {
		pol.MaxTTL, err = formDuration("max TTL", form["maxTtl"])
	}
	if err == nil {
		in.Policy = &pol
		_, err = d.Apps.CreateApp(r.Context(), principal(r), path, in)
	}
	fromOrg := r.FormValue("back") == "org"
	if err != nil {
		status, msg := d.message(r, err)
		if fromOrg {
			d.showOrg(w, r, status, path, view{Form: form, SpecErr: msg})
			return
		}
		d.showApps(w, r, status, view{Form: form, SpecErr: msg})
		return
	}
	to := "/apps"
	if fromOrg {
		to += "/" + url.PathEscape(catalog) + "/" + url.PathEscape(org)
	}
	d.redirect(w, r, to, "app "+form["name"]+" created")
}

func formDuration(what, v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	t, err := time.ParseDuration(v)
	if err != nil || t < 0 {
		return 0, iam.Invalidf("%s %q is not a duration such as 1h or 30m", what, v)
	}
	return t, nil
}

// appPage is one app with its credentials and leases.
type appPage struct {
	Res         apps.Resolved
	Credentials []store.AppCredential
	Base        string // the page's path
}

func appPath(r *http.Request) apps.Path {
	return apps.Path{Catalog: r.PathValue("catalog"), ConsumerOrg: r.PathValue("corg"), App: r.PathValue("app")}
}

func appBase(p apps.Path) string {
	return "/apps/" + url.PathEscape(p.Catalog) + "/" + url.PathEscape(p.ConsumerOrg) + "/" + url.PathEscape(p.App)
}

func (d *Dashboard) showApp(w http.ResponseWriter, r *http.Request, status int, v view) {
	res, err := d.Apps.GetApp(r.Context(), principal(r), appPath(r))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	cs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
		return d.Apps.ListCredentials(r.Context(), principal(r), appPath(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = appBase(appPath(r))
	v.Pager = pg
	v.Title, v.Nav, v.Page = "App "+res.App.Name, "apps", appPage{Res: res, Credentials: cs, Base: pg.Path}
	d.render(w, r, status, "app", v)
}

func (d *Dashboard) appPage(w http.ResponseWriter, r *http.Request) {
	d.showApp(w, r, http.StatusOK, view{})
}

func (d *Dashboard) createAppCredential(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"name": strings.TrimSpace(r.FormValue("name")), "ttl": strings.TrimSpace(r.FormValue("ttl")), "kind": r.FormValue("kind")}
	in := apps.CredentialInput{Input: apps.Input{Name: form["name"]}}
	var is apps.Issued
	var err error
	if form["kind"] == "lease" {
		var ttl time.Duration
		if ttl, err = formDuration("TTL", form["ttl"]); err == nil {
			_, is, err = d.Apps.CreateLease(r.Context(), principal(r), appPath(r), in, ttl)
		}
	} else {
		_, is, err = d.Apps.CreateCredential(r.Context(), principal(r), appPath(r), in)
	}
	if err != nil {
		status, msg := d.message(r, err)
		d.showApp(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	c := is.Credential
	fields := []field{{"Client id", c.ClientID, "client-id", "client_id"}, {"Client secret", is.Secret.Reveal(), "client-secret", "client_secret"}}
	title := "App credential " + c.Name + " created"
	extra := []field{{Label: "name", Value: c.Name}, {Label: "id", Value: c.ID}}
	if c.Leased() {
		title = "Lease " + c.Name + " created"
		fields = append(fields, field{"Expires at", c.ExpiresAt.UTC().Format(time.RFC3339), "expires-at", "expires_at"})
	}
	d.render(w, r, http.StatusOK, "shown", view{Title: title, Nav: "apps", Page: shownOnce{
		What: title, Back: appBase(appPath(r)), Fields: fields, Extra: extra, DownloadAs: "app-credential-" + c.Name + ".json"}})
}

func (d *Dashboard) renewLease(w http.ResponseWriter, r *http.Request) {
	inc, err := formDuration("increment", strings.TrimSpace(r.FormValue("increment")))
	var rn apps.Renewal
	if err == nil {
		_, rn, err = d.Apps.RenewLease(r.Context(), principal(r), appPath(r), r.PathValue("credential"), inc)
	}
	if err != nil {
		status, msg := d.message(r, err)
		d.showApp(w, r, status, view{Error: msg})
		return
	}
	flash := "lease renewed until " + rn.Credential.ExpiresAt.Format(time.RFC3339)
	if rn.Capped {
		flash += " (capped: creation + the app's max TTL)"
	}
	d.redirect(w, r, appBase(appPath(r)), flash)
}

func (d *Dashboard) deleteAppCredential(w http.ResponseWriter, r *http.Request) {
	if err := d.Apps.DeleteCredential(r.Context(), principal(r), appPath(r), r.PathValue("credential")); err != nil {
		status, msg := d.message(r, err)
		d.showApp(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, appBase(appPath(r)), "credential deleted")
}
