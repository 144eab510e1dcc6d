package exchange

// Payloads of the commands and replies, in the JSON shapes of Gravitee's
// exchange and integration APIs (nulls omitted, unknown members ignored).

// HelloPayload is what an agent sends first: the integration it serves
// and its provider type, which the controller checks against the
// integration's.
type HelloPayload struct {
	TargetID string `json:"targetId"`
	Provider string `json:"provider,omitempty"`
}

// HelloReplyPayload confirms the target the channel now serves.
type HelloReplyPayload struct {
	TargetID string `json:"targetId"`
}

// HealthCheckReplyPayload answers HEALTH_CHECK.
type HealthCheckReplyPayload struct {
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
}

// PrimaryPayload tells an agent whether its channel is the primary one of
// its target (the one the controller sends work to).
type PrimaryPayload struct {
	Primary bool `json:"primary"`
}

// GoodByePayload ends a channel; Reconnect asks the agent to come back.
type GoodByePayload struct {
	TargetID  string `json:"targetId,omitempty"`
	Reconnect bool   `json:"reconnect"`
}

// GoodByeReplyPayload acknowledges GOOD_BYE.
type GoodByeReplyPayload struct {
	TargetID string `json:"targetId,omitempty"`
}

// DiscoverReplyPayload lists the APIs an agent can federate.
type DiscoverReplyPayload struct {
	APIs               []API `json:"apis"`
	IsPartialDiscovery bool  `json:"isPartialDiscovery"`
}

// StartIngestPayload asks an agent to send the full description of the
// named APIs (all of them when APIIDs is empty) in INGEST batches.
type StartIngestPayload struct {
	IngestJobID string   `json:"ingestJobId"`
	APIIDs      []string `json:"apiIds,omitempty"`
}

// StartIngestReplyPayload accepts an ingest job and says how many APIs
// its batches will carry.
type StartIngestReplyPayload struct {
	IngestJobID string `json:"ingestJobId"`
	Total       int    `json:"total"`
}

// IngestPayload is one batch of an ingest job, sent by the agent; Done
// marks the last one.
type IngestPayload struct {
	IngestJobID string `json:"ingestJobId"`
	APIs        []API  `json:"apis"`
	Done        bool   `json:"done"`
}

// Subscription types Gravitee names.
const (
	SubscriptionAPIKey = "API_KEY"
	SubscriptionOAuth  = "OAUTH"
	SubscriptionJWT    = "JWT"
)

// Metadata keys of a subscription.
const (
	MetadataPlanID         = "planId"
	MetadataConsumerKey    = "consumerKey"
	MetadataConsumerSecret = "consumerSecret"
)

// Subscription is a Gravitee subscription to a federated API's plan.
type Subscription struct {
	GraviteeSubscriptionID  string            `json:"graviteeSubscriptionId,omitempty"`
	GraviteeApplicationID   string            `json:"graviteeApplicationId,omitempty"`
	GraviteeApplicationName string            `json:"graviteeApplicationName,omitempty"`
	Type                    string            `json:"type,omitempty"`
	Metadata                map[string]string `json:"metadata,omitempty"`
}

// SubscribePayload is SUBSCRIBE's and UNSUBSCRIBE's payload.
type SubscribePayload struct {
	APIID        string       `json:"apiId"`
	Subscription Subscription `json:"subscription"`
}

// SubscriptionResult is what the agent created for a subscription: the
// credential the Gravitee application will call the API with.
type SubscriptionResult struct {
	GraviteeSubscriptionID string            `json:"graviteeSubscriptionId,omitempty"`
	Metadata               map[string]string `json:"metadata,omitempty"`
	APIKey                 string            `json:"apiKey,omitempty"`
}

// SubscribeReplyPayload answers SUBSCRIBE.
type SubscribeReplyPayload struct {
	Subscription SubscriptionResult `json:"subscription"`
}

// API types.
const (
	APITypeProxy   = "PROXY"
	APITypeMessage = "MESSAGE"
)

// Page types.
const (
	PageSwagger  = "SWAGGER"
	PageAsyncAPI = "ASYNCAPI"
	PageMarkdown = "MARKDOWN"
	PageAsciiDoc = "ASCIIDOC"
)

// Plan security types.
const (
	PlanAPIKey = "API_KEY"
	PlanOAuth2 = "OAUTH2"
	PlanJWT    = "JWT"
)

// API is a federated API as Gravitee ingests it.
type API struct {
	UniqueID          string            `json:"uniqueId"`
	ID                string            `json:"id"`
	Name              string            `json:"name"`
	Version           string            `json:"version,omitempty"`
	Description       string            `json:"description,omitempty"`
	ConnectionDetails map[string]string `json:"connectionDetails,omitempty"`
	Type              string            `json:"type,omitempty"`
	Pages             []Page            `json:"pages,omitempty"`
	Plans             []Plan            `json:"plans,omitempty"`
	Metadata          []Metadata        `json:"metadata,omitempty"`
}

// Page is documentation of an API: its OpenAPI document is a SWAGGER page.
type Page struct {
	PageType string `json:"pageType"`
	Content  string `json:"content"`
	Filename string `json:"filename,omitempty"`
}

// Plan is a way to subscribe to an API.
type Plan struct {
	ID               string   `json:"id"`
	Name             string   `json:"name"`
	Description      string   `json:"description,omitempty"`
	PlanSecurityType string   `json:"planSecurityType"`
	Characteristics  []string `json:"characteristics,omitempty"`
}

// Metadata formats.
const (
	FormatString  = "STRING"
	FormatNumeric = "NUMERIC"
	FormatBoolean = "BOOLEAN"
	FormatDate    = "DATE"
	FormatMail    = "MAIL"
	FormatURL     = "URL"
)

// Metadata is a named value shown with a federated API.
type Metadata struct {
	Name   string `json:"name"`
	Value  string `json:"value"`
	Format string `json:"format,omitempty"`
}
