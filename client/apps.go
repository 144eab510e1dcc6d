package client

import (
	"context"
	"net/http"
	"net/url"
)

// Consumer is a catalog, consumer org or app: the consumer side of an
// instance. Spec.State and Spec.CredentialPolicy are an app's only.
type Consumer struct {
	Metadata Metadata       `json:"metadata"`
	Spec     ConsumerSpec   `json:"spec"`
	Status   ConsumerStatus `json:"status"`
}

// ConsumerSpec is what a caller sets. An empty Metadata.Name on create is
// derived from Title.
type ConsumerSpec struct {
	Title            string            `json:"title"`
	Summary          string            `json:"summary"`
	State            string            `json:"state,omitempty"` // apps: "enabled" or "disabled"
	CredentialPolicy *CredentialPolicy `json:"credentialPolicy,omitempty"`
}

// CredentialPolicy bounds an app's leases: durations such as "1h".
type CredentialPolicy struct {
	DefaultTTL string `json:"defaultTtl,omitempty"`
	MaxTTL     string `json:"maxTtl,omitempty"`
}

// ConsumerStatus names an object's parents.
type ConsumerStatus struct {
	Catalog     string `json:"catalog,omitempty"`
	ConsumerOrg string `json:"consumerOrg,omitempty"`
	UpdatedBy   string `json:"updatedBy,omitempty"`
}

// AppCredential is an app's credential or lease; its secret never appears.
type AppCredential struct {
	Metadata Metadata            `json:"metadata"`
	Spec     AppCredentialSpec   `json:"spec"`
	Status   AppCredentialStatus `json:"status"`
}

// AppCredentialSpec is what a caller sets.
type AppCredentialSpec struct {
	Title   string `json:"title"`
	Summary string `json:"summary"`
}

// AppCredentialStatus is what the server reports.
type AppCredentialStatus struct {
	ClientID     string `json:"clientId"`
	SecretHint   string `json:"secretHint"`
	Lease        bool   `json:"lease"`
	ExpiresAt    string `json:"expiresAt,omitempty"`
	MaxExpiresAt string `json:"maxExpiresAt,omitempty"`
}

// AppCredentialCreated is a create answer, with the secret shown once.
type AppCredentialCreated struct {
	AppCredential
	ClientID     string `json:"clientId"`
	ClientSecret Secret `json:"clientSecret"`
}

// LeaseRenewed is a renewal's answer; Capped says the app's maxTtl cut it.
type LeaseRenewed struct {
	AppCredential
	Capped bool `json:"capped"`
}

// AppPath names an app (or, with App "", a consumer org; with ConsumerOrg
// "", a catalog) by ids or names.
type AppPath struct{ Catalog, ConsumerOrg, App string }

func (p AppPath) url() string {
	u := "/api/v1/catalogs/" + url.PathEscape(p.Catalog)
	if p.ConsumerOrg != "" {
		u += "/consumer-orgs/" + url.PathEscape(p.ConsumerOrg)
	}
	if p.App != "" {
		u += "/apps/" + url.PathEscape(p.App)
	}
	return u
}

func consumerBody(o Consumer) any {
	return struct {
		Metadata struct {
			Name string `json:"name,omitempty"`
		} `json:"metadata"`
		Spec ConsumerSpec `json:"spec"`
	}{Metadata: struct {
		Name string `json:"name,omitempty"`
	}{o.Metadata.Name}, Spec: o.Spec}
}

// listOf reads a list answer keyed by key.
// ListCatalogs calls GET /api/v1/catalogs.
func (c *Client) ListCatalogs(ctx context.Context) ([]Consumer, error) {
	return listAll[Consumer](ctx, c, "/api/v1/catalogs", nil, "catalogs", 0)
}

// CreateCatalog calls POST /api/v1/catalogs.
func (c *Client) CreateCatalog(ctx context.Context, o Consumer) (Consumer, error) {
	var out Consumer
	return out, c.Do(ctx, http.MethodPost, "/api/v1/catalogs", nil, consumerBody(o), &out)
}

// GetConsumer reads the catalog, consumer org or app p names.
func (c *Client) GetConsumer(ctx context.Context, p AppPath) (Consumer, error) {
	var out Consumer
	return out, c.Do(ctx, http.MethodGet, p.url(), nil, nil, &out)
}

