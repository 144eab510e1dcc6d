package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/store"
)

// --- published APIs, plans and subscriptions --------------------------------
//
// The pages go through apis.Service as /api/v1/apis, /plans and
// /subscriptions do: everyone reads, developers publish, edit, subscribe,
// approve and unsubscribe (the least roles of internal/api's route table).

type apisPage struct {
	APIs     []apis.API
	BARs     []string // BAR files to publish from
	Runtimes []string // runtimes to publish from
}

func (d *Dashboard) showAPIs(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	list, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return d.APIs.ListAPIs(r.Context(), p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = "/apis" // also when a form's answer shows the page
	page := apisPage{APIs: list}
	v.Pager = pg
	if page.BARs, page.Runtimes, err = d.apiSources(r); err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page = "Published APIs", "apis", page
	d.render(w, r, status, "apis", v)
}

// apiSources lists the BAR files and runtimes an API may publish flows of.
func (d *Dashboard) apiSources(r *http.Request) (bars, runtimes []string, err error) {
	p := principal(r)
	bs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[barstore.File], error) {
		return d.BARs.List(r.Context(), p, req)
	})
	if err != nil {
		return nil, nil, err
	}
	for _, b := range bs {
		bars = append(bars, b.Name)
	}
	rts, err := iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
		return d.Runtimes.List(r.Context(), p, req)
	})
	if err != nil {
		return nil, nil, err
	}
	for _, rt := range rts {
		runtimes = append(runtimes, rt.Name)
	}
	return bars, runtimes, nil
}

func (d *Dashboard) apisPage(w http.ResponseWriter, r *http.Request) {
	d.showAPIs(w, r, http.StatusOK, view{})
}

// formList splits a comma- or space-separated field.
func formList(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r' })
}

// apiForm reads the fields of an API form (publish and edit) as typed
// and as the spec they make.
func apiForm(r *http.Request) (map[string]string, apis.APISpec) {
	form := map[string]string{}
	for _, f := range []string{"name", "title", "description", "version", "basePath", "barFile", "runtime", "flows", "document", "objectVersion"} {
		form[f] = strings.TrimSpace(r.FormValue(f))
	}
	return form, apis.APISpec{Title: form["title"], Description: form["description"], Version: form["version"], BasePath: form["basePath"],
		BARFile: form["barFile"], Runtime: form["runtime"], Flows: formList(form["flows"]), Document: form["document"]}
}

