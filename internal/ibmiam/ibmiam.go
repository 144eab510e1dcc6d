// Package ibmiam speaks IBM Cloud IAM's token wire over Sluice's identity
// service: POST /identity/token with the API-key grant and the
// refresh_token grant, answered and refused the way IBM's SDKs (such as
// go-sdk-core's IamAuthenticator) expect, so they work against Sluice with
// only the URL changed. It translates shapes and errors (api/ibm-iam.yaml
// is its contract); which keys and refresh tokens are good, how long
// tokens live and what is audited is iam's.
package ibmiam

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/wire"
)

// Grant types of the exchange.
const (
	GrantAPIKey  = "urn:ibm:params:oauth:grant-type:apikey"
	GrantRefresh = "refresh_token"
)

// Adapter serves IBM Cloud IAM's token endpoint.
type Adapter struct {
	IAM *iam.Service
	Log *slog.Logger
	// RateLimit counts authenticated calls per client id and instance
	// and unauthenticated or failed ones per source address, as on
	// /api/v1; nil: no limits.
	RateLimit *iam.RateLimiter
}

// sourceOver answers 429 when the caller's address has used up its quota
// of failed calls (nothing is counted).
func (a *Adapter) sourceOver(w http.ResponseWriter, r *http.Request) bool {
	return !answer(w, r, a.RateLimit.SourceVerdict(wire.ClientAddr(r), false))
}

// failed counts a failed call against the caller's address, never against
// the client id or key it presents (those may be anyone's), and answers
// 429 when that is over its quota.
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
		writeError(w, r, http.StatusTooManyRequests, codeRateLimit, v.Explanation)
	}
	return v.OK
}

// Routes adds the adapter's routes to mux: every endpoint, in one place.
func (a *Adapter) Routes(mux *http.ServeMux) {
	mux.HandleFunc("POST /identity/token", a.token)
}

// Token is the answer: expiration is absolute (epoch seconds), and IBM's
// SDKs schedule their refresh from it, so it is the signed exp itself.
type Token struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Expiration   int64  `json:"expiration"`
	Scope        string `json:"scope"`
}

// Error codes, in IBM's BXNIM…E style. Which code answers what is this
// adapter's table, written down in api/ibm-iam.yaml.
const (
	codeMissing         = "BXNIM0109E" // a required parameter is missing or empty
	codeContentType     = "BXNIM0111E" // the body is not a form
	codeGrantType       = "BXNIM0104E" // unsupported grant or response type, unknown parameter
	codeBadAPIKey       = "BXNIM0415E" // API key (or client) not valid
	codeBadRefreshToken = "BXNIM0408E" // refresh token not valid
	codeBadClient       = "BXNIM0106E" // client authentication failed on a refresh
	codeRateLimit       = "BXNIM0429E" // over a rate limit
	codeInternal        = "BXNIM0500E" // the server failed
	codeUnavailable     = "BXNIM0503E" // the store is out of reach: retry (Sluice's own code, in the same pattern)
)

// errorBody is IBM's error JSON.
type errorBody struct {
	ErrorCode    string       `json:"errorCode"`
	ErrorMessage string       `json:"errorMessage"`
	Context      errorContext `json:"context"`
}

type errorContext struct {
	RequestID   string `json:"requestId"`
	RequestType string `json:"requestType"`
	UserAgent   string `json:"userAgent"`
	ClientIP    string `json:"clientIp"`
	URL         string `json:"url"`
}

func writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	wire.WriteJSON(w, status, errorBody{ErrorCode: code, ErrorMessage: msg, Context: errorContext{
		RequestID: obs.RequestID(r.Context()), RequestType: "incoming.Identity_Token", UserAgent: r.UserAgent(),
		ClientIP: wire.ClientAddr(r), URL: r.URL.Path}})
}

var known = map[string]bool{"grant_type": true, "apikey": true, "refresh_token": true, "response_type": true, "scope": true}

// refuseInput answers bad input, after auditing it under the instance
// that the client id, API key or refresh token sent names, if any does;
// none of them was checked.
func (a *Adapter) refuseInput(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	if a.failed(w, r) {
		return
	}
	p := iam.Principal{SubjectKind: "client", Source: wire.ClientAddr(r), RequestID: obs.RequestID(r.Context())}
	id, _, _ := r.BasicAuth()
	var key, rt secret.Value
	if r.PostForm != nil { // parsed: the body was a form
		key, rt = secret.New(r.PostForm.Get("apikey")), secret.New(r.PostForm.Get("refresh_token"))
	}
	p.InstanceID = a.IAM.InstanceOf(r.Context(), id, key, rt)
	if len(id) > 64 {
		id = id[:64] + "…"
	}
	p.SubjectName = id
	if err := a.IAM.Finish(r.Context(), p, "token.refuse", "token", iam.Invalidf("%s", msg)); err != nil && iam.KindOf(err) == 0 {
		a.Log.ErrorContext(r.Context(), "unable to audit a refused token request", "request_id", p.RequestID, "err", err)
	}
	writeError(w, r, status, code, msg)
}

