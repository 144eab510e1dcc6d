package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"time"
)

// Owner kinds: the identities API keys and credentials belong to.
const (
	OwnerUser      = "user"
	OwnerServiceID = "serviceId"
)

// Roles an identity can hold in its instance.
const (
	RoleAdmin     = "admin"
	RoleDeveloper = "developer"
	RoleViewer    = "viewer"
)

// Metadata is the metadata of every API object. Only Name is set by
// callers; the server fills in the rest.
type Metadata struct {
	Name      string    `json:"name"`
	ID        string    `json:"id,omitempty"`
	CreatedAt time.Time `json:"createdAt,omitzero"`
	CreatedBy string    `json:"createdBy,omitempty"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"`
}

// Owner names the identity an API key or credential belongs to.
type Owner struct {
	Kind string `json:"kind"` // OwnerUser or OwnerServiceID
	Name string `json:"name"`
}

// ---- whoami ----

// WhoAmI is who the server takes the caller to be.
type WhoAmI struct {
	InstanceID string    `json:"instanceId"`
	Kind       string    `json:"kind"` // OwnerUser or OwnerServiceID
	Name       string    `json:"name"`
	Role       string    `json:"role"`
	ClientID   string    `json:"clientId"`
	APIKeyID   string    `json:"apiKeyId"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"` // the token's expiry
}

// WhoAmI calls GET /api/v1/whoami.
func (c *Client) WhoAmI(ctx context.Context) (WhoAmI, error) {
	var w WhoAmI
	err := c.Do(ctx, http.MethodGet, "/api/v1/whoami", nil, nil, &w)
	return w, err
}

// ---- users and service IDs ----

// Identity is a user or a service ID.
type Identity struct {
	Metadata Metadata       `json:"metadata"`
	Spec     IdentitySpec   `json:"spec"`
	Status   IdentityStatus `json:"status"`
}

// IdentitySpec is what a caller sets on a user or service ID.
type IdentitySpec struct {
	Role        string `json:"role"`
	Description string `json:"description"`
	// Password is write-only and for users only: sent when not zero on
	// create or replace (zero keeps the current one), never returned.
	Password Secret `json:"-"`
}

// IdentityStatus is what the server reports about an identity.
type IdentityStatus struct {
	// PasswordSet tells, for users, whether a password is set; nil for
	// service IDs.
	PasswordSet *bool `json:"passwordSet,omitempty"`
}

// wireIdentity is an Identity as it is sent, with the password revealed.
type wireIdentity struct {
	Metadata struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Role        string  `json:"role"`
		Description string  `json:"description"`
		Password    *string `json:"password,omitempty"`
	} `json:"spec"`
}

func toWire(id Identity) wireIdentity {
	var w wireIdentity
	w.Metadata.Name = id.Metadata.Name
	w.Spec.Role, w.Spec.Description = id.Spec.Role, id.Spec.Description
	if !id.Spec.Password.IsZero() {
		p := id.Spec.Password.Reveal()
		w.Spec.Password = &p
	}
	return w
}

// identities is the shared implementation of users and service IDs, which
// have the same shape under different paths and list keys.
type identities struct {
	c       *Client
	path    string
	listKey string
}

func (s identities) list(ctx context.Context) ([]Identity, error) {
	return listAll[Identity](ctx, s.c, s.path, nil, s.listKey, 0)
}

func (s identities) get(ctx context.Context, name string) (Identity, error) {
	var id Identity
	err := s.c.Do(ctx, http.MethodGet, s.path+"/"+url.PathEscape(name), nil, nil, &id)
	return id, err
}

func (s identities) create(ctx context.Context, id Identity) (Identity, error) {
	var out Identity
	err := s.c.Do(ctx, http.MethodPost, s.path, nil, toWire(id), &out)
	return out, err
}

func (s identities) put(ctx context.Context, id Identity) (Identity, error) {
	var out Identity
	err := s.c.Do(ctx, http.MethodPut, s.path+"/"+url.PathEscape(id.Metadata.Name), nil, toWire(id), &out)
	return out, err
}

