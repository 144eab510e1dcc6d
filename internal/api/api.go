// Package api owns the control plane's HTTP surface: the route table of
// /api/v1 and the health endpoints, request decoding, and the mapping of
// domain and store errors to JSON error answers. Handlers stay thin: the
// work is done by the domain packages (iam, store, …). The OpenAPI document
// in api/openapi.yaml is the contract of what is routed here.
package api

import (
	"context"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-dev/sluice/internal/airbyte"
	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/ibmiam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/wire"
)

// API holds what the handlers need.
type API struct {
	Store   store.Store
	IAM     *iam.Service
	Configs *configuration.Service
	BARs    *barstore.Service
	// Runtimes manages integration runtimes; Reconciler is what runs them.
	Runtimes   *orchestrator.Service
	Reconciler *orchestrator.Reconciler
	Traces     *orchestrator.Traces
	Egress     *orchestrator.EgressPolicies
	Bundles    *orchestrator.BundleKeys
	// Apps manages consumer catalogs, consumer orgs, apps and their credentials.
	Apps *apps.Service
	// APIs manages published APIs, plans and subscriptions.
	APIs *apis.Service
	// PublicURL is where clients reach this control plane (BAR urls).
	PublicURL string
	// RateLimit limits calls per client id and per instance; nil: no limits.
	RateLimit *iam.RateLimiter
	Log       *slog.Logger
	Now       clock.Func

	runtimeAnswers runtimeAnswers // the runtime lists' answers, by stored row
}

func (a *API) now() time.Time { return a.Now.Now() }

