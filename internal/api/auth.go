package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/wire"
)

type principalKey struct{}

// principal returns the authenticated caller of a request that went
// through authed.
func principal(r *http.Request) iam.Principal {
	p, _ := r.Context().Value(principalKey{}).(iam.Principal)
	return p
}

// authed is the one place where /api/v1 calls are authenticated and their
// role checked: the route table gives each route the least role it needs.
// Handlers only see requests that passed, with the principal (and so the
// instance) in the context.
func (a *API) authed(minRole string, h http.HandlerFunc) http.Handler {
	need := iam.RoleRank(minRole)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !singleHeaders(w, r, "Authorization", "X-IBM-Client-Id") {
			return
		}
		bearer, problem := bearerToken(r)
		if problem != "" {
			if msg, over := a.failed(w, r); over {
				writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", msg)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
			writeError(w, r, http.StatusUnauthorized, "Unauthorized", problem+": send Authorization: Bearer <token> (X-IBM-Client-Id: <client id> may go with it); get a token from POST /api/v1/tokens")
			return
		}
		// The grant check's barrier also serves the handler's first read
		// of grants or runtimes (store.ShareBarrier).
		ctx := store.ShareBarrier(r.Context())
		p, err := a.IAM.Authenticate(ctx, bearer, headerValue(r, "X-IBM-Client-Id"))
		if err != nil {
			// Failed calls count against the source address, never
			// against the client id presented: that may be anyone's.
			if msg, over := a.failed(w, r); over {
				writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", msg)
				return
			}
			var why *iam.TokenRefused
			if !errors.As(err, &why) {
				a.fail(w, r, err)
				return
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`)
			writeError(w, r, http.StatusUnauthorized, "Unauthorized", why.Reason)
			return
		}
		if !a.allow(w, r, p.ClientID, p.InstanceID) {
			return
		}
		p.Source, p.RequestID = clientAddr(r), obs.RequestID(r.Context())
		if iam.RoleRank(p.Role) < need {
			writeError(w, r, http.StatusForbidden, "Forbidden", "the "+p.Role+" role may not do this")
			return
		}
		h(w, r.WithContext(context.WithValue(ctx, principalKey{}, p)))
	})
}

// singleHeaders answers 400 when a request repeats one of the named
// headers: this server reads the first, and a proxy in front may have
// checked another, so which one counts would be ambiguous.
func singleHeaders(w http.ResponseWriter, r *http.Request, names ...string) bool {
	for _, n := range names {
		if len(r.Header[headerKey(n)]) > 1 {
			writeError(w, r, http.StatusBadRequest, "BadRequest", "the "+n+" header is sent more than once: send it once")
			return false
		}
	}
	return true
}

// ibmHeaderKeys holds the canonical forms of App Connect's header names,
// computed once: "X-IBM-Client-Id" is not canonical ("X-Ibm-Client-Id"),
// so Header.Get and Values copied it on every call.
var ibmHeaderKeys = map[string]string{}

func init() {
	for _, n := range []string{"X-IBM-Client-Id", "X-IBM-Client-Secret", "X-IBM-Instance-Id"} {
		ibmHeaderKeys[n] = http.CanonicalHeaderKey(n)
	}
}

// headerKey is http.CanonicalHeaderKey(n), without a copy for the names
// this package reads.
func headerKey(n string) string {
	if k, ok := ibmHeaderKeys[n]; ok {
		return k
	}
	return http.CanonicalHeaderKey(n)
}

// headerValue is r.Header.Get(n) through headerKey.
func headerValue(r *http.Request, n string) string {
	if vs := r.Header[headerKey(n)]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// bearerToken reads "Authorization: Bearer <token>", or says what is wrong
// with the header. The scheme is matched case-insensitively (RFC 9110
// §11.1), as some App Connect clients send lower-case names.
func bearerToken(r *http.Request) (token, problem string) {
	h := r.Header.Get("Authorization")
	if strings.TrimSpace(h) == "" {
		return "", "the Authorization header is missing"
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", "the Authorization header is not of the Bearer scheme"
	}
	if tok = strings.TrimSpace(tok); tok == "" {
		return "", "the Authorization header has no token after Bearer"
	}
	return tok, ""
}

func clientAddr(r *http.Request) string { return wire.ClientAddr(r) }

// fail answers a domain or store error: client-safe text for known kinds,
// a generic 500 (details logged only) for everything else.
// statusClientClosedRequest is what a request the client abandoned is
// counted as (nginx's 499): nobody reads it, but metrics and the access
// log tell it from a server error.
const statusClientClosedRequest = 499

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	var br *badRequest
	if errors.As(err, &br) {
		writeError(w, r, br.status, br.reason, br.msg)
		return
	}
	var ie *iam.Error
	if errors.As(err, &ie) {
		switch ie.Kind {
		case iam.KindInvalid:
			writeError(w, r, http.StatusBadRequest, "BadRequest", ie.Msg)
		case iam.KindUnauthorized:
			writeError(w, r, http.StatusUnauthorized, "Unauthorized", ie.Msg)
		case iam.KindForbidden:
			writeError(w, r, http.StatusForbidden, "Forbidden", ie.Msg)
		case iam.KindNotFound:
			writeError(w, r, http.StatusNotFound, "NotFound", ie.Msg)
		case iam.KindConflict:
			writeError(w, r, http.StatusConflict, "Conflict", ie.Msg)
		case iam.KindTooManyRequests:
			writeError(w, r, http.StatusTooManyRequests, "TooManyRequests", ie.Msg)
		}
		return
	}
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, r, http.StatusNotFound, "NotFound", "not found")
		return
	}
	if store.Unavailable(err) && r.Context().Err() == nil {
		// Not a bug: the database is restarting or out of reach. A client
		// retrying in a moment (here or at another replica) will succeed.
		a.Log.WarnContext(r.Context(), "store unavailable", "request_id", obs.RequestID(r.Context()), "err", err)
		wire.SetRetryAfterStoreUnavailable(w)
		writeError(w, r, http.StatusServiceUnavailable, "StoreUnavailable", wire.StoreUnavailableMessage)
		return
	}
	if r.Context().Err() != nil {
		// The client went away (or its deadline passed) and what failed
		// failed because of it: an outcome to note, not a server error.
		a.Log.InfoContext(r.Context(), "request cancelled by the client", "request_id", obs.RequestID(r.Context()),
			"outcome", "cancelled", "err", err)
		w.WriteHeader(statusClientClosedRequest)
		return
	}
	a.Log.ErrorContext(r.Context(), "request failed", "request_id", obs.RequestID(r.Context()), "err", err)
	writeError(w, r, http.StatusInternalServerError, "InternalError", "the server failed to handle the request; the request id identifies it in the server's log")
}
