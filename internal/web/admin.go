package web

import (
	"encoding/json"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	apispec "github.com/sluice-dev/sluice/api"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// --- audit log ------------------------------------------------------------

// auditShown bounds one page of the audit log; the filters narrow it.
const auditShown = 500

// auditScan bounds the events one page reads when an action filter (done
// here, not in the store) skips most of them; the next page goes on.
const auditScan = 10 * auditShown

type auditPage struct {
	Events []store.AuditEvent
	// Next is the query string of the next (older) page; "" on the last.
	Next string
	// Older says this page is not the first; First is the query string
	// of the first (newest) page with the same filters.
	Older bool
	First string
	// Retention says how long events are kept, in words; "" when they
	// are kept for ever.
	Retention string
}

// auditLog shows the instance's audit events, newest first, filtered by
// actor, action and days, a page at a time: each page
// links to the next older one with the API's continue token, so every
// event can be reached however many there are. It reads through
// iam.ListAuditPage, which admits admins only, as the API does.
func (d *Dashboard) auditLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	form := map[string]string{"actor": strings.TrimSpace(q.Get("actor")), "action": strings.TrimSpace(q.Get("action")),
		"since": q.Get("since"), "until": q.Get("until")}
	f := store.AuditFilter{Actor: form["actor"], Limit: auditShown}
	// A whole action name (kind.verb, e.g. token.refuse) is the store's
	// own filter, read from its index however far back the events are; a
	// part of one (refuse) is matched here, over at most auditScan events
	// a page.
	part := form["action"]
	if strings.Contains(part, ".") {
		f.Action, part = part, ""
	}
	var formErr string
	for _, b := range []struct {
		key string
		at  *time.Time
		add time.Duration
	}{{"since", &f.Since, 0}, {"until", &f.Until, 24 * time.Hour}} {
		if form[b.key] == "" {
			continue
		}
		day, err := time.Parse("2006-01-02", form[b.key])
		if err != nil {
			formErr = b.key + " must be a date such as 2026-11-22"
			continue
		}
		*b.at = day.Add(b.add)
	}
	pg := auditPage{Older: q.Get("continue") != "", Retention: retentionText(d.IAM.AuditRetention)}
	if formErr == "" {
		cont, scanned := q.Get("continue"), 0
		for {
			res, err := d.IAM.ListAuditPage(r.Context(), principal(r), f, cont)
			if iam.KindOf(err) == iam.KindInvalid {
				formErr = "this page link is out of date: start again from the newest events"
				break
			}
			if err != nil {
				d.fail(w, r, err)
				return
			}
			scanned += len(res.Events)
			cont = res.Continue
			for _, e := range res.Events {
				if part == "" || strings.Contains(e.Action, part) {
					pg.Events = append(pg.Events, e)
				}
			}
			if cont == "" || len(pg.Events) >= auditShown || scanned >= auditScan {
				break
			}
			// A page of an action filter is filled from further back, a
			// store page at a time, from the last event read.
		}
		if len(pg.Events) > auditShown {
			// Cut at a page boundary of the store is not possible here,
			// so the next page starts after the last event shown.
			pg.Events = pg.Events[:auditShown]
			cont = d.IAM.AuditContinue(f, pg.Events[auditShown-1])
		}
		next := url.Values{}
		for k, v := range form {
			if v != "" {
				next.Set(k, v)
			}
		}
		if len(next) > 0 {
			pg.First = "?" + next.Encode()
		}
		if cont != "" {
			next.Set("continue", cont)
			pg.Next = "?" + next.Encode()
		}
	}
	status := http.StatusOK
	if formErr != "" {
		status = http.StatusBadRequest
	}
	d.render(w, r, status, "audit", view{Title: "Audit log", Nav: "audit", Page: pg, Form: form, FormErr: formErr})
}

// retentionText says a retention in days (or hours, below two days).
func retentionText(d time.Duration) string {
	switch {
	case d <= 0:
		return ""
	case d < 48*time.Hour:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " hours"
	}
	return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + " days"
}

// --- API specification ----------------------------------------------------

type operation struct{ Method, Path, Summary string }

type specPage struct {
	Title, Version string
	Ops            []operation
}

// apiSpec lists the operations of the OpenAPI document the control plane
// serves, with links to the document itself.
func (d *Dashboard) apiSpec(w http.ResponseWriter, r *http.Request) {
	b, err := apispec.JSON()
	if err != nil {
		d.fail(w, r, err)
		return
	}
	var doc struct {
		Info  struct{ Title, Version string }
		Paths map[string]map[string]json.RawMessage
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		d.fail(w, r, err)
		return
	}
	pg := specPage{Title: doc.Info.Title, Version: doc.Info.Version}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			var op struct{ Summary string }
			if json.Unmarshal(raw, &op) != nil || !isMethod(method) {
				continue
			}
			pg.Ops = append(pg.Ops, operation{Method: strings.ToUpper(method), Path: path, Summary: op.Summary})
		}
	}
	sort.Slice(pg.Ops, func(i, j int) bool {
		if pg.Ops[i].Path != pg.Ops[j].Path {
			return pg.Ops[i].Path < pg.Ops[j].Path
		}
		return pg.Ops[i].Method < pg.Ops[j].Method
	})
	d.render(w, r, http.StatusOK, "apispec", view{Title: "API specification", Nav: "api", Page: pg})
}