func (d *Dashboard) createAPI(w http.ResponseWriter, r *http.Request) {
	form, spec := apiForm(r)
	a, _, err := d.APIs.PutAPI(r.Context(), principal(r), form["name"], spec, true)
	if err != nil {
		status, msg := d.message(r, err)
		d.showAPIs(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.redirect(w, r, "/apis/"+url.PathEscape(a.Name), "API "+a.Name+" published")
}

// apiEditPage is the form that changes an API, with the BAR files and
// runtimes it may publish flows of.
type apiEditPage struct {
	API      apis.API
	BARs     []string
	Runtimes []string
}

// showAPIEdit shows the edit form of an API: filled in from its stored
// spec, or with what was typed (v.Form) when a change was refused.
func (d *Dashboard) showAPIEdit(w http.ResponseWriter, r *http.Request, status int, v view) {
	a, err := d.APIs.GetAPI(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := apiEditPage{API: a}
	if page.BARs, page.Runtimes, err = d.apiSources(r); err != nil {
		d.fail(w, r, err)
		return
	}
	if v.Form == nil {
		v.Form = map[string]string{"title": a.Spec.Title, "description": a.Spec.Description, "version": a.Spec.Version,
			"basePath": a.Spec.BasePath, "barFile": a.Spec.BARFile, "runtime": a.Spec.Runtime,
			"flows": strings.Join(a.Spec.Flows, ", "), "document": a.Spec.Document, "objectVersion": objectVersion(a.Version)}
	}
	v.Title, v.Nav, v.Page = "Edit API "+a.Name, "apis", page
	d.render(w, r, status, "apiedit", v)
}

func (d *Dashboard) apiEditPage(w http.ResponseWriter, r *http.Request) {
	d.showAPIEdit(w, r, http.StatusOK, view{})
}

// editAPI replaces the spec of an existing API (PUT /api/v1/apis/{name}
// does the same): the name stays, the rest is what the form says.
func (d *Dashboard) editAPI(w http.ResponseWriter, r *http.Request) {
	ctx, p := r.Context(), principal(r)
	cur, err := d.APIs.GetAPI(ctx, p, r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	form, spec := apiForm(r)
	if err = unchanged("API", cur.PublishedObject, form); err == nil {
		// By name, never by the path's segment: that may be the id, and a
		// PUT by id would publish a second API.
		_, _, err = d.APIs.PutAPI(ctx, p, cur.Name, spec, false)
	}
	if err != nil {
		status, msg := d.message(r, err)
		d.showAPIEdit(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.redirect(w, r, "/apis/"+url.PathEscape(cur.Name), "API "+cur.Name+" updated")
}

func objectVersion(v int64) string { return strconv.FormatInt(v, 10) }

// unchanged refuses an edit made on a form older than the object's last
// write, so that two people editing one API or plan do not silently undo
// each other's change. It compares before the write, so it narrows that
// window rather than closing it; the later write still wins whole.
func unchanged(kind string, cur store.PublishedObject, form map[string]string) error {
	if form["objectVersion"] != objectVersion(cur.Version) {
		return iam.Conflictf("%s %s was changed (by %s at %s) after this form was loaded: reload the page and make the change again",
			kind, cur.Name, cur.UpdatedBy, cur.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// apiPage is one API with the plans that give access to it.
type apiPage struct {
	API   apis.API
	Plans []apis.Plan
}

func (d *Dashboard) showAPI(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	a, err := d.APIs.GetAPI(r.Context(), p, r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	plans, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) {
		return d.APIs.ListPlans(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := apiPage{API: a}
	for _, pl := range plans {
		for _, n := range pl.Spec.APIs {
			if n == a.Name {
				page.Plans = append(page.Plans, pl)
			}
		}
	}
	v.Title, v.Nav, v.Page = "API "+a.Name, "apis", page
	d.render(w, r, status, "api", v)
}

func (d *Dashboard) apiPage(w http.ResponseWriter, r *http.Request) {
	d.showAPI(w, r, http.StatusOK, view{})
}

// downloadAPIDocument serves an API's OpenAPI document as a file.
func (d *Dashboard) downloadAPIDocument(w http.ResponseWriter, r *http.Request) {
	a, doc, err := d.APIs.Document(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="`+a.Name+`-openapi.json"`)
	_, _ = w.Write(doc)
}

func (d *Dashboard) deleteAPI(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.APIs.DeleteAPI(r.Context(), principal(r), name); err != nil {
		status, msg := d.message(r, err)
		if status == http.StatusNotFound {
			d.fail(w, r, err)
			return
		}
		d.showAPI(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/apis", "API "+name+" deleted")
}

type plansPage struct {
	Plans []apis.Plan
	APIs  []string // APIs a new plan may name
}

func (d *Dashboard) showPlans(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	plans, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) {
		return d.APIs.ListPlans(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = "/plans" // also when a form's answer shows the page
	list, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return d.APIs.ListAPIs(r.Context(), p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := plansPage{Plans: plans}
	v.Pager = pg
	for _, a := range list {
		page.APIs = append(page.APIs, a.Name)
	}
	v.Title, v.Nav, v.Page = "Plans", "apis", page
	d.render(w, r, status, "plans", v)
}

func (d *Dashboard) plansPage(w http.ResponseWriter, r *http.Request) {
	d.showPlans(w, r, http.StatusOK, view{})
}

// planForm reads the fields of a plan form (create and edit) as typed,
// the boxes ticked, and the spec they make.
func planForm(r *http.Request) (map[string]string, map[string]bool, apis.PlanSpec) {
	form := map[string]string{}
	for _, f := range []string{"name", "title", "description", "auth", "rateLimit", "objectVersion"} {
		form[f] = strings.TrimSpace(r.FormValue(f))
	}
	checked := map[string]bool{"clientSecret": r.FormValue("clientSecret") != "", "approval": r.FormValue("approval") != ""}
	spec := apis.PlanSpec{Title: form["title"], Description: form["description"], Auth: form["auth"], RateLimit: form["rateLimit"],
		ClientSecret: checked["clientSecret"], Approval: checked["approval"], APIs: r.Form["api"]}
	for _, a := range spec.APIs {
		checked[key("api", a)] = true
	}
	return form, checked, spec
}

func (d *Dashboard) createPlan(w http.ResponseWriter, r *http.Request) {
	form, checked, spec := planForm(r)
	pl, _, err := d.APIs.PutPlan(r.Context(), principal(r), form["name"], spec, true)
	if err != nil {
		status, msg := d.message(r, err)
		d.showPlans(w, r, status, view{Form: form, FormErr: msg, Checked: checked})
		return
	}
	d.redirect(w, r, "/plans/"+url.PathEscape(pl.Name), "plan "+pl.Name+" created")
}

// planEditPage is the form that changes a plan, with the APIs it may name.
type planEditPage struct {
	Plan apis.Plan
	APIs []string
}

// showPlanEdit shows the edit form of a plan: filled in from its stored
// spec, or with what was typed when a change was refused.
func (d *Dashboard) showPlanEdit(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	pl, err := d.APIs.GetPlan(r.Context(), p, r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	list, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return d.APIs.ListAPIs(r.Context(), p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := planEditPage{Plan: pl}
	for _, a := range list {
		page.APIs = append(page.APIs, a.Name)
	}
	if v.Form == nil {
		v.Form = map[string]string{"title": pl.Spec.Title, "description": pl.Spec.Description, "auth": pl.Spec.Auth,
			"rateLimit": pl.Spec.RateLimit, "objectVersion": objectVersion(pl.Version)}
		v.Checked = map[string]bool{"clientSecret": pl.Spec.ClientSecret, "approval": pl.Spec.Approval}
		for _, a := range pl.Spec.APIs {
			v.Checked[key("api", a)] = true
		}
	}
	v.Title, v.Nav, v.Page = "Edit plan "+pl.Name, "apis", page
	d.render(w, r, status, "planedit", v)
}

func (d *Dashboard) planEditPage(w http.ResponseWriter, r *http.Request) {
	d.showPlanEdit(w, r, http.StatusOK, view{})
}

// editPlan replaces the spec of an existing plan (as PUT
// /api/v1/plans/{name}); the gateways enforce the new one at once.
func (d *Dashboard) editPlan(w http.ResponseWriter, r *http.Request) {
	ctx, p := r.Context(), principal(r)
	cur, err := d.APIs.GetPlan(ctx, p, r.PathValue("name"))
	if err != nil {
		d.fail(w, r, err)
		return
	}
	form, checked, spec := planForm(r)
	if err = unchanged("plan", cur.PublishedObject, form); err == nil {
		_, _, err = d.APIs.PutPlan(ctx, p, cur.Name, spec, false)
	}
	if err != nil {
		status, msg := d.message(r, err)
		d.showPlanEdit(w, r, status, view{Form: form, FormErr: msg, Checked: checked})
		return
	}
	d.redirect(w, r, "/plans/"+url.PathEscape(cur.Name), "plan "+cur.Name+" updated")
}

// planPage is one plan with its subscriptions and the apps that may
// subscribe ("catalog/consumer-org/app" by name).
// planPage is one plan with its subscriptions; the list of subscriptions
// (/subscriptions) is a planPage without a plan, a page at a time.
type planPage struct {
	Plan          apis.Plan
	Subscriptions []apis.Subscription
	Apps          []string
}

func (d *Dashboard) showPlan(w http.ResponseWriter, r *http.Request, status int, ref string, v view) {
	p := principal(r)
	pl, err := d.APIs.GetPlan(r.Context(), p, ref)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	subs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.Subscription], error) {
		return d.APIs.ListSubscriptions(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := planPage{Plan: pl}
	for _, s := range subs {
		if s.Spec.Plan == pl.Name {
			page.Subscriptions = append(page.Subscriptions, s)
		}
	}
	if page.Apps, err = d.appChoices(r); err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page = "Plan "+pl.Name, "apis", page
	d.render(w, r, status, "plan", v)
}

// appChoices lists every app of the instance as catalog/consumer-org/app.
func (d *Dashboard) appChoices(r *http.Request) ([]string, error) {
	p := principal(r)
	cats, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.Catalog], error) {
		return d.Apps.ListCatalogs(r.Context(), p, req)
	})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, c := range cats {
		orgs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
			return d.Apps.ListConsumerOrgs(r.Context(), p, c.ID, req)
		})
		if err != nil {
			return nil, err
		}
		for _, o := range orgs {
			as, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.App], error) {
				return d.Apps.ListApps(r.Context(), p, apps.Path{Catalog: c.ID, ConsumerOrg: o.ID}, req)
			})
			if err != nil {
				return nil, err
			}
			for _, a := range as {
				out = append(out, c.Name+"/"+o.Name+"/"+a.Name)
			}
		}
	}
	return out, nil
}

func (d *Dashboard) planPage(w http.ResponseWriter, r *http.Request) {
	d.showPlan(w, r, http.StatusOK, r.PathValue("name"), view{})
}

func (d *Dashboard) deletePlan(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := d.APIs.DeletePlan(r.Context(), principal(r), name, false); err != nil {
		status, msg := d.message(r, err)
		if status == http.StatusNotFound {
			d.fail(w, r, err)
			return
		}
		d.showPlan(w, r, status, name, view{Error: msg})
		return
	}
	d.redirect(w, r, "/plans", "plan "+name+" deleted")
}

// subscribe subscribes an app to the plan of the page the form is on.
func (d *Dashboard) subscribe(w http.ResponseWriter, r *http.Request) {
	plan := r.PathValue("name")
	form := map[string]string{"app": strings.TrimSpace(r.FormValue("app")), "name": strings.TrimSpace(r.FormValue("name"))}
	name := form["name"]
	if name == "" && form["app"] != "" {
		// catalog/consumer-org/app → app-plan, a name the user may change.
		parts := strings.Split(form["app"], "/")
		name = parts[len(parts)-1] + "-" + plan
	}
	var err error
	var sub apis.Subscription
	if form["app"] == "" {
		err = iam.Invalidf("choose the app that subscribes")
	} else {
		sub, _, err = d.APIs.PutSubscription(r.Context(), principal(r), name, apis.SubscriptionSpec{Plan: plan, App: form["app"]}, true)
	}
	if err != nil {
		status, msg := d.message(r, err)
		if status == http.StatusNotFound {
			d.fail(w, r, err)
			return
		}
		d.showPlan(w, r, status, plan, view{Form: form, FormErr: msg})
		return
	}
	flash := form["app"] + " subscribed to plan " + plan + " (subscription " + sub.Name + ")"
	if sub.Status.State == apis.StatePending {
		flash += ": pending until it is approved"
	}
	d.redirect(w, r, "/plans/"+url.PathEscape(plan), flash)
}

func (d *Dashboard) subscriptionsPage(w http.ResponseWriter, r *http.Request) {
	d.showSubscriptions(w, r, http.StatusOK, view{})
}

func (d *Dashboard) showSubscriptions(w http.ResponseWriter, r *http.Request, status int, v view) {
	subs, pg, err := tablePage(r, func(req iam.ListRequest) (iam.ListPage[apis.Subscription], error) {
		return d.APIs.ListSubscriptions(r.Context(), principal(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pg.Path = "/subscriptions" // also when a form's answer shows the page
	v.Title, v.Nav, v.Page, v.Pager = "Subscriptions", "apis", planPage{Subscriptions: subs}, pg
	d.render(w, r, status, "subscriptions", v)
}

// back is where a subscription form returns to: the plan page it came
// from (back=plan), else the list of subscriptions.
func back(r *http.Request, plan string) string {
	if r.FormValue("back") == "plan" && plan != "" {
		return "/plans/" + url.PathEscape(plan)
	}
	return "/subscriptions"
}

func (d *Dashboard) approveSubscription(w http.ResponseWriter, r *http.Request) {
	sub, err := d.APIs.ApproveSubscription(r.Context(), principal(r), r.PathValue("name"))
	if err != nil {
		status, msg := d.message(r, err)
		d.showSubscriptions(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, back(r, sub.Spec.Plan), "subscription "+sub.Name+" approved")
}

func (d *Dashboard) unsubscribe(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	sub, err := d.APIs.GetSubscription(r.Context(), principal(r), name)
	if err == nil {
		err = d.APIs.DeleteSubscription(r.Context(), principal(r), sub.Name)
	}
	if err != nil {
		status, msg := d.message(r, err)
		d.showSubscriptions(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, back(r, sub.Spec.Plan), sub.Spec.App+" unsubscribed from plan "+sub.Spec.Plan)
}