func (s identities) delete(ctx context.Context, name string) error {
	return s.c.Do(ctx, http.MethodDelete, s.path+"/"+url.PathEscape(name), nil, nil, nil)
}

func (c *Client) users() identities { return identities{c, "/api/v1/users", "users"} }
func (c *Client) serviceIDs() identities {
	return identities{c, "/api/v1/service-ids", "serviceIds"}
}

// ListUsers calls GET /api/v1/users (admins).
func (c *Client) ListUsers(ctx context.Context) ([]Identity, error) { return c.users().list(ctx) }

// GetUser calls GET /api/v1/users/{name}.
func (c *Client) GetUser(ctx context.Context, name string) (Identity, error) {
	return c.users().get(ctx, name)
}

// CreateUser calls POST /api/v1/users: it creates the user named by
// u.Metadata.Name and fails with 409 when the name is taken.
func (c *Client) CreateUser(ctx context.Context, u Identity) (Identity, error) {
	return c.users().create(ctx, u)
}

// PutUser calls PUT /api/v1/users/{name}: it creates the user or replaces
// its role and description (and password, when u carries one).
func (c *Client) PutUser(ctx context.Context, u Identity) (Identity, error) {
	return c.users().put(ctx, u)
}

// DeleteUser calls DELETE /api/v1/users/{name}; the user's API keys and
// the tokens minted from them stop working at once.
func (c *Client) DeleteUser(ctx context.Context, name string) error {
	return c.users().delete(ctx, name)
}

// ListServiceIDs calls GET /api/v1/service-ids (admins).
func (c *Client) ListServiceIDs(ctx context.Context) ([]Identity, error) {
	return c.serviceIDs().list(ctx)
}

// GetServiceID calls GET /api/v1/service-ids/{name}.
func (c *Client) GetServiceID(ctx context.Context, name string) (Identity, error) {
	return c.serviceIDs().get(ctx, name)
}

// CreateServiceID calls POST /api/v1/service-ids.
func (c *Client) CreateServiceID(ctx context.Context, s Identity) (Identity, error) {
	return c.serviceIDs().create(ctx, s)
}

// PutServiceID calls PUT /api/v1/service-ids/{name}.
func (c *Client) PutServiceID(ctx context.Context, s Identity) (Identity, error) {
	return c.serviceIDs().put(ctx, s)
}

// DeleteServiceID calls DELETE /api/v1/service-ids/{name}.
func (c *Client) DeleteServiceID(ctx context.Context, name string) error {
	return c.serviceIDs().delete(ctx, name)
}

// ---- API keys ----

// APIKey is an API key; its value is never part of it.
type APIKey struct {
	Metadata Metadata     `json:"metadata"`
	Spec     APIKeySpec   `json:"spec"`
	Status   APIKeyStatus `json:"status"`
}

// APIKeySpec is what a caller sets when creating a key.
type APIKeySpec struct {
	Description string    `json:"description"`
	Owner       *Owner    `json:"owner,omitempty"`    // nil: the caller
	ExpiresAt   time.Time `json:"expiresAt,omitzero"` // zero: never
}

// APIKeyStatus is what the server reports about a key.
type APIKeyStatus struct {
	Locked     bool      `json:"locked"`
	Expired    bool      `json:"expired"`
	Hint       string    `json:"hint"` // the first characters of the value
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// APIKeyCreated is the one answer that carries a key's value.
type APIKeyCreated struct {
	APIKey
	Key      Secret         `json:"key"`
	Download APIKeyDownload `json:"download"`
	// APIKeyJSON is the same in IBM Cloud's apiKey.json shape.
	APIKeyJSON APIKeyFile `json:"apiKeyJson"`
}

// APIKeyFile is IBM Cloud's apiKey.json document, as the server offers it.
type APIKeyFile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	CreatedAt   string `json:"createdAt"`
	APIKey      Secret `json:"apikey"`
}

