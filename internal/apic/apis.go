package apic

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
)

// APIObject is a published API in API Connect's discovery shape (the
// fields the Axway agent and catalog tools read).
type APIObject struct {
	Type                  string          `json:"type"`
	APIType               string          `json:"api_type"`
	APIVersion            string          `json:"api_version"`
	ID                    string          `json:"id"`
	Name                  string          `json:"name"`
	Version               string          `json:"version"`
	Title                 string          `json:"title"`
	Summary               string          `json:"summary"`
	State                 string          `json:"state"`
	Scope                 string          `json:"scope"`
	GatewayType           string          `json:"gateway_type"`
	OAIVersion            string          `json:"oai_version"`
	DocumentSpecification string          `json:"document_specification"`
	BasePaths             []string        `json:"base_paths"`
	Enforced              bool            `json:"enforced"`
	CreatedAt             string          `json:"created_at"`
	UpdatedAt             string          `json:"updated_at"`
	CatalogURL            string          `json:"catalog_url"`
	URL                   string          `json:"url"`
	Document              json.RawMessage `json:"document,omitempty"`
}

// ProductObject is a plan as API Connect lists products: one product
// per plan, naming its APIs.
type ProductObject struct {
	Type       string        `json:"type"`
	APIVersion string        `json:"api_version"`
	ID         string        `json:"id"`
	Name       string        `json:"name"`
	Version    string        `json:"version"`
	Title      string        `json:"title"`
	State      string        `json:"state"`
	Plans      []PlanSummary `json:"plans"`
	APIURLs    []string      `json:"api_urls"`
	CreatedAt  string        `json:"created_at"`
	UpdatedAt  string        `json:"updated_at"`
	CatalogURL string        `json:"catalog_url"`
	URL        string        `json:"url"`
}

// PlanSummary is a plan inside a product.
type PlanSummary struct {
	Name      string `json:"name"`
	Title     string `json:"title"`
	Auth      string `json:"auth"`
	RateLimit string `json:"rate_limit,omitempty"`
	Approval  bool   `json:"approval"`
}

func (a *Adapter) apiObj(u urls, x apis.API, enforced bool) APIObject {
	title := x.Spec.Title
	if title == "" {
		title = x.Name
	}
	oai := "openapi3"
	if strings.HasPrefix(x.Status.OpenAPIVersion, "2.") {
		oai = "openapi2"
	}
	return APIObject{Type: "api", APIType: "rest", APIVersion: apiVersion, ID: x.ID, Name: x.Name, Version: x.Spec.Version, Title: title,
		Summary: x.Spec.Description, State: "online", Scope: "catalog", GatewayType: "sluice", OAIVersion: oai, DocumentSpecification: oai,
		BasePaths: []string{x.Spec.BasePath}, Enforced: enforced, CreatedAt: apicTime(x.CreatedAt), UpdatedAt: apicTime(x.UpdatedAt),
		CatalogURL: u.catalogURL(), URL: u.catalogURL() + "/apis/" + x.ID}
}

// catalogURLs resolves the catalog of the path (every catalog shows the
// instance's APIs) and returns the urls under it.
func (a *Adapter) catalogURLs(w http.ResponseWriter, r *http.Request) (urls, bool) {
	res, err := a.Apps.Resolve(r.Context(), principal(r), apps.Path{Catalog: r.PathValue("catalog")})
	if err != nil {
		a.fail(w, r, err)
		return urls{}, false
	}
	return a.urls(r, res), true
}

// enforcedOf says which of the APIs named a plan other than none
// protects, reading the plans a page at a time.
func (a *Adapter) enforcedOf(ctx context.Context, p iam.Principal, names map[string]bool) (map[string]bool, error) {
	enforced := map[string]bool{}
	err := iam.Each(func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) { return a.APIs.ListPlans(ctx, p, req) }, func(pl apis.Plan) {
		if pl.Spec.Auth != "none" {
			for _, n := range pl.Spec.APIs {
				if names[n] {
					enforced[n] = true
				}
			}
		}
	})
	return enforced, err
}

