// Package web owns the dashboard: server-rendered HTML pages (html/template,
// embedded with a small hand-written style sheet, nothing fetched from
// elsewhere) that the control plane serves at "/". People log in with a
// user name and password; their session lives in this process's memory and
// is named by an HttpOnly, SameSite=Lax cookie; every form carries a CSRF
// token. Three small scripts in static/ add live runtime status and chart
// reloads (server-sent events), upload progress and copy buttons; every
// page works without them. Charts are SVG images drawn by internal/chart
// from the samples of internal/sampling.
//
// The dashboard holds no business logic: every read and write goes through
// the same domain services the /api/v1 handlers call (iam, configuration,
// barstore, orchestrator, apps, apis) with an iam.Principal for the logged-in user, so
// audit records and the services' own checks are the same as for the API.
// The least role of each write mirrors internal/api's route table. It must
// not import internal/api: the two are siblings over the same services.
package web

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/sampling"
	"github.com/sluice-dev/sluice/internal/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Dashboard serves the web UI. Its fields are the services the API uses.
type Dashboard struct {
	Store      store.Store
	IAM        *iam.Service
	Configs    *configuration.Service
	BARs       *barstore.Service
	Runtimes   *orchestrator.Service
	Reconciler *orchestrator.Reconciler // nil when no runtime backend runs (no logs)
	Traces     *orchestrator.Traces     // nil when no runtime backend runs (no traces)
	Apps       *apps.Service            // consumer catalogs, consumer orgs, apps and their credentials
	APIs       *apis.Service            // published APIs, plans and subscriptions
	// Samples are the runtimes' recent metrics for the charts; nil when no
	// runtime backend runs here. BARQuota is --quota-bar-storage (0: none).
	Samples  *sampling.Sampler
	BARQuota int64
	// PublicURL is where clients reach the control plane: runtimes made
	// here name their BAR files under it, and an https one sets the Secure
	// flag of cookies when TLS ends in front of the control plane.
	PublicURL string
	Log       *slog.Logger
	Now       clock.Func
	// SessionIdle and SessionMax bound a session's life; zero: 1 h idle, 12 h in all.
	SessionIdle, SessionMax time.Duration

	once   sync.Once
	pages  map[string]*page // by name, parsed at first use
	logins throttle
}

// page is one page's template set, parsed when it is first rendered: the
// sets of every page (the layout and partials are parsed again into each)
// held 2.2 MB of an idle control plane's 3.3 MB of heap, whose dashboard
// may never be opened.
type page struct {
	file string // its file in templateFS
	once sync.Once
	t    *template.Template
}

// template parses the page with the layout into its own set, so every
// page can define "content" without clashing with the others.
func (p *page) template() *template.Template {
	p.once.Do(func() {
		p.t = template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", p.file))
	})
	return p.t
}

func (d *Dashboard) now() time.Time { return d.Now.Now().UTC() }

func (d *Dashboard) init() {
	d.once.Do(func() {
		d.pages = parsePages()
		if d.Log == nil {
			d.Log = slog.New(slog.DiscardHandler)
		}
	})
}

var funcs = template.FuncMap{
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "never"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"join":  strings.Join,
	"bytes": bytesOf,
	"key":   key,
	// pair hands a sub-template the page's view and one more argument.
	"pair": func(v view, kind string) map[string]any { return map[string]any{"V": v, "Kind": kind} },
	"deref": func(p *int) int {
		if p == nil {
			return 1
		}
		return *p
	},
}

// key names a ticked box in view.Checked.
func key(prefix, name string) string { return prefix + ":" + name }

// parsePages names every page of templateFS; each is parsed at its first
// use (page.template).
func parsePages() map[string]*page {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	out := map[string]*page{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" || base == "partials" {
			continue
		}
		out[base] = &page{file: n}
	}
	return out
}

// Handler returns the dashboard's pages.
func (d *Dashboard) Handler() http.Handler { return headers(d.routes()) }