// RevealJSON returns the apiKey.json document, key in clear text, for
// writing to a file only its owner can read.
func (f APIKeyFile) RevealJSON() ([]byte, error) {
	return json.MarshalIndent(struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		CreatedAt   string `json:"createdAt"`
		APIKey      string `json:"apikey"`
	}{f.Name, f.Description, f.CreatedAt, f.APIKey.Reveal()}, "", "  ")
}

// APIKeyDownload is the JSON document a new key's owner is offered to save.
type APIKeyDownload struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Created     string `json:"created"`
	Key         Secret `json:"key"`
}

// RevealJSON returns the download document as the server sent it, key in
// clear text, for writing to a file only its owner can read.
func (d APIKeyDownload) RevealJSON() ([]byte, error) {
	return json.MarshalIndent(struct {
		Name        string `json:"name"`
		Description string `json:"description"`
		Created     string `json:"created"`
		Key         string `json:"key"`
	}{d.Name, d.Description, d.Created, d.Key.Reveal()}, "", "  ")
}

// ListAPIKeys calls GET /api/v1/api-keys: the caller's own keys, or every
// key of the instance for admins.
func (c *Client) ListAPIKeys(ctx context.Context) ([]APIKey, error) {
	return listAll[APIKey](ctx, c, "/api/v1/api-keys", nil, "apiKeys", 0)
}

// CreateAPIKey calls POST /api/v1/api-keys. Only k.Metadata.Name and
// k.Spec are sent. The answer is the only place the key's value appears.
func (c *Client) CreateAPIKey(ctx context.Context, k APIKey) (APIKeyCreated, error) {
	in := struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec APIKeySpec `json:"spec"`
	}{Spec: k.Spec}
	in.Metadata.Name = k.Metadata.Name
	if !in.Spec.ExpiresAt.IsZero() {
		in.Spec.ExpiresAt = in.Spec.ExpiresAt.UTC()
	}
	var out APIKeyCreated
	err := c.Do(ctx, http.MethodPost, "/api/v1/api-keys", nil, in, &out)
	return out, err
}

// GetAPIKey calls GET /api/v1/api-keys/{id}.
func (c *Client) GetAPIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := c.Do(ctx, http.MethodGet, "/api/v1/api-keys/"+url.PathEscape(id), nil, nil, &k)
	return k, err
}

// LockAPIKey calls POST /api/v1/api-keys/{id}/lock: the key and every
// token minted from it stop working until it is unlocked.
func (c *Client) LockAPIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := c.Do(ctx, http.MethodPost, "/api/v1/api-keys/"+url.PathEscape(id)+"/lock", nil, nil, &k)
	return k, err
}

// UnlockAPIKey calls POST /api/v1/api-keys/{id}/unlock.
func (c *Client) UnlockAPIKey(ctx context.Context, id string) (APIKey, error) {
	var k APIKey
	err := c.Do(ctx, http.MethodPost, "/api/v1/api-keys/"+url.PathEscape(id)+"/unlock", nil, nil, &k)
	return k, err
}

// DeleteAPIKey calls DELETE /api/v1/api-keys/{id}.
func (c *Client) DeleteAPIKey(ctx context.Context, id string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/api-keys/"+url.PathEscape(id), nil, nil, nil)
}

// ---- public API credentials ----

// Credential is a public API credential (client id and secret); its secret
// is never part of it.
type Credential struct {
	Metadata Metadata         `json:"metadata"`
	Spec     CredentialSpec   `json:"spec"`
	Status   CredentialStatus `json:"status"`
}

// CredentialSpec is what a caller sets.
type CredentialSpec struct {
	Description string `json:"description"`
	// Owner makes the credential an application's: with one, the OAuth
	// client_credentials grant alone yields a token with the owner's role.
	Owner *Owner `json:"owner,omitempty"`
}

