// Package airbyte speaks Airbyte's applications wire over Sluice's
// identity service: the config API's /api/v1/applications/* calls and the
// public API's /api/public/v1/applications*, so tools and SDKs written for
// Airbyte get tokens from Sluice with only the URL changed. An Airbyte
// application is a Sluice client credential owned by the calling user or
// service ID. The adapter translates shapes and errors (api/airbyte.yaml is
// its contract); every rule — who owns what, token lifetimes, what is
// audited — is iam's.
package airbyte

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/wire"
)

// Adapter serves Airbyte's application endpoints.
type Adapter struct {
	IAM *iam.Service
	Log *slog.Logger
	// RateLimit counts authenticated calls per client id and instance,
	// token calls included, and unauthenticated or failed ones per source
	// address, as on /api/v1; nil: no limits.
	RateLimit *iam.RateLimiter
}

// allow counts an authenticated call and sets the rate-limit headers;
// over a limit it answers 429 with Retry-After itself.
func (a *Adapter) allow(w http.ResponseWriter, r *http.Request, clientID, instanceID string) bool {
	return answer(w, r, a.RateLimit.Check(clientID, instanceID))
}

// sourceOver answers 429 when the caller's address has used up its quota
// of unauthenticated and failed calls (nothing is counted).
func (a *Adapter) sourceOver(w http.ResponseWriter, r *http.Request) bool {
	return !answer(w, r, a.RateLimit.SourceVerdict(wire.ClientAddr(r), false))
}

// failed counts a failed or unauthenticated call against the caller's
// address, never against the client id it presents (that may be anyone's),
// and answers 429 when that is over its quota.
func (a *Adapter) failed(w http.ResponseWriter, r *http.Request) bool {
	return !answer(w, r, a.RateLimit.SourceVerdict(wire.ClientAddr(r), true))
}

// headers sets the rate-limit headers of a verdict.
func headers(w http.ResponseWriter, v iam.Verdict) {
	wire.RateLimitHeaders(w, v.Policy, v.State, v.OK, v.RetryAfter)
}

// answer sets the headers of v and, when it refuses, answers 429.
func answer(w http.ResponseWriter, r *http.Request, v iam.Verdict) bool {
	headers(w, v)
	if !v.OK {
		writeError(w, r, http.StatusTooManyRequests, v.Explanation)
	}
	return v.OK
}

// Routes adds the adapter's routes to mux: every endpoint, in one place.
func (a *Adapter) Routes(mux *http.ServeMux) {
	// Config API (what abctl users and Terraform point token_url at).
	mux.HandleFunc("POST /api/v1/applications/token", a.configToken)
	mux.Handle("POST /api/v1/applications/create", a.authed(a.create))
	mux.Handle("POST /api/v1/applications/list", a.authed(a.list))
	mux.Handle("POST /api/v1/applications/delete", a.authed(a.configDelete))

	// Public API.
	mux.HandleFunc("POST /api/public/v1/applications/token", a.publicToken)
	mux.Handle("GET /api/public/v1/applications", a.authed(a.list))
	mux.Handle("POST /api/public/v1/applications", a.authed(a.create))
	mux.Handle("GET /api/public/v1/applications/{id}", a.authed(a.get))
	mux.Handle("DELETE /api/public/v1/applications/{id}", a.authed(a.publicDelete))
}

// Application is Airbyte's ApplicationRead. The id is the client id;
// createdAt is in epoch seconds, as Airbyte's server sends it; the secret
// appears in the create answer only.
type Application struct {
	ID           string `json:"id"`
	Name         string `json:"name"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret,omitempty"`
	CreatedAt    int64  `json:"createdAt"`
}

func application(c store.ClientCredential, sec secret.Value) Application {
	app := Application{ID: c.ClientID, Name: c.Name, ClientID: c.ClientID, CreatedAt: c.CreatedAt.Unix()}
	if !sec.IsZero() {
		app.ClientSecret = sec.Reveal()
	}
	return app
}

