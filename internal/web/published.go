package web

import (
	"net/http"
	"net/url"
	"strings"

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
// /subscriptions do: everyone reads, developers publish, subscribe,
// approve and unsubscribe (the least roles of internal/api's route table).

type apisPage struct {
	APIs     []apis.API
	BARs     []string // BAR files to publish from
	Runtimes []string // runtimes to publish from
}

func (d *Dashboard) showAPIs(w http.ResponseWriter, r *http.Request, status int, v view) {
	p := principal(r)
	list, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return d.APIs.ListAPIs(r.Context(), p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := apisPage{APIs: list}
	bars, err := iam.All(func(req iam.ListRequest) (iam.ListPage[barstore.File], error) {
		return d.BARs.List(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	for _, b := range bars {
		page.BARs = append(page.BARs, b.Name)
	}
	rts, err := iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
		return d.Runtimes.List(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	for _, rt := range rts {
		page.Runtimes = append(page.Runtimes, rt.Name)
	}
	v.Title, v.Nav, v.Page = "Published APIs", "apis", page
	d.render(w, r, status, "apis", v)
}

func (d *Dashboard) apisPage(w http.ResponseWriter, r *http.Request) {
	d.showAPIs(w, r, http.StatusOK, view{})
}

// formList splits a comma- or space-separated field.
func formList(v string) []string {
	return strings.FieldsFunc(v, func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r' })
}

func (d *Dashboard) createAPI(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{}
	for _, f := range []string{"name", "title", "version", "basePath", "barFile", "runtime", "flows", "document"} {
		form[f] = strings.TrimSpace(r.FormValue(f))
	}
	spec := apis.APISpec{Title: form["title"], Version: form["version"], BasePath: form["basePath"], BARFile: form["barFile"],
		Runtime: form["runtime"], Flows: formList(form["flows"]), Document: form["document"]}
	a, _, err := d.APIs.PutAPI(r.Context(), principal(r), form["name"], spec, true)
	if err != nil {
		status, msg := d.message(r, err)
		d.showAPIs(w, r, status, view{Form: form, FormErr: msg})
		return
	}
	d.redirect(w, r, "/apis/"+url.PathEscape(a.Name), "API "+a.Name+" published")
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
	plans, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) {
		return d.APIs.ListPlans(r.Context(), p, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	list, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return d.APIs.ListAPIs(r.Context(), p, req) })
	if err != nil {
		d.fail(w, r, err)
		return
	}
	page := plansPage{Plans: plans}
	for _, a := range list {
		page.APIs = append(page.APIs, a.Name)
	}
	v.Title, v.Nav, v.Page = "Plans", "apis", page
	d.render(w, r, status, "plans", v)
}

func (d *Dashboard) plansPage(w http.ResponseWriter, r *http.Request) {
	d.showPlans(w, r, http.StatusOK, view{})
}

func (d *Dashboard) createPlan(w http.ResponseWriter, r *http.Request) {
	form := map[string]string{}
	for _, f := range []string{"name", "title", "auth", "rateLimit"} {
		form[f] = strings.TrimSpace(r.FormValue(f))
	}
	checked := map[string]bool{"clientSecret": r.FormValue("clientSecret") != "", "approval": r.FormValue("approval") != ""}
	spec := apis.PlanSpec{Title: form["title"], Auth: form["auth"], RateLimit: form["rateLimit"],
		ClientSecret: checked["clientSecret"], Approval: checked["approval"], APIs: r.Form["api"]}
	for _, a := range spec.APIs {
		checked[key("api", a)] = true
	}
	pl, _, err := d.APIs.PutPlan(r.Context(), principal(r), form["name"], spec, true)
	if err != nil {
		status, msg := d.message(r, err)
		d.showPlans(w, r, status, view{Form: form, FormErr: msg, Checked: checked})
		return
	}
	d.redirect(w, r, "/plans/"+url.PathEscape(pl.Name), "plan "+pl.Name+" created")
}

// planPage is one plan with its subscriptions and the apps that may
// subscribe ("catalog/consumer-org/app" by name).
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
	subs, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.Subscription], error) {
		return d.APIs.ListSubscriptions(r.Context(), principal(r), req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav, v.Page = "Subscriptions", "apis", subs
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
