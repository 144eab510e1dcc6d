// Package flow owns Sluice's flow language: it parses the flow definitions
// of an integration project (YAML), compiles every expression (jq via gojq)
// and schema once at load, and executes flows step by step against a
// Message. It knows nothing about HTTP servers, processes, BAR archives or
// the control plane: the runtime package feeds it messages and serves its
// answers; the bar package hands it a project as an fs.FS.
package flow

// This file is the contract between the flow engine and its callers (the
// runtime process, the bar builder, `sluice flow test`). Keep these names
// and signatures stable; add to them rather than change them.

import (
	"context"
	"crypto/x509"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/sluice-dev/sluice/internal/secret"
)

// Message is what a flow's steps act on. In jq programs it is visible as
// {body, headers, query, params, vars, config} (config comes from Config.Values).
type Message struct {
	Body    any               // decoded JSON body (nil when empty; string when not JSON)
	Headers map[string]string // request headers, names lower-cased
	Query   map[string]string // query parameters (first value of each)
	// Header and RawQuery are the request's own headers and query string,
	// for a caller (the runtime's HTTP trigger) that leaves Headers and
	// Query nil: the engine makes .headers (names lower-cased, the first
	// value of each) and .query (the first value of each) from them only
	// when a step reads them.
	Header   http.Header
	RawQuery string
	Params   map[string]string // path parameters from the trigger's path template
	// Path and ParamNames are the request and its path template's
	// parameter names, for a caller (the runtime's HTTP trigger) that
	// leaves Params nil: .params is made from Path.PathValue only when a
	// step reads it, and .params.name reads the one value.
	Path       PathValuer
	ParamNames []string
	Vars       map[string]any // variables set by `set` steps
	// Source is where a message-source trigger's message came from
	// (`.source`: kind, subject, stream, sequence, delivered…); nil for
	// HTTP and schedules, and then `.source` is absent.
	Source map[string]any
	// App is the consumer app a runtime's gateway let through (`.app`:
	// id, name, consumerOrg, catalog, plan, api, clientId, auth); nil on
	// flows no plan protects, and then `.app` is absent.
	App map[string]any
}

// PathValuer gives a request's path parameters (*http.Request is one).
type PathValuer interface {
	PathValue(name string) string
}

// Credential is one entry of a setdbparms configuration: resource user password.
type Credential struct {
	User     string
	Password secret.Value
}

// Config is what the runtime's configurations give the flows.
type Config struct {
	Values      map[string]any            // serverconf user variables, visible as .config
	Credentials map[string]Credential     // setdbparms, by resource name
	Policies    map[string]map[string]any // policyproject connection definitions, by policy name
	Files       fs.FS                     // generic configuration files (may be nil)
	RootCAs     *x509.CertPool            // extra trust for outbound TLS (nil: system roots)
	Timeout     time.Duration             // default per-flow timeout (0: engine default)

	// Connectors carries publish and sql steps to their servers (nil:
	// those steps fail at run time). The runtime gives its connection
	// hub; `sluice flow test` answers from fixtures.
	Connectors Connectors

	// Transport carries the http steps' outbound requests (nil: a transport
	// trusting RootCAs). `sluice flow test` injects one answering from fixtures.
	Transport http.RoundTripper
	// Dial opens the connections of that default transport (nil: a plain
	// dialer). The runtime gives one that enforces its egress policy.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives the output of log steps (nil: slog.Default()).
	Logger *slog.Logger
	// Sleep waits between retries of http steps (nil: a real timer that
	// honours ctx). Tests inject one that returns at once.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Project is a loaded, fully checked integration project.
type Project struct {
	Name        string
	Version     string
	Description string
	Flows       []*Flow // sorted by name

	OpenAPI []string // paths of the OpenAPI documents under openapi/
	Static  []string // paths of the files under static/
	Files   fs.FS    // the project's files, as given to Load

	byName map[string]*Flow
}

// HTTPTrigger starts a flow on an HTTP request.
type HTTPTrigger struct {
	Method string // upper-case
	Path   string // template, e.g. /orders/{customer}
}

// ScheduleTrigger starts a flow on a cron schedule.
type ScheduleTrigger struct {
	Cron     string
	Location *time.Location

	sched cron.Schedule
}

// Response is what a flow answers.
type Response struct {
	Status  int
	Headers map[string]string
	Body    any
}

// StepEvent is one step of one message, reported to a Tracer.
type StepEvent struct {
	Flow     string
	Step     string // step kind and index, e.g. "map#2"
	Start    time.Time
	Duration time.Duration
	Input    any // message excerpt before the step (secret values redacted)
	Output   any // message excerpt after the step (secret values redacted)
	Err      error
}

// Tracer receives step events; a nil Tracer costs nothing.
type Tracer interface {
	Step(StepEvent)
}

// Error is the error a flow ends with when a `fail` step runs or a step
// fails; Status is the HTTP status the runtime answers with.
type Error struct {
	Status  int
	Message string
	Details any    // JSON-able detail, e.g. schema violations [{path, message}] (may be nil)
	Step    string // the step that failed, e.g. "validate#0" (empty for fail steps)

	err error // underlying cause, for errors.Is/As; never shown to clients
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the underlying cause (a transport or TLS error of an http
// step), if any. jq errors are not kept: their text may quote message data.
func (e *Error) Unwrap() error { return e.err }

// LoadError names the place of a problem found while loading a project.
type LoadError struct {
	File   string
	Line   int
	Column int
	Msg    string
}

func (e *LoadError) Error() string { return formatLoadError(e) }

// Flow is one compiled flow. At most one trigger (HTTP, Schedule, NATS, AMQP, MQTT, Kafka, File) is set: a
// flow with neither trigger is callable only (by `call` steps of other
// flows of the same project); the runtime neither serves nor schedules it.
type Flow struct {
	Name        string
	Description string
	File        string // path of its definition inside the project
	HTTP        *HTTPTrigger
	Schedule    *ScheduleTrigger
	NATS        *NATSTrigger  // a NATS subject or JetStream consumer
	AMQP        *AMQPTrigger  // a RabbitMQ queue
	MQTT        *MQTTTrigger  // an MQTT topic filter
	Kafka       *KafkaTrigger // Kafka topics read by a consumer group
	Directory   *FileTrigger  // the file trigger: files appearing in a directory
	Timeout     time.Duration // per-flow timeout; Run applies it and the runtime may too

	prog *program // compiled steps (engine-private)
}

// The engine implements (in other files of this package):
//
//	func Load(ctx context.Context, fsys fs.FS, cfg *Config) (*Project, error)
//	    reads the manifest and every flow of the project in fsys, compiles all
//	    of it and resolves every reference; all-or-nothing. Errors are
//	    *LoadError (or a joined list of them) naming file, line and column.
//	func (f *Flow) Run(ctx context.Context, msg *Message, tr Tracer) (*Response, error)
//	    executes the flow; honours ctx cancellation between and inside steps.
//
// Additions: Validate (Load without a Config), Project.Flow (lookup by
// name), HTTPTrigger.Pattern, ScheduleTrigger.Next, and RunTests (the
// engine behind `sluice flow test`).