// routes is the dashboard's route table. Every page is listed here.
func (d *Dashboard) routes() *http.ServeMux {
	d.init()
	mux := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", d.home)
	mux.HandleFunc("GET /login", d.loginPage)
	mux.HandleFunc("POST /login", d.login)
	mux.Handle("POST /logout", d.authed(iam.RoleViewer, d.logout))

	// Integration runtimes: everyone reads, developers change.
	mux.Handle("GET /overview", d.authed(iam.RoleViewer, d.overview))
	mux.Handle("GET /overview/tokens.svg", d.authed(iam.RoleViewer, d.tokenChart))
	mux.Handle("GET /runtimes", d.authed(iam.RoleViewer, d.runtimesPage))
	mux.Handle("GET /runtimes/events", d.authed(iam.RoleViewer, d.runtimeEvents))
	mux.Handle("POST /runtimes", d.authed(iam.RoleDeveloper, d.createRuntime))
	mux.Handle("GET /runtimes/{name}", d.authed(iam.RoleViewer, d.runtimePage))
	mux.Handle("GET /runtimes/{name}/charts/{chart}", d.authed(iam.RoleViewer, d.runtimeChart))
	mux.Handle("POST /runtimes/{name}/spec", d.authed(iam.RoleDeveloper, d.setSpec))
	mux.Handle("POST /runtimes/{name}/replicas", d.authed(iam.RoleDeveloper, d.setReplicas))
	mux.Handle("POST /runtimes/{name}/delete", d.authed(iam.RoleDeveloper, d.deleteRuntime))
	mux.Handle("POST /runtimes/{name}/traces", d.authed(iam.RoleDeveloper, d.startTrace))
	mux.Handle("POST /traces/{trace}/stop", d.authed(iam.RoleDeveloper, d.stopTrace))
	mux.Handle("GET /traces/{trace}/download", d.authed(iam.RoleViewer, d.downloadTrace))

	// BAR files.
	mux.Handle("GET /bar-files", d.authed(iam.RoleViewer, d.barFilesPage))
	mux.Handle("POST /bar-files", d.authed(iam.RoleDeveloper, d.uploadBARFile))
	mux.Handle("GET /bar-files/{name}/download", d.authed(iam.RoleViewer, d.downloadBARFile))
	mux.Handle("POST /bar-files/{name}/delete", d.authed(iam.RoleDeveloper, d.deleteBARFile))

	// Configurations: data goes in, never comes out.
	mux.Handle("GET /configurations", d.authed(iam.RoleViewer, d.configurationsPage))
	mux.Handle("POST /configurations", d.authed(iam.RoleDeveloper, d.createConfiguration))
	mux.Handle("POST /configurations/{name}/delete", d.authed(iam.RoleDeveloper, d.deleteConfiguration))

	// Settings: public API credentials (admins), API keys (everyone their own).
	mux.Handle("GET /apps", d.authed(iam.RoleViewer, d.appsPage))
	mux.Handle("POST /apps/consumer-orgs", d.authed(iam.RoleDeveloper, d.createConsumerOrg))
	mux.Handle("POST /apps", d.authed(iam.RoleDeveloper, d.createApp))
	mux.Handle("GET /apps/{catalog}", d.authed(iam.RoleViewer, d.catalogPage))
	mux.Handle("GET /apps/{catalog}/{corg}", d.authed(iam.RoleViewer, d.orgPage))
	mux.Handle("GET /apps/{catalog}/{corg}/{app}", d.authed(iam.RoleViewer, d.appPage))
	mux.Handle("POST /apps/{catalog}/{corg}/{app}/credentials", d.authed(iam.RoleDeveloper, d.createAppCredential))
	mux.Handle("POST /apps/{catalog}/{corg}/{app}/credentials/{credential}/renew", d.authed(iam.RoleDeveloper, d.renewLease))
	mux.Handle("POST /apps/{catalog}/{corg}/{app}/credentials/{credential}/delete", d.authed(iam.RoleDeveloper, d.deleteAppCredential))
	// Published APIs, their plans and the apps' subscriptions: everyone
	// reads, developers publish, edit, subscribe, approve and unsubscribe.
	mux.Handle("GET /apis", d.authed(iam.RoleViewer, d.apisPage))
	mux.Handle("POST /apis", d.authed(iam.RoleDeveloper, d.createAPI))
	mux.Handle("GET /apis/{name}", d.authed(iam.RoleViewer, d.apiPage))
	mux.Handle("GET /apis/{name}/openapi", d.authed(iam.RoleViewer, d.downloadAPIDocument))
	mux.Handle("GET /apis/{name}/edit", d.authed(iam.RoleDeveloper, d.apiEditPage))
	mux.Handle("POST /apis/{name}/edit", d.authed(iam.RoleDeveloper, d.editAPI))
	mux.Handle("POST /apis/{name}/delete", d.authed(iam.RoleDeveloper, d.deleteAPI))
	mux.Handle("GET /plans", d.authed(iam.RoleViewer, d.plansPage))
	mux.Handle("POST /plans", d.authed(iam.RoleDeveloper, d.createPlan))
	mux.Handle("GET /plans/{name}", d.authed(iam.RoleViewer, d.planPage))
	mux.Handle("GET /plans/{name}/edit", d.authed(iam.RoleDeveloper, d.planEditPage))
	mux.Handle("POST /plans/{name}/edit", d.authed(iam.RoleDeveloper, d.editPlan))
	mux.Handle("POST /plans/{name}/delete", d.authed(iam.RoleDeveloper, d.deletePlan))
	mux.Handle("POST /plans/{name}/subscriptions", d.authed(iam.RoleDeveloper, d.subscribe))
	mux.Handle("GET /subscriptions", d.authed(iam.RoleViewer, d.subscriptionsPage))
	mux.Handle("POST /subscriptions/{name}/approve", d.authed(iam.RoleDeveloper, d.approveSubscription))
	mux.Handle("POST /subscriptions/{name}/delete", d.authed(iam.RoleDeveloper, d.unsubscribe))
	mux.Handle("GET /settings/credentials", d.authed(iam.RoleAdmin, d.credentialsPage))
	mux.Handle("POST /settings/credentials", d.authed(iam.RoleAdmin, d.createCredential))
	mux.Handle("POST /settings/credentials/{name}/delete", d.authed(iam.RoleAdmin, d.deleteCredential))
	mux.Handle("GET /settings/identities", d.authed(iam.RoleAdmin, d.identitiesPage))
	mux.Handle("POST /settings/identities/{kind}", d.authed(iam.RoleAdmin, d.createIdentity))
	mux.Handle("POST /settings/identities/{kind}/{name}/role", d.authed(iam.RoleAdmin, d.setRole))
	mux.Handle("POST /settings/identities/{kind}/{name}/delete", d.authed(iam.RoleAdmin, d.deleteIdentity))
	mux.Handle("POST /settings/identities/users/{name}/password", d.authed(iam.RoleAdmin, d.setPassword))
	mux.Handle("GET /settings/audit", d.authed(iam.RoleAdmin, d.auditLog))
	mux.Handle("GET /api-spec", d.authed(iam.RoleViewer, d.apiSpec))
	mux.Handle("GET /settings/api-keys", d.authed(iam.RoleViewer, d.apiKeysPage))
	mux.Handle("POST /settings/api-keys", d.authed(iam.RoleViewer, d.createAPIKey))
	mux.Handle("POST /settings/api-keys/{id}/lock", d.authed(iam.RoleViewer, d.lockAPIKey(true)))
	mux.Handle("POST /settings/api-keys/{id}/unlock", d.authed(iam.RoleViewer, d.lockAPIKey(false)))
	mux.Handle("POST /settings/api-keys/{id}/delete", d.authed(iam.RoleViewer, d.deleteAPIKey))
	return mux
}

