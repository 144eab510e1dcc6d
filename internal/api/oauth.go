package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/wire"
)

// OAuth 2.0 endpoints. Their errors follow RFC 6749 §5.2
// ({"error": code, "error_description": text}), not the /api/v1 error body,
// because OAuth client libraries parse that shape.

// oauthError writes an RFC 6749 §5.2 error.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="sluice"`)
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

// oauthForm parses an application/x-www-form-urlencoded body (RFC 6749
// §3.2), refusing other content types and repeated parameters (§3.1).
func oauthForm(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	if wire.MediaType(r) != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "send the parameters as application/x-www-form-urlencoded")
		return nil, false
	}
	form, why := wire.Form(w, r)
	if why != "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", why)
		return nil, false
	}
	return form, true
}

// clientAuth reads client_secret_basic or client_secret_post credentials
// (RFC 6749 §2.3.1); using both at once is an error.
func clientAuth(r *http.Request, form url.Values) (id string, sec secret.Value, ok bool, desc string) {
	bid, bsec, basic := r.BasicAuth()
	pid, psec := form.Get("client_id"), form.Get("client_secret")
	switch {
	case basic && (psec != ""):
		return "", secret.Value{}, false, "use one client authentication method, not both"
	case basic:
		// §2.3.1: the id and secret are form-urlencoded before Basic encoding.
		uid, err1 := url.QueryUnescape(bid)
		usec, err2 := url.QueryUnescape(bsec)
		if err1 != nil || err2 != nil {
			return "", secret.Value{}, false, "the Basic credentials are not form-urlencoded"
		}
		return uid, secret.New(usec), true, ""
	case pid != "" && psec != "":
		return pid, secret.New(psec), true, ""
	}
	return "", secret.Value{}, false, "client authentication is missing"
}

// postOAuthToken is the token endpoint (RFC 6749 §3.2).
func (a *API) postOAuthToken(w http.ResponseWriter, r *http.Request) {
	form, ok := oauthForm(w, r)
	if !ok {
		return
	}
	if msg, over := a.sourceExhausted(w, r); over {
		oauthError(w, http.StatusTooManyRequests, "slow_down", msg)
		return
	}
	id, sec, ok, desc := clientAuth(r, form)
	if !ok {
		a.oauthFailed(w, r, http.StatusUnauthorized, "invalid_client", desc)
		return
	}
	req := iam.TokenRequest{ClientID: id, ClientSecret: sec, Source: clientAddr(r), RequestID: obs.RequestID(r.Context()), Admit: a.admit(w)}
	var resp iam.TokenResponse
	var err error
	switch gt := form.Get("grant_type"); gt {
	case "client_credentials":
		if apps.IsAppClientID(id) {
			// A consumer app's credential: a token for published APIs.
			resp, err = a.Apps.ClientCredentialsGrant(r.Context(), req)
			break
		}
		resp, err = a.IAM.ClientCredentialsGrant(r.Context(), req)
	case iam.GrantTypeAPIKey:
		if form.Get("api_key") == "" {
			oauthError(w, http.StatusBadRequest, "invalid_request", "the api_key parameter is missing")
			return
		}
		req.APIKey = secret.New(form.Get("api_key"))
		resp, err = a.IAM.ExchangeAPIKey(r.Context(), req)
		if iam.KindOf(err) == iam.KindUnauthorized {
			// RFC 6749 §5.2: a bad grant is invalid_grant; the answer
			// still does not say whether the client or the key was wrong.
			a.oauthFailed(w, r, http.StatusBadRequest, "invalid_grant", "the client credentials or the API key are not valid")
			return
		}
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "the grant_type parameter is missing")
		return
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type "+gt+" is not supported: use client_credentials or "+iam.GrantTypeAPIKey)
		return
	}
	switch {
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		writeJSON(w, http.StatusOK, resp)
	case iam.IsGrantNotAllowed(err):
		oauthError(w, http.StatusBadRequest, "unauthorized_client", "this client may only get tokens with the "+iam.GrantTypeAPIKey+" grant")
	case iam.KindOf(err) == iam.KindUnauthorized:
		a.oauthFailed(w, r, http.StatusUnauthorized, "invalid_client", "the client credentials are not valid")
	case iam.KindOf(err) == iam.KindTooManyRequests:
		oauthError(w, http.StatusTooManyRequests, "slow_down", err.(*iam.Error).Msg)
	default:
		a.fail(w, r, err)
	}
}

