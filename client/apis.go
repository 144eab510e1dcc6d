package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
)

// PublishedAPI is a set of HTTP flows published with a name, version,
// base path and OpenAPI document.
type PublishedAPI struct {
	Metadata Metadata   `json:"metadata"`
	Spec     APISpec    `json:"spec"`
	Status   *APIStatus `json:"status,omitempty"`
}

// APISpec is what a caller sets on a published API.
type APISpec struct {
	Title       string   `json:"title,omitempty"`
	Version     string   `json:"version"`
	Description string   `json:"description,omitempty"`
	BasePath    string   `json:"basePath,omitempty"`
	BARFile     string   `json:"barFile,omitempty"` // flows of this BAR file wherever it runs
	Runtime     string   `json:"runtime,omitempty"` // flows of this runtime
	Flows       []string `json:"flows,omitempty"`   // empty: every HTTP flow
	Document    string   `json:"document,omitempty"`
}

// APIStatus is what the server found in the API's BAR files.
type APIStatus struct {
	Flows []struct {
		BARFile string `json:"barFile"`
		Project string `json:"project"`
		Name    string `json:"name"`
		Method  string `json:"method"`
		Path    string `json:"path"`
	} `json:"flows"`
	DocumentSource string `json:"documentSource"` // "generated" or BARFILE:openapi/FILE
	OpenAPIVersion string `json:"openapiVersion"`
	DocumentURL    string `json:"documentURL"`
}

// Plan says how callers of its APIs authenticate and how often an app may call.
type Plan struct {
	Metadata Metadata `json:"metadata"`
	Spec     PlanSpec `json:"spec"`
}

// PlanSpec is what a caller sets on a plan.
type PlanSpec struct {
	Title        string   `json:"title,omitempty"`
	Description  string   `json:"description,omitempty"`
	APIs         []string `json:"apis"`
	Auth         string   `json:"auth"` // client-id, oauth or none
	ClientSecret bool     `json:"clientSecret,omitempty"`
	RateLimit    string   `json:"rateLimit,omitempty"` // per app, such as 100/1m
	Approval     bool     `json:"approval,omitempty"`
}

// Subscription lets an app call through a plan.
type Subscription struct {
	Metadata Metadata           `json:"metadata"`
	Spec     SubscriptionSpec   `json:"spec"`
	Status   SubscriptionStatus `json:"status"`
}

// SubscriptionSpec names the plan and the app (catalog/consumer-org/app).
type SubscriptionSpec struct {
	Plan string `json:"plan"`
	App  string `json:"app"`
}

// SubscriptionStatus is "active", or "pending" until approved.
type SubscriptionStatus struct {
	State      string `json:"state"`
	AppID      string `json:"appId"`
	ApprovedBy string `json:"approvedBy,omitempty"`
}

func one[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var o T
	err := c.Do(ctx, method, path, nil, in, &o)
	return o, err
}

// ListAPIs calls GET /api/v1/apis.
func (c *Client) ListAPIs(ctx context.Context) ([]PublishedAPI, error) {
	return listAll[PublishedAPI](ctx, c, "/api/v1/apis", nil, "apis", 0)
}

// GetAPI calls GET /api/v1/apis/{name} (a name or an id).
func (c *Client) GetAPI(ctx context.Context, name string) (PublishedAPI, error) {
	return one[PublishedAPI](ctx, c, http.MethodGet, "/api/v1/apis/"+url.PathEscape(name), nil)
}

// PutAPI calls PUT /api/v1/apis/{name}: it publishes or replaces the API.
func (c *Client) PutAPI(ctx context.Context, a PublishedAPI) (PublishedAPI, error) {
	a.Status = nil
	return one[PublishedAPI](ctx, c, http.MethodPut, "/api/v1/apis/"+url.PathEscape(a.Metadata.Name), a)
}

// DeleteAPI calls DELETE /api/v1/apis/{name}.
func (c *Client) DeleteAPI(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/apis/"+url.PathEscape(name), nil, nil, nil)
}

// APIDocument calls GET /api/v1/apis/{name}/openapi: the OpenAPI document.
func (c *Client) APIDocument(ctx context.Context, name string) (json.RawMessage, error) {
	var doc json.RawMessage
	err := c.Do(ctx, http.MethodGet, "/api/v1/apis/"+url.PathEscape(name)+"/openapi", nil, nil, &doc)
	return doc, err
}

// ListPlans calls GET /api/v1/plans.
func (c *Client) ListPlans(ctx context.Context) ([]Plan, error) {
	return listAll[Plan](ctx, c, "/api/v1/plans", nil, "plans", 0)
}

// GetPlan calls GET /api/v1/plans/{name}.
func (c *Client) GetPlan(ctx context.Context, name string) (Plan, error) {
	return one[Plan](ctx, c, http.MethodGet, "/api/v1/plans/"+url.PathEscape(name), nil)
}

// PutPlan calls PUT /api/v1/plans/{name}.
func (c *Client) PutPlan(ctx context.Context, p Plan) (Plan, error) {
	return one[Plan](ctx, c, http.MethodPut, "/api/v1/plans/"+url.PathEscape(p.Metadata.Name), p)
}

// DeletePlan calls DELETE /api/v1/plans/{name}; force deletes its
// subscriptions too.
func (c *Client) DeletePlan(ctx context.Context, name string, force bool) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/plans/"+url.PathEscape(name), forceQuery(force), nil, nil)
}

// ListSubscriptions calls GET /api/v1/subscriptions.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	return listAll[Subscription](ctx, c, "/api/v1/subscriptions", nil, "subscriptions", 0)
}

// GetSubscription calls GET /api/v1/subscriptions/{name}.
func (c *Client) GetSubscription(ctx context.Context, name string) (Subscription, error) {
	return one[Subscription](ctx, c, http.MethodGet, "/api/v1/subscriptions/"+url.PathEscape(name), nil)
}

// PutSubscription calls PUT /api/v1/subscriptions/{name}.
func (c *Client) PutSubscription(ctx context.Context, s Subscription) (Subscription, error) {
	in := struct {
		Metadata Metadata         `json:"metadata"`
		Spec     SubscriptionSpec `json:"spec"`
	}{s.Metadata, s.Spec}
	return one[Subscription](ctx, c, http.MethodPut, "/api/v1/subscriptions/"+url.PathEscape(s.Metadata.Name), in)
}

// ApproveSubscription calls POST /api/v1/subscriptions/{name}/approve.
func (c *Client) ApproveSubscription(ctx context.Context, name string) (Subscription, error) {
	return one[Subscription](ctx, c, http.MethodPost, "/api/v1/subscriptions/"+url.PathEscape(name)+"/approve", nil)
}

// DeleteSubscription calls DELETE /api/v1/subscriptions/{name}.
func (c *Client) DeleteSubscription(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/subscriptions/"+url.PathEscape(name), nil, nil, nil)
}
