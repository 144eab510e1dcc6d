// Package apic is the adapter that speaks IBM API Connect's platform API
// (/api/token, /api/orgs/…, /api/catalogs/…, /api/consumer-orgs/…,
// /api/apps/…) over Sluice's own services, so API Connect clients
// (Infisical's dynamic secret, trawler, scripts) drive Sluice unchanged.
// Its route table is Handler; its contract is api/apic.yaml. It translates
// shapes and errors and decides nothing: the instance is the provider org,
// and every rule lives in packages iam and apps. What is its own is wire
// behaviour: lists with limit and offset, absolute url fields built from
// the public URL, errors as {"status":N,"message":[…]}, no redirects, and
// replaying the answer of a repeated create instead of minting a duplicate.
package apic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/wire"
)

// Adapter holds the services the wire is translated onto.
type Adapter struct {
	IAM     *iam.Service
	Apps    *apps.Service
	APIs    *apis.Service // published APIs and plans, for discovery
	Store   store.Store
	Keyring *secret.Keyring // seals remembered create answers (they hold a secret)
	// PublicURL is where clients reach this server; url fields point there.
	PublicURL string
	Log       *slog.Logger
	Now       clock.Func
	// RateLimit is the control plane's limiter (shared with /api/v1);
	// nil: no limits.
	RateLimit *iam.RateLimiter
}

// Handler is the whole API Connect surface. Every route is listed here.
func (a *Adapter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/token", a.postToken)

	mux.Handle("GET /api/orgs", a.authed(a.listOrgs))
	mux.Handle("GET /api/orgs/{org}", a.authed(a.getOrg))
	mux.Handle("GET /api/orgs/{org}/catalogs", a.authed(a.listCatalogs))
	mux.Handle("GET /api/orgs/{org}/catalogs/{catalog}", a.authed(a.getCatalog))
	mux.Handle("GET /api/catalogs/{org}/{catalog}", a.authed(a.getCatalog))
	mux.Handle("GET /api/catalogs/{org}/{catalog}/consumer-orgs", a.authed(a.listConsumerOrgs))
	mux.Handle("POST /api/catalogs/{org}/{catalog}/consumer-orgs", a.authed(a.createConsumerOrg))
	mux.Handle("GET /api/catalogs/{org}/{catalog}/apps", a.authed(a.listCatalogApps))
	// Discovery of published APIs and their plans (as products).
	mux.Handle("GET /api/catalogs/{org}/{catalog}/apis", a.authed(a.listAPIs))
	mux.Handle("GET /api/catalogs/{org}/{catalog}/apis/{api}", a.authed(a.getAPI))
	mux.Handle("GET /api/catalogs/{org}/{catalog}/apis/{api}/document", a.authed(a.getAPIDocument))
	mux.Handle("GET /api/catalogs/{org}/{catalog}/products", a.authed(a.listProducts))
	mux.Handle("GET /api/consumer-orgs/{org}/{catalog}/{corg}", a.authed(a.getConsumerOrg))
	mux.Handle("GET /api/consumer-orgs/{org}/{catalog}/{corg}/apps", a.authed(a.listApps))
	mux.Handle("POST /api/consumer-orgs/{org}/{catalog}/{corg}/apps", a.authed(a.createApp))
	mux.Handle("GET /api/apps/{org}/{catalog}/{corg}/{app}", a.authed(a.getApp))
	mux.Handle("GET /api/apps/{org}/{catalog}/{corg}/{app}/credentials", a.authed(a.listCredentials))
	mux.Handle("POST /api/apps/{org}/{catalog}/{corg}/{app}/credentials", a.authed(a.createCredential))
	mux.Handle("GET /api/apps/{org}/{catalog}/{corg}/{app}/credentials/{credential}", a.authed(a.getCredential))
	mux.Handle("DELETE /api/apps/{org}/{catalog}/{corg}/{app}/credentials/{credential}", a.authed(a.deleteCredential))
	return obs.Middleware(a.Log, a.misses(mux))
}

func (a *Adapter) now() time.Time { return a.Now.Now().UTC() }

// ---- answers ----

// errorBody is API Connect's error shape; scripts test .status.
type errorBody struct {
	Status  int      `json:"status"`
	Message []string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		buf.Reset()
		buf.WriteString(`{"status":500,"message":["unable to encode the answer"]}` + "\n")
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Status: status, Message: []string{msg}})
}

