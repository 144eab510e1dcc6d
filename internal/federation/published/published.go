// Package published is the federation agent's provider over Sluice's
// published APIs (package apis): DISCOVER and INGEST get every published
// API with its OpenAPI document and its client-id and oauth plans, and a
// Gravitee subscription becomes Sluice's consumer objects — a consumer org
// for the Gravitee application, an app and a subscription to the plan for
// the Gravitee subscription, and a credential of that app — all named
// after Gravitee's ids, so a repeated SUBSCRIBE finds what the first one
// made and UNSUBSCRIBE finds what to remove.
//
// It reaches Sluice through a Source: the control plane's services when
// the agent runs inside `sluice serve`, the public API when it runs as
// `sluice federation-agent`. Either way every change goes through the
// services' own rules and is audited as the agent's.
package published

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/federation"
	"github.com/sluice-dev/sluice/internal/secret"
)

// API is what the provider needs of a published API.
type API struct {
	ID, Name, Title, Version, Description string
	BasePath                              string
	Runtime, BARFile                      string // what the API publishes flows of
	DocumentSource                        string // "generated" or BARFILE:openapi/FILE
}

// Plan is what the provider needs of a plan.
type Plan struct {
	ID, Name, Title, Description string
	Auth                         string // federation.SecurityClientID, SecurityOAuth or SecurityNone
	ClientSecret, Approval       bool
	RateLimit                    string
	APIs                         []string // names
}

// Runtime is what the provider needs of a runtime: where an API is served.
type Runtime struct {
	Name         string
	BARs         []string
	EndpointURLs []string
}

// Grant is one Gravitee subscription as the Source carries it out: the
// names of everything it creates, derived from Gravitee's ids.
type Grant struct {
	Catalog     string // always the sandbox catalog
	ConsumerOrg string // for the Gravitee application
	OrgTitle    string
	App         string // for the Gravitee subscription; also the subscription's name
	AppTitle    string
	Summary     string
	Plan        string // the plan's name
	// NeedSecret: callers need the secret (oauth, or a client-id plan
	// requiring X-IBM-Client-Secret). Secrets are shown once, so a
	// repeated grant of such a plan replaces the credential.
	NeedSecret bool
}

// CredentialName is the name of the app credential a grant creates.
const CredentialName = "gravitee"

// Source is where the provider reads and changes Sluice.
type Source interface {
	APIs(ctx context.Context) ([]API, error)
	Plans(ctx context.Context) ([]Plan, error)
	Runtimes(ctx context.Context) ([]Runtime, error)
	// Document is an API's OpenAPI document (JSON).
	Document(ctx context.Context, api string) ([]byte, error)
	// Grant creates (or finds) the consumer org, app, subscription and
	// credential of g and returns the credential; the secret only when
	// g.NeedSecret.
	Grant(ctx context.Context, g Grant) (federation.Credential, error)
	// Revoke removes the app of g (and with it its credential) and its
	// subscription; what is gone already is not an error.
	Revoke(ctx context.Context, g Grant) error
	Health(ctx context.Context) error
}

// Provider federates published APIs. It implements federation.Provider.
type Provider struct {
	Source Source
}

var _ federation.Provider = (*Provider)(nil)

