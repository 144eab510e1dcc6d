package airbyte

import (
	"net/http"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/wire"
)

// tokenRequest is the body of both token endpoints. grant_type and scope
// are what the public API's clients send (the Python SDK, form-encoded).
type tokenRequest struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	GrantType    string `json:"grant_type"`
	Scope        string `json:"scope"`
}

// readTokenRequest reads a token request: JSON always, a form too when
// formOK (the public API takes both).
func readTokenRequest(w http.ResponseWriter, r *http.Request, formOK bool) (tokenRequest, error) {
	var in tokenRequest
	if wire.MediaType(r) == "application/x-www-form-urlencoded" {
		if !formOK {
			return in, &iam.Error{Kind: iam.KindInvalid, Msg: "this endpoint takes a JSON body {\"client_id\",\"client_secret\"}, not a form"}
		}
		form, why := wire.Form(w, r)
		if why != "" {
			return in, &iam.Error{Kind: iam.KindInvalid, Msg: why}
		}
		for k := range form {
			if k != "client_id" && k != "client_secret" && k != "grant_type" && k != "scope" {
				return in, &iam.Error{Kind: iam.KindInvalid, Msg: "unknown parameter " + k}
			}
		}
		in = tokenRequest{ClientID: form.Get("client_id"), ClientSecret: form.Get("client_secret"), GrantType: form.Get("grant_type"), Scope: form.Get("scope")}
	} else if err := decodeJSON(w, r, &in, false); err != nil {
		if formOK && r.Header.Get("Content-Type") != "" && wire.MediaType(r) != "application/json" {
			return in, &iam.Error{Kind: iam.KindInvalid, Msg: "send application/json or application/x-www-form-urlencoded"}
		}
		return in, err
	}
	switch {
	case in.ClientID == "" || in.ClientSecret == "":
		return in, &iam.Error{Kind: iam.KindInvalid, Msg: "client_id and client_secret are both required"}
	case in.GrantType != "" && in.GrantType != "client_credentials":
		return in, &iam.Error{Kind: iam.KindInvalid, Msg: "grant_type " + in.GrantType + " is not supported: use client_credentials"}
	}
	return in, nil
}

func (a *Adapter) token(w http.ResponseWriter, r *http.Request, formOK bool) (iam.TokenResponse, bool) {
	if a.sourceOver(w, r) {
		return iam.TokenResponse{}, false
	}
	in, err := readTokenRequest(w, r, formOK)
	if err != nil {
		if a.failed(w, r) {
			return iam.TokenResponse{}, false
		}
		// Refused before any credential was checked; audited all the same,
		// under the instance the client id names when it names one.
		_ = a.IAM.Finish(r.Context(), iam.Principal{InstanceID: a.IAM.InstanceOf(r.Context(), in.ClientID, secret.Value{}, secret.Value{}),
			SubjectKind: "client", SubjectName: clip(in.ClientID), Source: wire.ClientAddr(r),
			RequestID: obs.RequestID(r.Context())}, "token.refuse", "token", err)
		a.fail(w, r, err)
		return iam.TokenResponse{}, false
	}
	resp, err := a.IAM.ApplicationToken(r.Context(), iam.TokenRequest{ClientID: in.ClientID, ClientSecret: secret.New(in.ClientSecret),
		Source: wire.ClientAddr(r), RequestID: obs.RequestID(r.Context()), Admit: a.RateLimit.Admitter(func(v iam.Verdict) { headers(w, v) })})
	if iam.KindOf(err) == iam.KindUnauthorized && a.failed(w, r) {
		return resp, false
	}
	if err != nil {
		a.fail(w, r, err)
		return resp, false
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	return resp, true
}

// clip keeps an unchecked client id short enough for the audit.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// configToken answers the config API's token call: {"access_token"} only.
func (a *Adapter) configToken(w http.ResponseWriter, r *http.Request) {
	if resp, ok := a.token(w, r, false); ok {
		wire.WriteJSON(w, http.StatusOK, struct {
			AccessToken string `json:"access_token"`
		}{resp.AccessToken})
	}
}

// publicToken answers the public API's token call. token_type is exactly
// "Bearer": Airbyte's Python SDK compares it case-sensitively.
func (a *Adapter) publicToken(w http.ResponseWriter, r *http.Request) {
	if resp, ok := a.token(w, r, true); ok {
		wire.WriteJSON(w, http.StatusOK, struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			ExpiresIn   int64  `json:"expires_in"`
		}{resp.AccessToken, "Bearer", resp.ExpiresIn})
	}
}