// fail answers a domain error in API Connect's shape; internal detail is
// logged, never sent.
func (a *Adapter) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *iam.Error
	if errors.As(err, &ie) {
		status := map[iam.Kind]int{iam.KindInvalid: 400, iam.KindUnauthorized: 401, iam.KindForbidden: 403, iam.KindNotFound: 404, iam.KindConflict: 409}[ie.Kind]
		if status != 0 {
			writeError(w, status, ie.Msg)
			return
		}
	}
	var br *badRequest
	if errors.As(err, &br) {
		writeError(w, br.status, br.msg)
		return
	}
	if store.Unavailable(err) && r.Context().Err() == nil {
		a.Log.WarnContext(r.Context(), "store unavailable", "request_id", obs.RequestID(r.Context()), "err", err)
		wire.SetRetryAfterStoreUnavailable(w)
		writeError(w, http.StatusServiceUnavailable, wire.StoreUnavailableMessage)
		return
	}
	a.Log.ErrorContext(r.Context(), "request failed", "request_id", obs.RequestID(r.Context()), "err", err)
	writeError(w, http.StatusInternalServerError, "the server failed to handle the request; request id "+obs.RequestID(r.Context()))
}

type badRequest struct {
	status int
	msg    string
}

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error {
	return &badRequest{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// misses answers unrouted paths with API Connect errors: 405 with Allow
// for a known path, 404 otherwise; never a redirect (ServeMux would send
// 301 for a missing trailing slash, and Infisical's client follows none).
func (a *Adapter) misses(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			obs.SetRoute(r.Context(), pattern)
			mux.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := mux.Handler(probe); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+": use "+strings.Join(allow, ", "))
			return
		}
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

// decode reads a JSON body into v. Unknown members are accepted: API
// Connect clients send read-only fields back (url, type, created_at…).
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(ct, "application/json") {
		return &badRequest{http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q is not JSON: send application/json", ct)}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &badRequest{http.StatusRequestEntityTooLarge, "the body is larger than 1 MiB"}
		}
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return bad("%s must be a %s", typ.Field, typ.Type.Kind())
		}
		return bad("the body is not a JSON object: %v", err)
	}
	return nil
}

// ---- authentication ----

type principalKey struct{}

func principal(r *http.Request) iam.Principal {
	p, _ := r.Context().Value(principalKey{}).(iam.Principal)
	return p
}

