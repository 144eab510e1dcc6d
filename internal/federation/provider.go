package federation

import (
	"context"
	"errors"

	"github.com/sluice-dev/sluice/internal/secret"
)

// Provider is what the agent federates: the APIs Sluice publishes, and the
// consumer side (apps, subscriptions, credentials) a Gravitee subscription
// turns into. The agent maps these shapes to Gravitee's wire; a provider
// knows nothing of the exchange protocol.
type Provider interface {
	// APIs lists every API to federate, complete: documents and plans.
	// The agent calls it for DISCOVER and for each ingest job.
	APIs(ctx context.Context) ([]API, error)
	// Subscribe turns a Gravitee subscription to one of an API's plans
	// into an app of Sluice's, its subscription to that plan and a
	// credential for it, and returns the credential. Subscribing again
	// with the same SubscriptionID returns a credential for the same
	// subscription rather than creating a second one.
	Subscribe(ctx context.Context, req Subscription) (Credential, error)
	// Unsubscribe removes what Subscribe created for req.SubscriptionID.
	// Removing what is already gone is not an error.
	Unsubscribe(ctx context.Context, req Subscription) error
	// Health says whether the provider can answer (its Sluice reachable);
	// nil is healthy. HEALTH_CHECK reports it.
	Health(ctx context.Context) error
}

// API is one API Sluice publishes.
type API struct {
	// ID is stable across restarts and unique within the provider: it is
	// the id Gravitee keeps for the federated API and names in START_INGEST,
	// SUBSCRIBE and UNSUBSCRIBE.
	ID          string
	Name        string
	Version     string
	Description string
	// URL is the base URL the API is served at, "" when it is not running.
	URL string
	// Documents describe the API; the first OpenAPI one is its contract.
	Documents []Document
	Plans     []Plan
	// Labels are shown with the API in Gravitee (runtime, BAR files…).
	Labels []Label
}

// Document kinds.
const (
	DocOpenAPI  = "openapi"
	DocAsyncAPI = "asyncapi"
	DocMarkdown = "markdown"
)

// Document is a file describing an API.
type Document struct {
	Kind     string // DocOpenAPI, DocAsyncAPI or DocMarkdown
	Filename string
	Content  []byte
}

// Plan securities, as Sluice's plans name them.
const (
	SecurityClientID = "client-id" // X-IBM-Client-Id (+ secret), Gravitee's API_KEY
	SecurityOAuth    = "oauth"     // bearer token from Sluice's token endpoint, Gravitee's OAUTH2
	SecurityNone     = "none"      // open; nothing to subscribe to, not federated as a plan
)

// Plan is a way to call an API.
type Plan struct {
	ID          string
	Name        string
	Description string
	Security    string
	// Characteristics are short facts shown with the plan (rate limit…).
	Characteristics []string
}

// Label is a named value shown with an API.
type Label struct {
	Name, Value string
	URL         bool // the value is a URL
}

// Subscription is a Gravitee subscription, as SUBSCRIBE and UNSUBSCRIBE
// carry it.
type Subscription struct {
	APIID           string
	PlanID          string // from the subscription's metadata; may be empty
	SubscriptionID  string // Gravitee's subscription id: the key of everything Subscribe creates
	ApplicationID   string // Gravitee's application id
	ApplicationName string
	Type            string // Gravitee's subscription type: API_KEY, OAUTH or JWT
}

// Credential is what a subscriber calls the API with.
type Credential struct {
	AppID        string // the Sluice app created for the subscription
	ClientID     string
	ClientSecret secret.Value
}

// ErrUnavailable is returned (wrapped) by a provider that cannot do what
// was asked in this build or configuration; the agent answers the command
// with an ERROR naming the reason instead of pretending.
var ErrUnavailable = errors.New("not available")