// APIs lists every published API with its document and its plans that
// can be subscribed to (none plans are left out: nothing to subscribe to).
func (p *Provider) APIs(ctx context.Context) ([]federation.API, error) {
	apis, err := p.Source.APIs(ctx)
	if err != nil {
		return nil, fmt.Errorf("unable to list the published APIs: %w", err)
	}
	plans, err := p.Source.Plans(ctx)
	if err != nil {
		return nil, fmt.Errorf("unable to list the plans: %w", err)
	}
	rts, err := p.Source.Runtimes(ctx)
	if err != nil {
		return nil, fmt.Errorf("unable to list the integration runtimes: %w", err)
	}
	out := make([]federation.API, 0, len(apis))
	for _, a := range apis {
		doc, err := p.Source.Document(ctx, a.Name)
		if err != nil {
			return nil, fmt.Errorf("unable to read the OpenAPI document of API %s: %w", a.Name, err)
		}
		name := a.Title
		if name == "" {
			name = a.Name
		}
		fa := federation.API{ID: a.ID, Name: name, Version: a.Version, Description: a.Description,
			Documents: []federation.Document{{Kind: federation.DocOpenAPI, Filename: a.Name + ".openapi.json", Content: doc}},
			Labels: []federation.Label{{Name: "sluice.api", Value: a.Name}, {Name: "sluice.basePath", Value: a.BasePath},
				{Name: "sluice.documentSource", Value: a.DocumentSource}}}
		if a.Runtime != "" {
			fa.Labels = append(fa.Labels, federation.Label{Name: "sluice.runtime", Value: a.Runtime})
		}
		if a.BARFile != "" {
			fa.Labels = append(fa.Labels, federation.Label{Name: "sluice.barFile", Value: a.BARFile})
		}
		if base := servedAt(a, rts); base != "" {
			fa.URL = base
			fa.Labels = append(fa.Labels, federation.Label{Name: "sluice.endpoint", Value: base, URL: true})
		}
		for _, pl := range plans {
			if pl.Auth == federation.SecurityNone || !contains(pl.APIs, a.Name) {
				continue
			}
			fa.Plans = append(fa.Plans, wirePlan(pl))
		}
		out = append(out, fa)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func wirePlan(pl Plan) federation.Plan {
	name := pl.Title
	if name == "" {
		name = pl.Name
	}
	fp := federation.Plan{ID: pl.ID, Name: name, Description: pl.Description, Security: pl.Auth}
	if pl.RateLimit != "" && pl.RateLimit != "off" {
		fp.Characteristics = append(fp.Characteristics, "rate limit "+pl.RateLimit+" per app")
	}
	if pl.ClientSecret {
		fp.Characteristics = append(fp.Characteristics, "X-IBM-Client-Secret required")
	}
	if pl.Approval {
		fp.Characteristics = append(fp.Characteristics, "subscriptions approved in Sluice")
	}
	return fp
}

// servedAt is the URL an API is called at: the base URL of the runtime it
// names, or of the first (by name) running its BAR file, and its base
// path; "" while nothing serves it.
func servedAt(a API, rts []Runtime) string {
	sort.Slice(rts, func(i, j int) bool { return rts[i].Name < rts[j].Name })
	for _, rt := range rts {
		if a.Runtime != "" && rt.Name != a.Runtime {
			continue
		}
		if a.BARFile != "" && !contains(rt.BARs, a.BARFile) {
			continue
		}
		for _, e := range rt.EndpointURLs {
			u, err := url.Parse(e)
			if err == nil && u.Scheme != "" && u.Host != "" {
				return u.Scheme + "://" + u.Host + strings.TrimSuffix(a.BasePath, "/")
			}
		}
	}
	return ""
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}

// Subscribe carries out a Gravitee subscription to one of an API's plans.
func (p *Provider) Subscribe(ctx context.Context, s federation.Subscription) (federation.Credential, error) {
	pl, err := p.plan(ctx, s)
	if err != nil {
		return federation.Credential{}, err
	}
	switch {
	case s.Type == "API_KEY" && pl.Auth != federation.SecurityClientID:
		return federation.Credential{}, fmt.Errorf("plan %s takes %s, not an API key", pl.Name, pl.Auth)
	case s.Type == "OAUTH" && pl.Auth != federation.SecurityOAuth:
		return federation.Credential{}, fmt.Errorf("plan %s takes %s, not OAuth", pl.Name, pl.Auth)
	}
	g := grant(s, pl.Name)
	g.NeedSecret = pl.Auth == federation.SecurityOAuth || pl.ClientSecret
	return p.Source.Grant(ctx, g)
}

// plan finds the plan a subscription is to: the one its metadata names
// (by id or name), or the API's only subscribable plan.
func (p *Provider) plan(ctx context.Context, s federation.Subscription) (Plan, error) {
	apis, err := p.Source.APIs(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("unable to list the published APIs: %w", err)
	}
	var api string
	for _, a := range apis {
		if a.ID == s.APIID || a.Name == s.APIID {
			api = a.Name
		}
	}
	if api == "" {
		return Plan{}, fmt.Errorf("API %s is not published in Sluice", clip(s.APIID))
	}
	plans, err := p.Source.Plans(ctx)
	if err != nil {
		return Plan{}, fmt.Errorf("unable to list the plans: %w", err)
	}
	var candidates []Plan
	for _, pl := range plans {
		if pl.Auth == federation.SecurityNone || !contains(pl.APIs, api) {
			continue
		}
		if s.PlanID != "" && (pl.ID == s.PlanID || pl.Name == s.PlanID) {
			return pl, nil
		}
		candidates = append(candidates, pl)
	}
	switch {
	case s.PlanID != "":
		return Plan{}, fmt.Errorf("plan %s is not a client-id or oauth plan of API %s", clip(s.PlanID), api)
	case len(candidates) == 1:
		return candidates[0], nil
	case len(candidates) == 0:
		return Plan{}, fmt.Errorf("API %s has no client-id or oauth plan to subscribe to", api)
	}
	return Plan{}, fmt.Errorf("API %s has %d plans: the subscription's metadata must name one (planId)", api, len(candidates))
}

// Unsubscribe removes what Subscribe created.
func (p *Provider) Unsubscribe(ctx context.Context, s federation.Subscription) error {
	return p.Source.Revoke(ctx, grant(s, ""))
}

// Health is the source's.
func (p *Provider) Health(ctx context.Context) error { return p.Source.Health(ctx) }

// grant names what a subscription makes. Sluice's names are at most 32
// characters, Gravitee's ids are UUIDs (36): names carry a digest of the
// id, titles and summaries the ids themselves.
func grant(s federation.Subscription, plan string) Grant {
	appKey := s.ApplicationID
	if appKey == "" {
		appKey = "subscription:" + s.SubscriptionID
	}
	title := s.ApplicationName
	if title == "" {
		title = "Gravitee application " + appKey
	}
	return Grant{Catalog: "sandbox", ConsumerOrg: "gravitee-" + digest(appKey, 20), OrgTitle: clip(title),
		App: "gs-" + digest(s.SubscriptionID, 28), AppTitle: clip(title + " — " + plan),
		Summary: clip(fmt.Sprintf("Gravitee subscription %s of application %s", s.SubscriptionID, appKey)), Plan: plan}
}

func digest(s string, n int) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])[:n]
}

// clip bounds what Gravitee sent before it reaches titles and errors.
func clip(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// credential is what Grant returns for an issued or found credential.
func credential(appID, clientID string, sec secret.Value, needSecret bool) federation.Credential {
	c := federation.Credential{AppID: appID, ClientID: clientID}
	if needSecret {
		c.ClientSecret = sec
	}
	return c
}

// parseAppPath reads a subscription's "catalog/consumer-org/app".
func parseAppPath(s string) (apps.Path, bool) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return apps.Path{}, false
	}
	return apps.Path{Catalog: parts[0], ConsumerOrg: parts[1], App: parts[2]}, true
}