func isMethod(m string) bool {
	switch m {
	case "get", "put", "post", "delete", "patch", "head", "options":
		return true
	}
	return false
}

// --- users and service IDs ------------------------------------------------

type identitiesPage struct {
	Users, ServiceIDs         []store.Identity
	UserPages, ServiceIDPages pager
	Roles                     []string
}

func (d *Dashboard) showIdentities(w http.ResponseWriter, r *http.Request, status int, v view) {
	ctx, p := r.Context(), principal(r)
	// Two tables, each paged by a token of its own.
	users, userPages, err := namedTablePage(r, "users", "users-page", func(req iam.ListRequest) (iam.ListPage[store.Identity], error) {
		return d.IAM.ListIdentities(ctx, p, store.KindUser, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	sids, sidPages, err := namedTablePage(r, "service-ids", "service-ids-page", func(req iam.ListRequest) (iam.ListPage[store.Identity], error) {
		return d.IAM.ListIdentities(ctx, p, store.KindServiceID, req)
	})
	if err != nil {
		d.fail(w, r, err)
		return
	}
	v.Title, v.Nav = "Users and service IDs", "identities"
	v.Page = identitiesPage{Users: users, ServiceIDs: sids, UserPages: userPages, ServiceIDPages: sidPages,
		Roles: []string{iam.RoleViewer, iam.RoleDeveloper, iam.RoleAdmin}}
	d.render(w, r, status, "identities", v)
}

func (d *Dashboard) identitiesPage(w http.ResponseWriter, r *http.Request) {
	d.showIdentities(w, r, http.StatusOK, view{})
}

func kindOf(r *http.Request) (string, bool) {
	switch r.PathValue("kind") {
	case "users":
		return store.KindUser, true
	case "service-ids":
		return store.KindServiceID, true
	}
	return "", false
}

// createIdentity creates a user (with a password, to log in here) or a
// service ID (which uses API keys).
func (d *Dashboard) createIdentity(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	prefix := r.PathValue("kind") + "-"
	form := map[string]string{prefix + "name": strings.TrimSpace(r.FormValue("name")), prefix + "role": r.FormValue("role"),
		prefix + "description": r.FormValue("description")}
	in := iam.IdentityInput{Kind: kind, Name: form[prefix+"name"], Role: form[prefix+"role"], Description: form[prefix+"description"]}
	if kind == store.KindUser {
		if pw := r.FormValue("password"); pw != "" {
			in.Password = secret.New(pw)
		} else {
			d.showIdentities(w, r, http.StatusBadRequest, view{Form: form, FormErr: "give the new user a password of at least 12 characters"})
			return
		}
	}
	if _, _, err := d.IAM.PutIdentity(r.Context(), principal(r), in, true); err != nil {
		status, msg := d.message(r, err)
		v := view{Form: form}
		if kind == store.KindUser {
			v.FormErr = msg
		} else {
			v.SpecErr = msg
		}
		d.showIdentities(w, r, status, v)
		return
	}
	d.redirect(w, r, "/settings/identities", kindLabel(kind)+" "+in.Name+" created")
}

func kindLabel(kind string) string {
	if kind == store.KindServiceID {
		return "service ID"
	}
	return "user"
}

// setRole changes an identity's role; its description and password stay.
func (d *Dashboard) setRole(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	ctx, p, name := r.Context(), principal(r), r.PathValue("name")
	cur, err := d.IAM.GetIdentity(ctx, p, kind, name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	in := iam.IdentityInput{Kind: kind, Name: name, Role: r.FormValue("role"), Description: cur.Description}
	if _, _, err := d.IAM.PutIdentity(ctx, p, in, false); err != nil {
		status, msg := d.message(r, err)
		d.showIdentities(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/settings/identities", kindLabel(kind)+" "+name+" is now "+in.Role)
}

// setPassword gives a user a new password (admins; users keep their
// role and description). Sessions already open stay open.
func (d *Dashboard) setPassword(w http.ResponseWriter, r *http.Request) {
	ctx, p, name := r.Context(), principal(r), r.PathValue("name")
	cur, err := d.IAM.GetIdentity(ctx, p, store.KindUser, name)
	if err != nil {
		d.fail(w, r, err)
		return
	}
	pw := r.PostFormValue("password")
	if pw == "" {
		d.showIdentities(w, r, http.StatusBadRequest, view{Error: "give " + name + " a new password of at least 12 characters"})
		return
	}
	in := iam.IdentityInput{Kind: store.KindUser, Name: name, Role: cur.Role, Description: cur.Description, Password: secret.New(pw)}
	if _, _, err := d.IAM.PutIdentity(ctx, p, in, false); err != nil {
		status, msg := d.message(r, err)
		d.showIdentities(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/settings/identities", "user "+name+" has a new password")
}

func (d *Dashboard) deleteIdentity(w http.ResponseWriter, r *http.Request) {
	kind, ok := kindOf(r)
	if !ok {
		http.NotFound(w, r)
		return
	}
	name := r.PathValue("name")
	if err := d.IAM.DeleteIdentity(r.Context(), principal(r), kind, name); err != nil {
		status, msg := d.message(r, err)
		d.showIdentities(w, r, status, view{Error: msg})
		return
	}
	d.redirect(w, r, "/settings/identities", kindLabel(kind)+" "+name+" deleted, with its API keys")
}