func (a *Adapter) token(w http.ResponseWriter, r *http.Request) {
	if a.sourceOver(w, r) {
		return
	}
	if wire.MediaType(r) != "application/x-www-form-urlencoded" {
		a.refuseInput(w, r, http.StatusBadRequest, codeContentType, "the body must be application/x-www-form-urlencoded (grant_type=…&apikey=…)")
		return
	}
	form, why := wire.Form(w, r)
	if why != "" {
		a.refuseInput(w, r, http.StatusBadRequest, codeMissing, why)
		return
	}
	for k := range form {
		if !known[k] {
			a.refuseInput(w, r, http.StatusBadRequest, codeGrantType, "parameter "+k+" is not supported")
			return
		}
	}
	if rt := form.Get("response_type"); rt != "" && rt != "cloud_iam" {
		a.refuseInput(w, r, http.StatusBadRequest, codeGrantType, "response_type "+rt+" is not supported: use cloud_iam")
		return
	}
	// Only a caller that has authenticated (the key or refresh token, and
	// the client when one is sent) draws on a client's or instance's quota.
	req := iam.KeyExchangeRequest{Source: wire.ClientAddr(r), RequestID: obs.RequestID(r.Context()),
		Admit: a.RateLimit.Admitter(func(v iam.Verdict) { headers(w, v) })}
	if id, sec, ok := r.BasicAuth(); ok {
		req.ClientID, req.ClientSecret = id, secret.New(sec)
	}
	var tok iam.KeyToken
	var err error
	switch gt := form.Get("grant_type"); gt {
	case GrantAPIKey:
		if form.Get("apikey") == "" {
			a.refuseInput(w, r, http.StatusBadRequest, codeMissing, "Property missing or empty: apikey")
			return
		}
		req.APIKey = secret.New(form.Get("apikey"))
		tok, err = a.IAM.ExchangeAPIKeyAlone(r.Context(), req)
	case GrantRefresh:
		if form.Get("refresh_token") == "" {
			a.refuseInput(w, r, http.StatusBadRequest, codeMissing, "Property missing or empty: refresh_token")
			return
		}
		req.RefreshToken = secret.New(form.Get("refresh_token"))
		tok, err = a.IAM.Refresh(r.Context(), req)
	case "":
		a.refuseInput(w, r, http.StatusBadRequest, codeMissing, "Property missing or empty: grant_type")
		return
	default:
		a.refuseInput(w, r, http.StatusBadRequest, codeGrantType, "grant_type "+gt+" is not supported: use "+GrantAPIKey+" or "+GrantRefresh)
		return
	}
	if (errors.Is(err, iam.ErrInvalidRefreshToken) || errors.Is(err, iam.ErrBadCredentials)) && a.failed(w, r) {
		return
	}
	switch {
	case iam.KindOf(err) == iam.KindTooManyRequests:
		writeError(w, r, http.StatusTooManyRequests, codeRateLimit, err.(*iam.Error).Msg)
	case err == nil:
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		wire.WriteJSON(w, http.StatusOK, Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken.Reveal(), TokenType: "Bearer",
			ExpiresIn: tok.Expiry - tok.IssuedAt, Expiration: tok.Expiry, Scope: tok.Scope})
	case errors.Is(err, iam.ErrInvalidRefreshToken):
		writeError(w, r, http.StatusBadRequest, codeBadRefreshToken, "Provided refresh token is not valid: it is unknown, used already or expired, or its API key is locked or gone")
	case errors.Is(err, iam.ErrBadCredentials) && req.RefreshToken.IsZero():
		writeError(w, r, http.StatusBadRequest, codeBadAPIKey, "Provided API key could not be found or is not valid (locked or expired), or the client credentials are wrong")
	case errors.Is(err, iam.ErrBadCredentials):
		writeError(w, r, http.StatusUnauthorized, codeBadClient, "Client authentication failed: the refresh token was issued to a client, which must authenticate with its id and secret")
	case iam.Unavailable(err) && r.Context().Err() == nil:
		a.Log.WarnContext(r.Context(), "store unavailable", "request_id", obs.RequestID(r.Context()), "err", err)
		wire.SetRetryAfterStoreUnavailable(w)
		writeError(w, r, http.StatusServiceUnavailable, codeUnavailable, wire.StoreUnavailableMessage)
	default:
		a.Log.ErrorContext(r.Context(), "token request failed", "request_id", obs.RequestID(r.Context()), "err", err)
		writeError(w, r, http.StatusInternalServerError, codeInternal, "the server failed to handle the request; the requestId identifies it in the server's log")
	}
}