// Mount serves the dashboard's pages and hands every other request to api,
// so API paths (and API 404s and 405s, answered in JSON) are untouched.
func (d *Dashboard) Mount(api http.Handler, log *slog.Logger) http.Handler {
	mux := d.routes()
	withIDs := obs.Middleware(log, headers(mux))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// No page lives under /api/ (TestNoPageUnderAPI), so API calls
		// skip matching this table.
		if strings.HasPrefix(r.URL.Path, "/api/") {
			api.ServeHTTP(w, r)
			return
		}
		if _, pattern := mux.Handler(r); pattern != "" {
			obs.SetRoute(r.Context(), pattern)
			withIDs.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// headers sets what every page needs: nothing from elsewhere may load
// (scripts only from /static, never inline), no framing (clickjacking), no caching (a page
// may hold a secret shown once).
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("X-Frame-Options", "DENY")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			hd.Set("Cache-Control", "no-store")
		}
		next.ServeHTTP(w, r)
	})
}

// view is what every page template gets.
type view struct {
	Title    string
	Nav      string
	User     *userView
	CSRF     string
	Flash    string
	Error    string // a page-level error, in words
	Page     any
	Form     map[string]string // what was typed, kept when a form fails
	FormErr  string            // the error of the form on the page
	SpecErr  string            // the error of a second form on the page
	TraceErr string            // the error of the trace form
	Checked  map[string]bool   // ticked boxes, kept when a form fails
	Pager    pager             // the links of a long table's pages
}