// authenticatedClient authenticates the caller of introspection and
// revocation, answering 401 itself when that fails.
func (a *API) authenticatedClient(w http.ResponseWriter, r *http.Request) (url.Values, *clientCaller, bool) {
	form, ok := oauthForm(w, r)
	if !ok {
		return nil, nil, false
	}
	if msg, over := a.sourceExhausted(w, r); over {
		oauthError(w, http.StatusTooManyRequests, "slow_down", msg)
		return nil, nil, false
	}
	id, sec, ok, desc := clientAuth(r, form)
	if !ok {
		a.oauthFailed(w, r, http.StatusUnauthorized, "invalid_client", desc)
		return nil, nil, false
	}
	cred, err := a.IAM.AuthenticateClient(r.Context(), id, sec, clientAddr(r), obs.RequestID(r.Context()))
	if err != nil {
		if iam.KindOf(err) == iam.KindUnauthorized {
			a.oauthFailed(w, r, http.StatusUnauthorized, "invalid_client", "the client credentials are not valid")
		} else {
			a.fail(w, r, err)
		}
		return nil, nil, false
	}
	if msg, ok := a.admitClient(w, cred); !ok {
		oauthError(w, http.StatusTooManyRequests, "slow_down", msg)
		return nil, nil, false
	}
	return form, &clientCaller{cred: cred}, true
}

type clientCaller struct{ cred credRecord }

// oauthFailed answers a failed client authentication or grant, counted
// against the caller's address (429 once that is over its quota).
func (a *API) oauthFailed(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	if msg, over := a.failed(w, r); over {
		oauthError(w, http.StatusTooManyRequests, "slow_down", msg)
		return
	}
	oauthError(w, status, code, desc)
}

// admitClient counts an authenticated client's call against its quota.
func (a *API) admitClient(w http.ResponseWriter, cred credRecord) (string, bool) {
	err := a.admit(w)(cred.ClientID, cred.InstanceID)
	if err != nil {
		return err.(*iam.Error).Msg, false
	}
	return "", true
}

// postIntrospect is RFC 7662 token introspection. Inactive tokens get
// {"active":false} and nothing else (§2.2).
func (a *API) postIntrospect(w http.ResponseWriter, r *http.Request) {
	form, caller, ok := a.authenticatedClient(w, r)
	if !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	c, active := a.IAM.Introspect(r.Context(), caller.cred, form.Get("token"))
	if !active {
		writeJSON(w, http.StatusOK, map[string]bool{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, introspection{Active: true, Scope: c.Scope, ClientID: c.ClientID, TokenType: "Bearer",
		Exp: c.Expiry, Iat: c.IssuedAt, Sub: c.Subject, Aud: c.Audience, Iss: c.Issuer, Jti: c.ID, InstanceID: c.InstanceID, Role: c.Role})
}

// introspection is an active token's RFC 7662 §2.2 answer.
type introspection struct {
	Active     bool   `json:"active"`
	Scope      string `json:"scope"`
	ClientID   string `json:"client_id"`
	TokenType  string `json:"token_type"`
	Exp        int64  `json:"exp"`
	Iat        int64  `json:"iat"`
	Sub        string `json:"sub"`
	Aud        string `json:"aud"`
	Iss        string `json:"iss"`
	Jti        string `json:"jti"`
	InstanceID string `json:"instance_id"`
	Role       string `json:"role"`
}

// postRevoke is RFC 7009 revocation: 200 whether or not the token was
// valid (§2.2); refused only when the token belongs to another client.
func (a *API) postRevoke(w http.ResponseWriter, r *http.Request) {
	form, caller, ok := a.authenticatedClient(w, r)
	if !ok {
		return
	}
	if form.Get("token") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the token parameter is missing")
		return
	}
	err := a.IAM.Revoke(r.Context(), caller.cred, form.Get("token"), clientAddr(r), obs.RequestID(r.Context()))
	var ie *iam.Error
	switch {
	case err == nil:
		w.WriteHeader(http.StatusOK)
	case errors.As(err, &ie) && ie.Kind == iam.KindForbidden:
		oauthError(w, http.StatusBadRequest, "unauthorized_client", ie.Msg)
	default:
		a.fail(w, r, err)
	}
}

// getJWKS serves the public signing keys (RFC 7517 §5).
func (a *API) getJWKS(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(a.IAM.Tokens.JWKS())
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "max-age=300")
	_, _ = w.Write(b)
}

// getOAuthMetadata is RFC 8414 authorization server metadata.
func (a *API) getOAuthMetadata(w http.ResponseWriter, r *http.Request) {
	iss := strings.TrimRight(a.IAM.Tokens.Issuer, "/")
	authMethods := []string{"client_secret_basic", "client_secret_post"}
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"token_endpoint":                        iss + "/oauth/token",
		"jwks_uri":                              iss + "/oauth/jwks",
		"introspection_endpoint":                iss + "/oauth/introspect",
		"revocation_endpoint":                   iss + "/oauth/revoke",
		"grant_types_supported":                 []string{"client_credentials", iam.GrantTypeAPIKey},
		"token_endpoint_auth_methods_supported": authMethods,
		"introspection_endpoint_auth_methods_supported":    authMethods,
		"revocation_endpoint_auth_methods_supported":       authMethods,
		"response_types_supported":                         []string{},
		"scopes_supported":                                 []string{"appcon:manage", "appcon:read"},
		"token_endpoint_auth_signing_alg_values_supported": []string{"EdDSA", "RS256"},
		"service_documentation":                            iss + "/api/v1/openapi.yaml",
	})
}

type credRecord = store.ClientCredential