// Handler returns the whole HTTP surface of the control plane. Every route
// is listed here, so a reader sees the API in one screen.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /readyz", a.readyz)

	// The contract: the OpenAPI document, public like the health endpoints.
	mux.HandleFunc("GET /api/v1/openapi.yaml", a.openapiYAML)
	mux.HandleFunc("GET /api/v1/openapi.json", a.openapiJSON)

	// Tokens: App Connect's exchange.
	mux.HandleFunc("POST /api/v1/tokens", a.postTokens)

	// OAuth 2.0: token endpoint (RFC 6749), metadata (RFC 8414), keys
	// (RFC 7517), introspection (RFC 7662), revocation (RFC 7009).
	mux.HandleFunc("POST /oauth/token", a.postOAuthToken)
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", a.getOAuthMetadata)
	mux.HandleFunc("GET /oauth/jwks", a.getJWKS)
	mux.HandleFunc("POST /oauth/introspect", a.postIntrospect)
	mux.HandleFunc("POST /oauth/revoke", a.postRevoke)

	// Who am I.
	mux.Handle("GET /api/v1/whoami", a.authed(iam.RoleViewer, a.whoami))

	// Users and service IDs (admins; the service checks, the table admits
	// every role so a user can read their own record).
	for _, c := range []struct{ path, kind string }{{"users", store.KindUser}, {"service-ids", store.KindServiceID}} {
		mux.Handle("GET /api/v1/"+c.path, a.authed(iam.RoleAdmin, a.listIdentities(c.kind)))
		mux.Handle("POST /api/v1/"+c.path, a.authed(iam.RoleAdmin, a.putIdentity(c.kind, true)))
		mux.Handle("GET /api/v1/"+c.path+"/{name}", a.authed(iam.RoleViewer, a.getIdentity(c.kind)))
		mux.Handle("PUT /api/v1/"+c.path+"/{name}", a.authed(iam.RoleAdmin, a.putIdentity(c.kind, false)))
		mux.Handle("DELETE /api/v1/"+c.path+"/{name}", a.authed(iam.RoleAdmin, a.deleteIdentity(c.kind)))
	}

	// API keys: everyone manages their own; admins everyone's.
	mux.Handle("GET /api/v1/api-keys", a.authed(iam.RoleViewer, a.listAPIKeys))
	mux.Handle("POST /api/v1/api-keys", a.authed(iam.RoleViewer, a.createAPIKey))
	mux.Handle("GET /api/v1/api-keys/{id}", a.authed(iam.RoleViewer, a.getAPIKey))
	mux.Handle("POST /api/v1/api-keys/{id}/lock", a.authed(iam.RoleViewer, a.lockAPIKey(true)))
	mux.Handle("POST /api/v1/api-keys/{id}/unlock", a.authed(iam.RoleViewer, a.lockAPIKey(false)))
	mux.Handle("DELETE /api/v1/api-keys/{id}", a.authed(iam.RoleViewer, a.deleteAPIKey))

	// Public API credentials (admins).
	mux.Handle("GET /api/v1/credentials", a.authed(iam.RoleAdmin, a.listCredentials))
	mux.Handle("POST /api/v1/credentials", a.authed(iam.RoleAdmin, a.putCredential(true)))
	mux.Handle("GET /api/v1/credentials/{name}", a.authed(iam.RoleAdmin, a.getCredential))
	mux.Handle("PUT /api/v1/credentials/{name}", a.authed(iam.RoleAdmin, a.putCredential(false)))
	mux.Handle("DELETE /api/v1/credentials/{name}", a.authed(iam.RoleAdmin, a.deleteCredential))

	// Configurations: developers write, everyone reads; data is write-only.
	mux.Handle("GET /api/v1/configuration-types", a.authed(iam.RoleViewer, a.listConfigurationTypes))
	mux.Handle("GET /api/v1/configurations", a.authed(iam.RoleViewer, a.listConfigurations))
	mux.Handle("POST /api/v1/configurations", a.authed(iam.RoleDeveloper, a.putConfiguration(true)))
	mux.Handle("GET /api/v1/configurations/{name}", a.authed(iam.RoleViewer, a.getConfiguration))
	mux.Handle("PUT /api/v1/configurations/{name}", a.authed(iam.RoleDeveloper, a.putConfiguration(false)))
	mux.Handle("DELETE /api/v1/configurations/{name}", a.authed(iam.RoleDeveloper, a.deleteConfiguration))

	// BAR files: raw bytes in, url out.
	mux.Handle("GET /api/v1/bar-files", a.authed(iam.RoleViewer, a.listBARFiles))
	mux.Handle("GET /api/v1/bar-files/{name}", a.authed(iam.RoleViewer, a.getBARFile))
	mux.Handle("PUT /api/v1/bar-files/{name}", a.authed(iam.RoleDeveloper, a.putBARFile))
	mux.Handle("GET /api/v1/bar-files/{name}/content", a.authed(iam.RoleViewer, a.getBARContent))
	mux.Handle("DELETE /api/v1/bar-files/{name}", a.authed(iam.RoleDeveloper, a.deleteBARFile))

	// Integration runtimes (?watch=true streams changes as server-sent events).
	mux.Handle("GET /api/v1/integration-runtimes", a.authed(iam.RoleViewer, a.listRuntimes))
	mux.Handle("POST /api/v1/integration-runtimes", a.authed(iam.RoleDeveloper, a.putRuntime(true)))
	mux.Handle("GET /api/v1/integration-runtimes/{name}", a.authed(iam.RoleViewer, a.getRuntime))
	mux.Handle("PUT /api/v1/integration-runtimes/{name}", a.authed(iam.RoleDeveloper, a.putRuntime(false)))
	mux.Handle("DELETE /api/v1/integration-runtimes/{name}", a.authed(iam.RoleDeveloper, a.deleteRuntime))
	mux.Handle("GET /api/v1/integration-runtimes/{name}/logs", a.authed(iam.RoleViewer, a.runtimeLogs))
	mux.Handle("POST /api/v1/integration-runtimes/{name}/basic-auth", a.authed(iam.RoleDeveloper, a.generateBasicAuth))

	// Traces: a trace object switches tracing on for a runtime while it exists.
	mux.Handle("GET /api/v1/traces", a.authed(iam.RoleViewer, a.listTraces))
	mux.Handle("GET /api/v1/traces/{name}", a.authed(iam.RoleViewer, a.getTrace))
	mux.Handle("PUT /api/v1/traces/{name}", a.authed(iam.RoleDeveloper, a.putTrace))
	mux.Handle("DELETE /api/v1/traces/{name}", a.authed(iam.RoleDeveloper, a.deleteTrace))
	mux.Handle("GET /api/v1/traces/{name}/download", a.authed(iam.RoleViewer, a.downloadTrace))

	// Consumer apps: catalogs ⊃ consumer orgs ⊃ apps ⊃ credentials and
	// leases (credentials that expire). Developers write, everyone reads;
	// every path segment takes an id or a name.
	mux.Handle("GET /api/v1/catalogs", a.authed(iam.RoleViewer, a.listCatalogs))
	mux.Handle("POST /api/v1/catalogs", a.authed(iam.RoleDeveloper, a.createCatalog))
	mux.Handle("GET /api/v1/catalogs/{catalog}", a.authed(iam.RoleViewer, a.getCatalog))
	mux.Handle("PUT /api/v1/catalogs/{catalog}", a.authed(iam.RoleDeveloper, a.putCatalog))
	mux.Handle("DELETE /api/v1/catalogs/{catalog}", a.authed(iam.RoleDeveloper, a.deleteCatalog))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs", a.authed(iam.RoleViewer, a.listConsumerOrgs))
	mux.Handle("POST /api/v1/catalogs/{catalog}/consumer-orgs", a.authed(iam.RoleDeveloper, a.createConsumerOrg))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}", a.authed(iam.RoleViewer, a.getConsumerOrg))
	mux.Handle("PUT /api/v1/catalogs/{catalog}/consumer-orgs/{corg}", a.authed(iam.RoleDeveloper, a.putConsumerOrg))
	mux.Handle("DELETE /api/v1/catalogs/{catalog}/consumer-orgs/{corg}", a.authed(iam.RoleDeveloper, a.deleteConsumerOrg))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps", a.authed(iam.RoleViewer, a.listApps))
	mux.Handle("POST /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps", a.authed(iam.RoleDeveloper, a.createApp))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}", a.authed(iam.RoleViewer, a.getApp))
	mux.Handle("PUT /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}", a.authed(iam.RoleDeveloper, a.putApp))
	mux.Handle("DELETE /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}", a.authed(iam.RoleDeveloper, a.deleteApp))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/credentials", a.authed(iam.RoleViewer, a.listAppCredentials(false)))
	mux.Handle("POST /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/credentials", a.authed(iam.RoleDeveloper, a.createAppCredential(false)))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/credentials/{credential}", a.authed(iam.RoleViewer, a.getAppCredential(false)))
	mux.Handle("DELETE /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/credentials/{credential}", a.authed(iam.RoleDeveloper, a.deleteAppCredential(false)))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/leases", a.authed(iam.RoleViewer, a.listAppCredentials(true)))
	mux.Handle("POST /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/leases", a.authed(iam.RoleDeveloper, a.createAppCredential(true)))
	mux.Handle("DELETE /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/leases", a.authed(iam.RoleDeveloper, a.revokeLeases))
	mux.Handle("GET /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/leases/{credential}", a.authed(iam.RoleViewer, a.getAppCredential(true)))
	mux.Handle("DELETE /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/leases/{credential}", a.authed(iam.RoleDeveloper, a.deleteAppCredential(true)))
	mux.Handle("POST /api/v1/catalogs/{catalog}/consumer-orgs/{corg}/apps/{app}/leases/{credential}/renew", a.authed(iam.RoleDeveloper, a.renewLease))
	// Published APIs (?watch=true streams changes), their OpenAPI
	// documents, plans and subscriptions: developers write, everyone reads.
	mux.Handle("GET /api/v1/apis", a.authed(iam.RoleViewer, a.listAPIs))
	mux.Handle("POST /api/v1/apis", a.authed(iam.RoleDeveloper, a.putAPI(true)))
	mux.Handle("GET /api/v1/apis/{name}", a.authed(iam.RoleViewer, a.getAPI))
	mux.Handle("PUT /api/v1/apis/{name}", a.authed(iam.RoleDeveloper, a.putAPI(false)))
	mux.Handle("DELETE /api/v1/apis/{name}", a.authed(iam.RoleDeveloper, a.deleteAPI))
	mux.Handle("GET /api/v1/apis/{name}/openapi", a.authed(iam.RoleViewer, a.getAPIDocument))
	mux.Handle("GET /api/v1/plans", a.authed(iam.RoleViewer, a.listPlans))
	mux.Handle("POST /api/v1/plans", a.authed(iam.RoleDeveloper, a.putPlan(true)))
	mux.Handle("GET /api/v1/plans/{name}", a.authed(iam.RoleViewer, a.getPlan))
	mux.Handle("PUT /api/v1/plans/{name}", a.authed(iam.RoleDeveloper, a.putPlan(false)))
	mux.Handle("DELETE /api/v1/plans/{name}", a.authed(iam.RoleDeveloper, a.deletePlan))
	mux.Handle("GET /api/v1/subscriptions", a.authed(iam.RoleViewer, a.listSubscriptions))
	mux.Handle("POST /api/v1/subscriptions", a.authed(iam.RoleDeveloper, a.putSubscription(true)))
	mux.Handle("GET /api/v1/subscriptions/{name}", a.authed(iam.RoleViewer, a.getSubscription))
	mux.Handle("PUT /api/v1/subscriptions/{name}", a.authed(iam.RoleDeveloper, a.putSubscription(false)))
	mux.Handle("DELETE /api/v1/subscriptions/{name}", a.authed(iam.RoleDeveloper, a.deleteSubscription))
	mux.Handle("POST /api/v1/subscriptions/{name}/approve", a.authed(iam.RoleDeveloper, a.approveSubscription))

	// What runtime replicas fetch (runtimeRoutes: their bundle and their
	// gateway's state), also served alone by BundleHandler.
	a.runtimeRoutes(mux)

	// Audit (admins).
	mux.Handle("GET /api/v1/audit", a.authed(iam.RoleAdmin, a.listAudit))

	// The instance's egress allow-list (admins).
	mux.Handle("GET /api/v1/egress-policy", a.authed(iam.RoleAdmin, a.getEgressPolicy))
	mux.Handle("PUT /api/v1/egress-policy", a.authed(iam.RoleAdmin, a.putEgressPolicy))

	// Other tools' wires: adapters over the same services, each with its
	// own route table and document (api/airbyte.yaml, api/ibm-iam.yaml).
	(&airbyte.Adapter{IAM: a.IAM, Log: a.Log, RateLimit: a.RateLimit}).Routes(mux)
	(&ibmiam.Adapter{IAM: a.IAM, Log: a.Log, RateLimit: a.RateLimit}).Routes(mux)
	return obs.Middleware(a.Log, a.jsonMisses(mux))
}