// errorBody is every error answer: Airbyte's {"errorId"} (here the request
// id, which finds the request in the server's log), with the status and a
// message that says what was wrong.
type errorBody struct {
	ErrorID string `json:"errorId"`
	Status  int    `json:"status"`
	Message string `json:"message"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	}
	wire.WriteJSON(w, status, errorBody{ErrorID: obs.RequestID(r.Context()), Status: status, Message: msg})
}

// fail answers a domain error in Airbyte's shape: client-safe text for
// known kinds, a generic 500 (details logged only) otherwise.
func (a *Adapter) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ie *iam.Error
	if errors.As(err, &ie) {
		status := map[iam.Kind]int{iam.KindInvalid: http.StatusBadRequest, iam.KindUnauthorized: http.StatusUnauthorized,
			iam.KindForbidden: http.StatusForbidden, iam.KindNotFound: http.StatusNotFound, iam.KindConflict: http.StatusConflict,
			iam.KindTooManyRequests: http.StatusTooManyRequests}[ie.Kind]
		if status != 0 {
			writeError(w, r, status, ie.Msg)
			return
		}
	}
	if store.Unavailable(err) && r.Context().Err() == nil {
		a.Log.WarnContext(r.Context(), "store unavailable", "request_id", obs.RequestID(r.Context()), "err", err)
		wire.SetRetryAfterStoreUnavailable(w)
		writeError(w, r, http.StatusServiceUnavailable, wire.StoreUnavailableMessage)
		return
	}
	a.Log.ErrorContext(r.Context(), "request failed", "request_id", obs.RequestID(r.Context()), "err", err)
	writeError(w, r, http.StatusInternalServerError, "the server failed to handle the request; the errorId identifies it in the server's log")
}

type principalKey struct{}

func withPrincipal(r *http.Request, p iam.Principal) context.Context {
	return context.WithValue(r.Context(), principalKey{}, p)
}

func principal(r *http.Request) iam.Principal {
	p, _ := r.Context().Value(principalKey{}).(iam.Principal)
	return p
}

// authed admits requests with a valid bearer token. Airbyte's clients
// send only the token; an X-IBM-Client-Id, when sent, must be the token's.
func (a *Adapter) authed(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bearer, ok := wire.BearerToken(r)
		if !ok {
			if a.failed(w, r) {
				return
			}
			writeError(w, r, http.StatusUnauthorized, "send Authorization: Bearer <token>; get a token from POST /api/public/v1/applications/token")
			return
		}
		p, err := a.IAM.Authenticate(r.Context(), bearer, r.Header.Get("X-IBM-Client-Id"))
		if errors.Is(err, iam.ErrInvalidToken) && a.failed(w, r) {
			return // failed calls count against their address
		}
		if errors.Is(err, iam.ErrInvalidToken) {
			writeError(w, r, http.StatusUnauthorized, "the token is not valid, has expired or was revoked")
			return
		}
		if err != nil {
			a.fail(w, r, err)
			return
		}
		if !a.allow(w, r, p.ClientID, p.InstanceID) {
			return
		}
		p.Source, p.RequestID = wire.ClientAddr(r), obs.RequestID(r.Context())
		h(w, r.WithContext(withPrincipal(r, p)))
	})
}

// maxBody bounds every request body.
const maxBody = 64 << 10

// decodeJSON reads one JSON object into v strictly (unknown fields, wrong
// types and trailing data are refused). An empty body leaves v as it is
// when emptyOK.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, emptyOK bool) error {
	if mt := wire.MediaType(r); r.Header.Get("Content-Type") != "" && mt != "application/json" {
		return &iam.Error{Kind: iam.KindInvalid, Msg: fmt.Sprintf("content type %q is not JSON: send application/json", r.Header.Get("Content-Type"))}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) && emptyOK {
			return nil
		}
		if errors.Is(err, io.EOF) {
			return &iam.Error{Kind: iam.KindInvalid, Msg: "the body is empty: send a JSON object"}
		}
		return &iam.Error{Kind: iam.KindInvalid, Msg: "the body is not the JSON object this call takes: " + err.Error()}
	}
	if dec.More() {
		return &iam.Error{Kind: iam.KindInvalid, Msg: "the body holds more than one JSON value"}
	}
	return nil
}

// refuse answers bad input to a management call after auditing it under
// the caller, as every other refusal is; nothing was changed.
func (a *Adapter) refuse(w http.ResponseWriter, r *http.Request, action, object string, err error) {
	a.fail(w, r, a.IAM.Finish(r.Context(), principal(r), action, object, err))
}

func (a *Adapter) create(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name string `json:"name"`
	}
	if err := decodeJSON(w, r, &in, false); err != nil {
		a.refuse(w, r, "clientCredential.create", "clientCredential", err)
		return
	}
	c, sec, err := a.IAM.CreateApplication(r.Context(), principal(r), in.Name)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	wire.WriteJSON(w, http.StatusOK, application(c, sec))
}

func (a *Adapter) list(w http.ResponseWriter, r *http.Request) {
	// The config API's list is a POST without a body; {} is accepted too.
	if r.Method == http.MethodPost {
		var none struct{}
		if err := decodeJSON(w, r, &none, true); err != nil {
			a.refuse(w, r, "clientCredential.list", "clientCredential", err)
			return
		}
	}
	// Airbyte's list has no pages: every application is answered, written
	// a page of the store at a time, so memory does not grow with the list.
	// A failure after the first page can only break the answer off (the
	// client sees a broken body, never a shorter list).
	pg, err := a.IAM.ListApplications(r.Context(), principal(r), iam.ListRequest{})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as wire.WriteJSON
	buf.WriteString(`{"applications":[`)
	for n := 0; ; {
		for _, c := range pg.Items {
			if n > 0 {
				buf.WriteByte(',')
			}
			n++
			_ = enc.Encode(application(c, secret.Value{}))
			buf.Truncate(buf.Len() - 1) // Encode's newline
		}
		if pg.Continue == "" {
			break
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return // the client went away
		}
		buf.Reset()
		if pg, err = a.IAM.ListApplications(r.Context(), principal(r), iam.ListRequest{Continue: pg.Continue}); err != nil {
			if r.Context().Err() == nil {
				a.Log.ErrorContext(r.Context(), "applications list cut short", "err", err)
			}
			panic(http.ErrAbortHandler)
		}
	}
	buf.WriteString("]}\n")
	_, _ = w.Write(buf.Bytes())
}

func (a *Adapter) get(w http.ResponseWriter, r *http.Request) {
	c, err := a.IAM.GetApplication(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, application(c, secret.Value{}))
}

// configDelete is the config API's delete: 200 with an empty body.
func (a *Adapter) configDelete(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ApplicationID    string `json:"applicationId"`
		IncludeTombstone bool   `json:"includeTombstone"` // accepted; nothing is kept after a delete
	}
	if err := decodeJSON(w, r, &in, false); err != nil {
		a.refuse(w, r, "clientCredential.delete", "clientCredential", err)
		return
	}
	if in.ApplicationID == "" {
		a.refuse(w, r, "clientCredential.delete", "clientCredential", &iam.Error{Kind: iam.KindInvalid, Msg: "applicationId is missing"})
		return
	}
	if _, err := a.IAM.DeleteApplication(r.Context(), principal(r), in.ApplicationID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// publicDelete is the public API's delete: it answers what was deleted.
func (a *Adapter) publicDelete(w http.ResponseWriter, r *http.Request) {
	c, err := a.IAM.DeleteApplication(r.Context(), principal(r), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	wire.WriteJSON(w, http.StatusOK, application(c, secret.Value{}))
}
