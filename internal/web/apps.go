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

type appsCatalog struct {
	Catalog store.Catalog
	Orgs    []appsOrg
}

type appsOrg struct {
	Org  store.ConsumerOrg
	Apps []store.App
}

func (d *Dashboard) showApps(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	cats, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.Catalog], error) {
		return d.Apps.ListCatalogs(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var page []appsCatalog
	for _, c := range cats {
		orgs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
			return d.Apps.ListConsumerOrgs(r.Context(), p, c.ID, req)
		})
		if err != nil {
			d.fail(w, r, err)
			return
		}
		ac := appsCatalog{Catalog: c}
		for _, o := range orgs {
			as, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.App], error) {
				return d.Apps.ListApps(r.Context(), p, apps.Path{Catalog: c.ID, ConsumerOrg: o.ID}, req)
			})
			if err != nil {
				d.fail(w, r, err)
				return
			}
			ac.Orgs = append(ac.Orgs, appsOrg{Org: o, Apps: as})
		}
		page = append(page, ac)
	}
	v.Title, v.Nav, v.Page = "Consumer apps", "apps", page
	d.render(w, r, status, "apps", v)
}

func (d *Dashboard) appsPage(w http.ResponseWriter, r *http.Request) {
	d.showApps(w, r, http.StatusOK, view{})
}

func (d *Dashboard) createConsumerOrg(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"catalog": r.FormValue("catalog"), "name": strings.TrimSpace(r.FormValue("name")), "title": r.FormValue("title")}
	if _, err := d.Apps.CreateConsumerOrg(r.Context(), principal(r), form["catalog"], apps.Input{Name: form["name"], Title: form["title"]}); err != nil {
		status, msg := d.message(r, err)
		d.showApps(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.redirect(w, r, "/apps", "consumer org "+form["name"]+" created")
}

func (d *Dashboard) createApp(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{"org": r.FormValue("org"), "name": strings.TrimSpace(r.FormValue("name")), "title": r.FormValue("title"),
		"defaultTtl": strings.TrimSpace(r.FormValue("defaultTtl")), "maxTtl": strings.TrimSpace(r.FormValue("maxTtl"))}
	catalog, org, _ := strings.Cut(form["org"], "/")
	in := apps.AppInput{Input: apps.Input{Name: form["name"], Title: form["title"]}}
	var pol apps.CredentialPolicy
	var err error
	if pol.DefaultTTL, err = formDuration("default TTL", form["defaultTtl"]); err == nil {
		pol.MaxTTL, err = formDuration("max TTL", form["maxTtl"])
	}
	if err == nil {
		in.Policy = &pol
		_, err = d.Apps.CreateApp(r.Context(), principal(r), apps.Path{Catalog: catalog, ConsumerOrg: org}, in)
	}
	if err != nil {
		status, msg := d.message(r, err)
		d.showApps(w, r, status, view{Form: form, SpecErr: msg})
		return
	}
	d.redirect(w, r, "/apps", "app "+form["name"]+" created")
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
	cs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
		return d.Apps.ListCredentials(r.Context(), principal(r), appPath(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page = "App "+res.App.Name, "apps", appPage{Res: res, Credentials: cs, Base: appBase(appPath(r))}
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
