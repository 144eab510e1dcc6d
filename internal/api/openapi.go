package api

import (
	"net/http"

	apispec "github.com/sluice-dev/sluice/api"
)

// The OpenAPI document is served without authentication: it is public
// contract, not data, and clients fetch it before they hold a token.

func (a *API) openapiYAML(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(apispec.YAML())
}

func (a *API) openapiJSON(w http.ResponseWriter, r *http.Request) {
	b, err := apispec.JSON()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