// runtimeRoutes are the routes runtime replicas call: they fetch their
// bundle (BARs and configurations) with a token scoped to one runtime
// generation, which no user token opens, and watch what their gateway
// enforces with the same token.
func (a *API) runtimeRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /internal/v1/runtimes/{uid}/generations/{generation}/bundle", a.getRuntimeBundle)
	mux.HandleFunc("GET /internal/v1/runtimes/{uid}/generations/{generation}/gateway", a.getGatewayState)
}

// BundleHandler is the runtime-facing surface alone (`sluice serve
// --bundle-listen`): runtimeRoutes and /healthz, every other path a 404.
// A cluster's network policy can then let runtimes reach this port and
// not the API, the dashboard or the token endpoints.
func (a *API) BundleHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", a.healthz)
	a.runtimeRoutes(mux)
	return obs.Middleware(a.Log, a.jsonMisses(mux))
}

func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when the store answers and its schema is current,
// so a load balancer sends no traffic to a replica that cannot serve it.
func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := a.Store.Ready(ctx); err != nil {
		a.Log.WarnContext(r.Context(), "not ready", "err", err)
		reason := "store not ready"
		if store.Unavailable(err) || ctx.Err() != nil {
			reason = "store unavailable"
		}
		wire.SetRetryAfterStoreUnavailable(w)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "reason": reason})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "store": a.Store.Kind()})
}