// CredentialStatus is what the server reports about a credential.
type CredentialStatus struct {
	ClientID   string    `json:"clientId"`
	SecretHint string    `json:"secretHint"`
	LastUsedAt time.Time `json:"lastUsedAt,omitzero"`
}

// CredentialCreated is the one answer that carries a client secret.
type CredentialCreated struct {
	Credential
	ClientID     string `json:"clientId"`
	ClientSecret Secret `json:"clientSecret"`
}

func credentialBody(cr Credential) any {
	in := struct {
		Metadata struct {
			Name string `json:"name"`
		} `json:"metadata"`
		Spec CredentialSpec `json:"spec"`
	}{Spec: cr.Spec}
	in.Metadata.Name = cr.Metadata.Name
	return in
}

// ListCredentials calls GET /api/v1/credentials (admins).
func (c *Client) ListCredentials(ctx context.Context) ([]Credential, error) {
	return listAll[Credential](ctx, c, "/api/v1/credentials", nil, "credentials", 0)
}

// GetCredential calls GET /api/v1/credentials/{name}.
func (c *Client) GetCredential(ctx context.Context, name string) (Credential, error) {
	var cr Credential
	err := c.Do(ctx, http.MethodGet, "/api/v1/credentials/"+url.PathEscape(name), nil, nil, &cr)
	return cr, err
}

// CreateCredential calls POST /api/v1/credentials. The answer is the only
// place the client secret appears.
func (c *Client) CreateCredential(ctx context.Context, cr Credential) (CredentialCreated, error) {
	var out CredentialCreated
	err := c.Do(ctx, http.MethodPost, "/api/v1/credentials", nil, credentialBody(cr), &out)
	return out, err
}

// PutCredential calls PUT /api/v1/credentials/{name}. Replacing an
// existing credential changes its description only and returns no secret
// (ClientSecret is zero); creating one returns the new secret.
func (c *Client) PutCredential(ctx context.Context, cr Credential) (CredentialCreated, error) {
	var out CredentialCreated
	err := c.Do(ctx, http.MethodPut, "/api/v1/credentials/"+url.PathEscape(cr.Metadata.Name), nil, credentialBody(cr), &out)
	if err == nil && out.ClientID == "" {
		out.ClientID = out.Status.ClientID
	}
	return out, err
}

// DeleteCredential calls DELETE /api/v1/credentials/{name}; tokens minted
// for that client stop working at once.
func (c *Client) DeleteCredential(ctx context.Context, name string) error {
	return c.Do(ctx, http.MethodDelete, "/api/v1/credentials/"+url.PathEscape(name), nil, nil, nil)
}

// ---- audit ----

// AuditEvent is one audit record. It never holds a secret value.
type AuditEvent struct {
	ID        string    `json:"id"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"` // e.g. "token.issue", "apiKey.lock"
	Object    string    `json:"object"`
	Outcome   string    `json:"outcome"` // "success", "denied" or "failure"
	Source    string    `json:"source"`  // the caller's address
	RequestID string    `json:"requestId"`
	Detail    string    `json:"detail,omitempty"`
}

// AuditFilter narrows GET /api/v1/audit; zero fields do not filter.
type AuditFilter struct {
	Since  time.Time
	Until  time.Time
	Actor  string
	Action string // e.g. token.issue
	Object string // e.g. apiKey/<id>
	// Limit is the most events answered, the newest; 0: every event the
	// filter selects (the client reads them page by page).
	Limit int
}

// ListAudit calls GET /api/v1/audit (admins), following its pages.
func (c *Client) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.UTC().Format(time.RFC3339Nano))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.UTC().Format(time.RFC3339Nano))
	}
	if f.Actor != "" {
		q.Set("actor", f.Actor)
	}
	if f.Action != "" {
		q.Set("action", f.Action)
	}
	if f.Object != "" {
		q.Set("object", f.Object)
	}
	return listAll[AuditEvent](ctx, c, "/api/v1/audit", q, "auditEvents", f.Limit)
}
