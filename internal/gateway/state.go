// Package gateway is the runtime's gateway role: it decides, for each
// request to a flow of a published API, whether the caller may pass — a
// credential that exists and has not expired, an enabled app subscribed to
// a plan of that API that accepts how it authenticated, and within that
// plan's per-app rate limit — and answers 401, 403 or 429 itself when not.
// A passing caller's app, consumer org, catalog and plan are handed to the
// flow as `.app`.
//
// Everything it decides with is a State pushed by the control plane and
// swapped in whole (Apply): client ids with secret hashes, apps,
// subscriptions, plans, and the JWKS that verifies bearer tokens offline.
// It never calls out while deciding, so a request never waits on the
// control plane, and when the control plane is down the last state keeps
// being enforced. It knows nothing of flows beyond their names and
// nothing of the store; the runtime owns the watch that feeds it.
package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Plan authentication types.
const (
	AuthClientID = "client-id" // X-IBM-Client-Id, optionally with X-IBM-Client-Secret
	AuthOAuth    = "oauth"     // Authorization: Bearer <token of an app credential>
	AuthNone     = "none"      // open
)

// State is the whole of what the gateway enforces for one runtime.
// Revision grows by one with every change of its content that the
// control-plane process has seen (it restarts with that process); the
// watch resumes by Tag, and the gateway only reports the revision.
type State struct {
	Revision      int64          `json:"revision"`
	APIs          []API          `json:"apis"`
	Apps          []App          `json:"apps"`
	Credentials   []Credential   `json:"credentials"`
	Subscriptions []Subscription `json:"subscriptions"`
	// Keys is the control plane's JWKS ({"keys":[…]}); Issuer and
	// Audience, when set, must match a bearer token's iss and aud.
	Keys     json.RawMessage `json:"keys,omitempty"`
	Issuer   string          `json:"issuer,omitempty"`
	Audience string          `json:"audience,omitempty"`
	// BasicAuth, when set, is App Connect's spec.forceFlowBasicAuth: every
	// flow of the runtime that no enforced API covers needs one of these
	// user names and passwords.
	BasicAuth []BasicCredential `json:"basicAuth,omitempty"`
	// ForceBasicAuth turns BasicAuth on even with no credential yet (then
	// those flows refuse every call until one is generated).
	ForceBasicAuth bool `json:"forceBasicAuth,omitempty"`
}

// API is a published API as the runtime serves it.
type API struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Version  string `json:"version"`
	BasePath string `json:"basePath"`
	// Flows are the runtime's flows of this API, as "project/flow".
	Flows []string `json:"flows"`
	Plans []Plan   `json:"plans"`
}

// Plan says how callers of an API authenticate and how often an app may
// call it.
type Plan struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Auth string `json:"auth"`
	// ClientSecret makes a client-id plan require X-IBM-Client-Secret too.
	ClientSecret bool  `json:"clientSecret,omitempty"`
	RateLimit    Limit `json:"rateLimit"`
}

// Limit is a quota of Requests per Window for each app; zero is no limit.
type Limit struct {
	Requests int      `json:"requests"`
	Window   Duration `json:"window"`
}

// Duration is a time.Duration written as Go's duration text ("1m").
type Duration time.Duration

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"1m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// App is a consumer app with the names the flow sees.
type App struct {
	ID              string `json:"id"`
	Name            string `json:"name"`
	ConsumerOrgID   string `json:"consumerOrgId"`
	ConsumerOrgName string `json:"consumerOrg"`
	CatalogID       string `json:"catalogId"`
	CatalogName     string `json:"catalog"`
	Enabled         bool   `json:"enabled"`
}

// Credential is an app credential: its client id, the hex SHA-256 of its
// secret, and when it stops working (zero: never).
type Credential struct {
	ClientID   string    `json:"clientId"`
	SecretHash string    `json:"secretHash"`
	AppID      string    `json:"appId"`
	ExpiresAt  time.Time `json:"expiresAt,omitzero"`
}

// Subscription lets an app call through a plan while Active (approved).
type Subscription struct {
	AppID  string `json:"appId"`
	PlanID string `json:"planId"`
	Active bool   `json:"active"`
}

// BasicCredential is a user name and the hex SHA-256 of its password.
type BasicCredential struct {
	Username     string `json:"username"`
	PasswordHash string `json:"passwordHash"`
}

// Caller is who passed: handed to the flow as `.app`. The gateway hands
// out the same Caller for every pass of one credential through one plan
// while a state lasts: read it, never modify it.
type Caller struct {
	AppID, AppName                   string
	ConsumerOrgID, ConsumerOrgName   string
	CatalogID, CatalogName           string
	PlanID, PlanName, APIID, APIName string
	ClientID                         string
	Auth                             string // AuthClientID or AuthOAuth

	// value is the whole of Value, built once by the compiled state for
	// a credential and plan (nil for a Caller made elsewhere: build it).
	value map[string]any
	plan  *Plan // which of its credential's passes this is
}

// Value is the caller as the flow's `.app`: a jq value. For a caller the
// gateway let through, it is built once per credential and plan while the
// state lasts and shared by all their calls, so passing costs no
// allocation: like every jq value, it must not be modified (flows never
// change their input).
func (c *Caller) Value() map[string]any {
	if c.value != nil {
		return c.value
	}
	return map[string]any{
		"id":          c.AppID,
		"name":        c.AppName,
		"consumerOrg": map[string]any{"id": c.ConsumerOrgID, "name": c.ConsumerOrgName},
		"catalog":     map[string]any{"id": c.CatalogID, "name": c.CatalogName},
		"plan":        map[string]any{"id": c.PlanID, "name": c.PlanName},
		"api":         map[string]any{"id": c.APIID, "name": c.APIName},
		"clientId":    c.ClientID,
		"auth":        c.Auth,
	}
}

// Tag names a state's content: equal states have equal tags. The watch
// sends it back so the control plane answers only when something changed.
func Tag(s State) string {
	s.Revision = 0
	b, _ := json.Marshal(s)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}