func (a *API) notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, r, http.StatusNotFound, "NotFound", "no such endpoint: "+r.Method+" "+r.URL.Path)
}

// jsonMisses answers requests no route takes with JSON errors: 405 with
// Allow when the path exists for other methods, 404 otherwise. (A "/"
// catch-all route would turn every wrong method into a 404.)
func (a *API) jsonMisses(mux *http.ServeMux) http.Handler {
	var literal literalRoutes
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pattern, ok := literal.lookup(r); ok {
			obs.SetRoute(r.Context(), pattern)
			mux.ServeHTTP(w, r)
			return
		}
		if _, pattern := mux.Handler(r); pattern != "" {
			literal.remember(r, pattern)
			obs.SetRoute(r.Context(), pattern)
			mux.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, r, http.StatusMethodNotAllowed, "MethodNotAllowed", r.Method+" is not allowed on "+r.URL.Path+": use "+strings.Join(allow, ", "))
			return
		}
		a.notFound(w, r)
	})
}

// literalRoutes remembers which route takes a method and path that a
// pattern without wildcards names exactly (GET /api/v1/whoami, GET
// /api/v1/integration-runtimes): the route table would take it again, so
// jsonMisses need not match it before ServeMux.ServeHTTP matches it once
// more (a tenth of an authenticated GET's handler time went to matching).
// Paths holding a name are not remembered, so the memo is bounded by the
// route table; it is copied on write, as it stops changing once each
// route has been called.
type literalRoutes struct {
	mu   sync.Mutex
	seen atomic.Pointer[map[methodPath]string]
}

type methodPath struct{ method, path string }

// maxLiteralRoutes bounds the memo whatever the route table holds.
const maxLiteralRoutes = 512

func (l *literalRoutes) lookup(r *http.Request) (string, bool) {
	m := l.seen.Load()
	if m == nil {
		return "", false
	}
	p, ok := (*m)[methodPath{r.Method, r.URL.Path}]
	return p, ok
}

// remember notes pattern for r's method and path when the pattern names
// exactly that method and path: no wildcard, no host, no subtree.
func (l *literalRoutes) remember(r *http.Request, pattern string) {
	method, path, ok := strings.Cut(pattern, " ")
	if !ok || method != r.Method || path != r.URL.Path || strings.ContainsRune(path, '{') {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.seen.Load()
	if old != nil && len(*old) >= maxLiteralRoutes {
		return
	}
	m := make(map[methodPath]string, 1)
	if old != nil {
		m = maps.Clone(*old)
	}
	m[methodPath{r.Method, r.URL.Path}] = pattern
	l.seen.Store(&m)
}