// apiIDs maps the APIs named to their ids, reading the APIs a page at a
// time.
func (a *Adapter) apiIDs(ctx context.Context, p iam.Principal, names map[string]bool) (map[string]string, error) {
	ids := map[string]string{}
	err := iam.Each(func(req iam.ListRequest) (iam.ListPage[apis.API], error) { return a.APIs.ListAPIs(ctx, p, req) }, func(x apis.API) {
		if names[x.Name] {
			ids[x.Name] = x.ID
		}
	})
	return ids, err
}

func (a *Adapter) listAPIs(w http.ResponseWriter, r *http.Request) {
	u, ok := a.catalogURLs(w, r)
	if !ok {
		return
	}
	ctx, p := r.Context(), principal(r)
	var enforced map[string]bool
	answerList(a, w, r, func() (int, error) { return a.APIs.CountAPIs(ctx, p) },
		func(req iam.ListRequest) (iam.ListPage[apis.API], error) {
			pg, err := a.APIs.ListAPIs(ctx, p, req)
			if err != nil {
				return pg, err
			}
			names := map[string]bool{}
			for _, x := range pg.Items {
				names[x.Name] = true
			}
			enforced, err = a.enforcedOf(ctx, p, names)
			return pg, err
		},
		func(x apis.API) APIObject { return a.apiObj(u, x, enforced[x.Name]) })
}

// getAPI reads one API (by id or name); ?fields=add(document) includes its
// OpenAPI document, as API Connect's clients ask for it.
func (a *Adapter) getAPI(w http.ResponseWriter, r *http.Request) {
	u, ok := a.catalogURLs(w, r)
	if !ok {
		return
	}
	x, doc, err := a.APIs.Document(r.Context(), principal(r), r.PathValue("api"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	enforced, err := a.enforcedOf(r.Context(), principal(r), map[string]bool{x.Name: true})
	if err != nil {
		a.fail(w, r, err)
		return
	}
	o := a.apiObj(u, x, enforced[x.Name])
	if strings.Contains(r.URL.Query().Get("fields"), "document") {
		o.Document = doc
	}
	writeJSON(w, http.StatusOK, o)
}

// getAPIDocument serves the API's OpenAPI document alone.
func (a *Adapter) getAPIDocument(w http.ResponseWriter, r *http.Request) {
	if _, ok := a.catalogURLs(w, r); !ok {
		return
	}
	_, doc, err := a.APIs.Document(r.Context(), principal(r), r.PathValue("api"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(doc)
}

func (a *Adapter) listProducts(w http.ResponseWriter, r *http.Request) {
	u, ok := a.catalogURLs(w, r)
	if !ok {
		return
	}
	ctx, p := r.Context(), principal(r)
	var ids map[string]string
	answerList(a, w, r, func() (int, error) { return a.APIs.CountPlans(ctx, p) },
		func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) {
			pg, err := a.APIs.ListPlans(ctx, p, req)
			if err != nil {
				return pg, err
			}
			names := map[string]bool{}
			for _, pl := range pg.Items {
				for _, n := range pl.Spec.APIs {
					names[n] = true
				}
			}
			ids, err = a.apiIDs(ctx, p, names)
			return pg, err
		},
		func(p apis.Plan) ProductObject {
			title := p.Spec.Title
			if title == "" {
				title = p.Name
			}
			po := ProductObject{Type: "product", APIVersion: apiVersion, ID: p.ID, Name: p.Name, Version: "1.0.0", Title: title, State: "published",
				Plans:     []PlanSummary{{Name: p.Name, Title: title, Auth: p.Spec.Auth, RateLimit: p.Spec.RateLimit, Approval: p.Spec.Approval}},
				CreatedAt: apicTime(p.CreatedAt), UpdatedAt: apicTime(p.UpdatedAt), CatalogURL: u.catalogURL(), URL: u.catalogURL() + "/products/" + p.ID}
			for _, n := range p.Spec.APIs {
				po.APIURLs = append(po.APIURLs, u.catalogURL()+"/apis/"+ids[n])
			}
			return po
		})
}