// UpdateConsumer writes the object p names with PUT: it creates it under
// the path's name, or replaces its title and summary (and an app's state
// and policy, which stay as they are when left out).
func (c *Client) UpdateConsumer(ctx context.Context, p AppPath, o Consumer) (Consumer, error) {
	var out Consumer
	return out, c.Do(ctx, http.MethodPut, p.url(), nil, consumerBody(o), &out)
}

// DeleteConsumer deletes the object p names; force deletes its children too.
func (c *Client) DeleteConsumer(ctx context.Context, p AppPath, force bool) error {
	return c.Do(ctx, http.MethodDelete, p.url(), forceQuery(force), nil, nil)
}

// ListConsumerOrgs calls GET /api/v1/catalogs/{catalog}/consumer-orgs.
func (c *Client) ListConsumerOrgs(ctx context.Context, catalog string) ([]Consumer, error) {
	return listAll[Consumer](ctx, c, AppPath{Catalog: catalog}.url()+"/consumer-orgs", nil, "consumerOrgs", 0)
}

// CreateConsumerOrg calls POST /api/v1/catalogs/{catalog}/consumer-orgs.
func (c *Client) CreateConsumerOrg(ctx context.Context, catalog string, o Consumer) (Consumer, error) {
	var out Consumer
	return out, c.Do(ctx, http.MethodPost, AppPath{Catalog: catalog}.url()+"/consumer-orgs", nil, consumerBody(o), &out)
}

// ListApps lists the apps of the consumer org p names.
func (c *Client) ListApps(ctx context.Context, p AppPath) ([]Consumer, error) {
	p.App = ""
	return listAll[Consumer](ctx, c, p.url()+"/apps", nil, "apps", 0)
}

// CreateApp creates an app in the consumer org p names.
func (c *Client) CreateApp(ctx context.Context, p AppPath, o Consumer) (Consumer, error) {
	var out Consumer
	p.App = ""
	return out, c.Do(ctx, http.MethodPost, p.url()+"/apps", nil, consumerBody(o), &out)
}

// ListAppCredentials lists an app's credentials; leases says leases only.
func (c *Client) ListAppCredentials(ctx context.Context, app AppPath, leases bool) ([]AppCredential, error) {
	if leases {
		return listAll[AppCredential](ctx, c, app.url()+"/leases", nil, "leases", 0)
	}
	return listAll[AppCredential](ctx, c, app.url()+"/credentials", nil, "credentials", 0)
}

// CreateAppCredential creates a permanent credential on an app.
func (c *Client) CreateAppCredential(ctx context.Context, app AppPath, name, title string) (AppCredentialCreated, error) {
	var out AppCredentialCreated
	body := map[string]any{"metadata": map[string]string{"name": name}, "spec": map[string]string{"title": title}}
	return out, c.Do(ctx, http.MethodPost, app.url()+"/credentials", nil, body, &out)
}

// CreateLease leases a credential for ttl ("" for the app's defaultTtl).
func (c *Client) CreateLease(ctx context.Context, app AppPath, name, ttl string) (AppCredentialCreated, error) {
	var out AppCredentialCreated
	body := map[string]any{"metadata": map[string]string{"name": name}, "ttl": ttl}
	return out, c.Do(ctx, http.MethodPost, app.url()+"/leases", nil, body, &out)
}

// RenewLease extends a lease to now + increment, capped at its maximum.
func (c *Client) RenewLease(ctx context.Context, app AppPath, lease, increment string) (LeaseRenewed, error) {
	var out LeaseRenewed
	return out, c.Do(ctx, http.MethodPost, app.url()+"/leases/"+url.PathEscape(lease)+"/renew", nil, map[string]string{"increment": increment}, &out)
}

// DeleteAppCredential deletes a credential (a lease too) at once.
func (c *Client) DeleteAppCredential(ctx context.Context, app AppPath, credential string) error {
	return c.Do(ctx, http.MethodDelete, app.url()+"/credentials/"+url.PathEscape(credential), nil, nil, nil)
}

// RevokeLeases revokes every lease of an app and says how many there were.
func (c *Client) RevokeLeases(ctx context.Context, app AppPath) (int, error) {
	var out struct {
		Revoked int `json:"revoked"`
	}
	return out.Revoked, c.Do(ctx, http.MethodDelete, app.url()+"/leases", nil, nil, &out)
}