func (a *Adapter) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h0 := r.Header.Get("Authorization")
		scheme, tok, ok := strings.Cut(h0, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			if a.failed(w, r) {
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, http.StatusUnauthorized, "send Authorization: Bearer <token>; get a token from POST /api/token")
			return
		}
		p, err := a.IAM.AuthenticateBearer(r.Context(), strings.TrimSpace(tok))
		if err != nil {
			if errors.Is(err, iam.ErrInvalidToken) {
				if a.failed(w, r) {
					return
				}
				writeError(w, http.StatusUnauthorized, "the token is not valid, has expired or was revoked")
				return
			}
			a.fail(w, r, err)
			return
		}
		if !a.allow(w, p.ClientID, p.InstanceID) {
			return
		}
		p.Source, p.RequestID = wire.ClientAddr(r), obs.RequestID(r.Context())
		if org := r.PathValue("org"); org != "" {
			in, err := a.Store.GetInstance(r.Context(), p.InstanceID)
			if err != nil {
				a.fail(w, r, err)
				return
			}
			if org != in.ID && org != in.Name {
				writeError(w, http.StatusNotFound, "provider org "+org+" not found")
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

// clip keeps an unchecked client id short enough for the audit.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// tokenBody is POST /api/token's body.
type tokenBody struct {
	GrantType    string `json:"grant_type"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	APIKey       string `json:"api_key"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	Realm        string `json:"realm"`
	RefreshToken string `json:"refresh_token"`
}

// postToken answers POST /api/token. Only a caller that has authenticated
// draws on its client's and instance's quota (the Admit hook, asked once
// the grant's credentials hold); a malformed request or failed grant
// counts against the caller's address.
func (a *Adapter) postToken(w http.ResponseWriter, r *http.Request) {
	if a.sourceOver(w, r) {
		return
	}
	var b tokenBody
	if err := decode(w, r, &b); err != nil {
		if !a.failed(w, r) {
			a.fail(w, r, err)
		}
		return
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"grant_type", b.GrantType}, {"client_id", b.ClientID}, {"client_secret", b.ClientSecret}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	switch b.GrantType {
	case "api_key":
		if b.APIKey == "" {
			missing = append(missing, "api_key")
		}
	case "password":
		if b.Username == "" {
			missing = append(missing, "username")
		}
		if b.Password == "" {
			missing = append(missing, "password")
		}
	case "refresh_token":
		if b.RefreshToken == "" {
			missing = append(missing, "refresh_token")
		}
	}
	if len(missing) > 0 {
		if a.failed(w, r) {
			return
		}
		msg := "missing: " + strings.Join(missing, ", ")
		// Audited like every refusal, under the instance the client id or
		// API key names when one does (none of them was checked).
		p := iam.Principal{InstanceID: a.IAM.InstanceOf(r.Context(), b.ClientID, secret.New(b.APIKey), secret.Value{}), SubjectKind: "client",
			SubjectName: clip(b.ClientID), Source: wire.ClientAddr(r), RequestID: obs.RequestID(r.Context())}
		_ = a.IAM.Finish(r.Context(), p, "token.refuse", "token", iam.Invalidf("%s", msg))
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	tok, err := a.IAM.PlatformExchange(r.Context(), iam.PlatformRequest{GrantType: b.GrantType, ClientID: b.ClientID,
		ClientSecret: secret.New(b.ClientSecret), APIKey: secret.New(b.APIKey), Username: b.Username, Password: secret.New(b.Password),
		Realm: b.Realm, RefreshToken: secret.New(b.RefreshToken), Source: wire.ClientAddr(r), RequestID: obs.RequestID(r.Context()),
		Admit: a.RateLimit.Admitter(func(v iam.Verdict) { headers(w, v) })})
	if err != nil {
		if k := iam.KindOf(err); k != iam.KindTooManyRequests && k != 0 && a.failed(w, r) {
			return
		}
		if iam.KindOf(err) == iam.KindTooManyRequests {
			writeError(w, http.StatusTooManyRequests, err.(*iam.Error).Msg)
			return
		}
		if iam.KindOf(err) == iam.KindUnauthorized || iam.KindOf(err) == iam.KindForbidden {
			writeError(w, http.StatusUnauthorized, "the client credentials, API key, password or refresh token are not valid")
			return
		}
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tok)
}

// ---- lists ----

// pageRequest reads API Connect's ?limit (1–1000, default 100) and
// ?offset (from 0).
func pageRequest(r *http.Request) (iam.ListRequest, error) {
	q := r.URL.Query()
	req := iam.ListRequest{Limit: 100}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > iam.MaxListPage {
			return req, bad("limit must be a whole number from 1 to %d, not %q", iam.MaxListPage, v)
		}
		req.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return req, bad("offset must be a whole number from 0, not %q", v)
		}
		req.Offset = n
	}
	return req, nil
}

// answerList answers {"total_results","results"}: one page of list, cut
// by ?limit and ?offset in the store's query (the same keyset list the
// native API pages through), and count for the total of all pages.
func answerList[T, O any](a *Adapter, w http.ResponseWriter, r *http.Request, count func() (int, error), list func(iam.ListRequest) (iam.ListPage[T], error), obj func(T) O) {
	req, err := pageRequest(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pg, err := list(req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	total, err := count()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := make([]O, 0, len(pg.Items))
	for _, it := range pg.Items {
		out = append(out, obj(it))
	}
	writeJSON(w, http.StatusOK, struct {
		TotalResults int `json:"total_results"`
		Results      []O `json:"results"`
	}{total, out})
}

// onePage is a list of items already at hand (the provider org).
func onePage[T any](items []T) (func() (int, error), func(iam.ListRequest) (iam.ListPage[T], error)) {
	return func() (int, error) { return len(items), nil }, func(req iam.ListRequest) (iam.ListPage[T], error) {
		from := min(req.Offset, len(items))
		return iam.ListPage[T]{Items: items[from:min(from+req.Limit, len(items))]}, nil
	}
}

// Mount sends API Connect's paths (/api/… outside /api/v1 and /api/public) to apicHandler
// and everything else to next.
func Mount(next, apicHandler http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		// Airbyte's public API (/api/public/…, package airbyte) is the
		// control plane's too.
		if strings.HasPrefix(p, "/api/") && p != "/api/v1" && !strings.HasPrefix(p, "/api/v1/") && !strings.HasPrefix(p, "/api/public/") {
			apicHandler.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allow counts an authenticated call against the rate limits of its
// client and instance (token calls too) and answers 429 with Retry-After
// when it is over one.
func (a *Adapter) allow(w http.ResponseWriter, clientID, instanceID string) bool {
	return answer(w, a.RateLimit.Check(clientID, instanceID))
}

// sourceOver answers 429 when the caller's address has used up its quota
// of unauthenticated and failed calls (nothing is counted).
func (a *Adapter) sourceOver(w http.ResponseWriter, r *http.Request) bool {
	return !answer(w, a.RateLimit.SourceVerdict(wire.ClientAddr(r), false))
}

// failed counts an unauthenticated or failed call against the caller's
// address, never against the client id it presents (that may be
// anyone's), and answers 429 when that is over its quota.
func (a *Adapter) failed(w http.ResponseWriter, r *http.Request) bool {
	return !answer(w, a.RateLimit.SourceVerdict(wire.ClientAddr(r), true))
}

// headers sets the rate-limit headers of a verdict.
func headers(w http.ResponseWriter, v iam.Verdict) {
	wire.RateLimitHeaders(w, v.Policy, v.State, v.OK, v.RetryAfter)
}

// answer sets the headers of v and, when it refuses, answers 429.
func answer(w http.ResponseWriter, v iam.Verdict) bool {
	headers(w, v)
	if !v.OK {
		writeError(w, http.StatusTooManyRequests, v.Explanation)
	}
	return v.OK
}