type userView struct {
	Name, Role, InstanceID string
	CanWrite, IsAdmin      bool
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, page string, v view) {
	if rq := sessionOf(r); rq != nil {
		v.User = &userView{Name: rq.p.SubjectName, Role: rq.p.Role, InstanceID: rq.p.InstanceID,
			CanWrite: iam.RoleRank(rq.p.Role) >= iam.RoleRank(iam.RoleDeveloper), IsAdmin: rq.p.IsAdmin()}
		v.CSRF = rq.se.csrf
		if v.Flash == "" {
			v.Flash = d.takeFlash(r.Context(), rq.se)
		}
	}
	if v.Form == nil {
		v.Form = map[string]string{}
	}
	if v.Checked == nil {
		v.Checked = map[string]bool{}
	}
	pg, ok := d.pages[page]
	if !ok {
		panic("web: no page " + page)
	}
	var b strings.Builder
	if err := pg.template().Execute(&b, v); err != nil {
		d.Log.ErrorContext(r.Context(), "dashboard page failed to render", "page", page, "request_id", obs.RequestID(r.Context()), "err", err)
		http.Error(w, "the page failed to render; the request id identifies it in the server's log", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// message turns a domain error into words a person may see, and the HTTP
// status of the page that shows it. Unknown errors are logged with the
// request id and shown only as that id, so no internal detail leaks.
func (d *Dashboard) message(r *http.Request, err error) (int, string) {
	var ie *iam.Error
	var inv *barstore.InvalidError
	var big *barstore.TooLargeError
	var busy *barstore.BusyError
	switch {
	case errors.As(err, &busy):
		return http.StatusServiceUnavailable, busy.Error()
	case errors.As(err, &ie):
		switch ie.Kind {
		case iam.KindInvalid:
			return http.StatusBadRequest, ie.Msg
		case iam.KindUnauthorized:
			return http.StatusUnauthorized, ie.Msg
		case iam.KindForbidden:
			return http.StatusForbidden, ie.Msg
		case iam.KindNotFound:
			return http.StatusNotFound, ie.Msg
		case iam.KindConflict:
			return http.StatusConflict, ie.Msg
		}
	case errors.As(err, &inv):
		return http.StatusBadRequest, inv.Error()
	case errors.As(err, &big):
		return http.StatusRequestEntityTooLarge, big.Error()
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "not found"
	case store.Unavailable(err) && r.Context().Err() == nil:
		d.Log.WarnContext(r.Context(), "store unavailable", "request_id", obs.RequestID(r.Context()), "err", err)
		return http.StatusServiceUnavailable, "the store is unavailable (restarting or out of reach): try again in a moment"
	}
	id := obs.RequestID(r.Context())
	d.Log.ErrorContext(r.Context(), "dashboard request failed", "request_id", id, "err", err)
	return http.StatusInternalServerError, fmt.Sprintf("the server failed to do this; request id %s identifies it in the server's log", id)
}

// fail shows an error page for err.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := d.message(r, err)
	d.render(w, r, status, "error", view{Title: "Error", Error: msg})
}

// redirect ends a successful POST (post/redirect/get), with a message for
// the next page.
func (d *Dashboard) redirect(w http.ResponseWriter, r *http.Request, to, flash string) {
	if rq := sessionOf(r); rq != nil && flash != "" {
		d.setFlash(r.Context(), rq.se, flash)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	if se, _ := d.current(r); se == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/runtimes", http.StatusSeeOther)
}

// tableRows is how many rows a long table of the dashboard shows at a
// time; its pager links the next page.
const tableRows = 100

// pager holds the links of a long table's pages.
type pager struct {
	Path string // the page's own path, which the links go to
	// Next is the query string of the next page ("?continue=…", the
	// list's own token); "" on the last.
	Next string
	// Later says this page is not the first.
	Later bool
	// ID prefixes the links' ids: "page", or the table's name on a page
	// of several tables.
	ID string
}

// tablePage reads the page of a long table that the request's ?continue
// names (the first without it), through list, the service's paged list:
// the same keyset pages as the API's, so rows created or deleted meanwhile
// never make another repeat or go missing. A token that is not this
// list's is the service's 400.
func tablePage[T any](r *http.Request, list func(iam.ListRequest) (iam.ListPage[T], error)) ([]T, pager, error) {
	return pageOfRows(r, tableRows, "continue", "page", list)
}

// tablePageOf is tablePage with pages of rows rows.
func tablePageOf[T any](r *http.Request, rows int, list func(iam.ListRequest) (iam.ListPage[T], error)) ([]T, pager, error) {
	return pageOfRows(r, rows, "continue", "page", list)
}

// namedTablePage is tablePage for one of several tables on a page: param
// is the query parameter of its token, id the prefix of its links' ids.
func namedTablePage[T any](r *http.Request, param, id string, list func(iam.ListRequest) (iam.ListPage[T], error)) ([]T, pager, error) {
	return pageOfRows(r, tableRows, param, id, list)
}

func pageOfRows[T any](r *http.Request, rows int, param, id string, list func(iam.ListRequest) (iam.ListPage[T], error)) ([]T, pager, error) {
	cont := r.URL.Query().Get(param)
	if r.Method != http.MethodGet {
		cont = "" // a form's answer shows the first page
	}
	pg, err := list(iam.ListRequest{Limit: rows, Continue: cont})
	if err != nil {
		return nil, pager{}, err
	}
	p := pager{Path: r.URL.Path, Later: cont != "", ID: id}
	if pg.Continue != "" {
		p.Next = "?" + url.Values{param: {pg.Continue}}.Encode()
	}
	return pg.Items, p, nil
}
