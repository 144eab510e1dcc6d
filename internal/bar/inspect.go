package bar

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-dev/sluice/internal/flow"
)

// Info describes a valid BAR: what `sluice bar inspect` prints and what the
// control plane records about an upload.
type Info struct {
	Name             string     `json:"name"`
	Version          string     `json:"version,omitempty"`
	Description      string     `json:"description,omitempty"`
	Flows            []FlowInfo `json:"flows"`
	Endpoints        []Endpoint `json:"endpoints"`
	Files            []string   `json:"files"`
	Size             int64      `json:"size"`
	UncompressedSize int64      `json:"uncompressedSize"`
}

// FlowInfo is one flow of the project and its trigger.
type FlowInfo struct {
	Name        string  `json:"name"`
	Description string  `json:"description,omitempty"`
	File        string  `json:"file"`
	Trigger     Trigger `json:"trigger"`
	Timeout     string  `json:"timeout,omitempty"`
}

// Trigger is a flow's trigger: Type "http" (Method, Path), "schedule"
// (Cron, TimeZone), "nats" (Subject, Stream), "amqp" (Queue), "mqtt" (Topic), "kafka" (Topics, Group), "file" (Glob) or "call" (no trigger: only
// other flows call it).
type Trigger struct {
	Type     string   `json:"type"`
	Method   string   `json:"method,omitempty"`
	Path     string   `json:"path,omitempty"`
	Cron     string   `json:"cron,omitempty"`
	TimeZone string   `json:"timeZone,omitempty"`
	Subject  string   `json:"subject,omitempty"` // nats
	Stream   string   `json:"stream,omitempty"`  // nats, JetStream
	Queue    string   `json:"queue,omitempty"`   // amqp
	Topic    string   `json:"topic,omitempty"`   // mqtt
	Glob     string   `json:"glob,omitempty"`    // file
	Topics   []string `json:"topics,omitempty"`  // kafka
	Group    string   `json:"group,omitempty"`   // kafka consumer group
}

func (t Trigger) String() string {
	switch t.Type {
	case "http":
		return t.Method + " " + t.Path
	case "amqp":
		return "amqp queue " + t.Queue
	case "mqtt":
		return "mqtt " + t.Topic
	case "file":
		return "file " + t.Glob
	case "kafka":
		return "kafka " + strings.Join(t.Topics, ",") + " (group " + t.Group + ")"
	case "nats":
		if t.Stream != "" {
			return fmt.Sprintf("nats %s (stream %s)", t.Subject, t.Stream)
		}
		return "nats " + t.Subject
	case "schedule":
		if t.TimeZone != "" {
			return fmt.Sprintf("schedule %q (%s)", t.Cron, t.TimeZone)
		}
		return fmt.Sprintf("schedule %q", t.Cron)
	}
	return t.Type
}

// Endpoint is an HTTP route served by a flow; the runtime prefixes it with
// its own base URL.
type Endpoint struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	Flow   string `json:"flow"`
}

// Load loads the archive's project with the flow engine. A BAR is valid
// exactly when this succeeds: every flow parsed, every expression and
// schema compiled, every reference resolved. Load errors keep the engine's
// *flow.LoadError (file, line, column) reachable through errors.As.
//
// cfg is the runtime's configuration; nil checks the project on its own,
// as `bar build` and an upload do, before any configuration is attached.
func (a *Archive) Load(ctx context.Context, cfg *flow.Config) (*flow.Project, error) {
	p, err := flow.Load(ctx, a.FS(), cfg)
	if err != nil {
		return nil, fmt.Errorf("bar: %w: %w", ErrInvalid, err)
	}
	return p, nil
}

// Describe summarises a loaded project of this archive.
func (a *Archive) Describe(p *flow.Project) *Info {
	info := &Info{
		Name:             p.Name,
		Version:          p.Version,
		Description:      p.Description,
		Flows:            []FlowInfo{},
		Endpoints:        []Endpoint{},
		Files:            a.Files(),
		Size:             a.size,
		UncompressedSize: a.total,
	}
	for _, f := range p.Flows {
		fi := FlowInfo{Name: f.Name, Description: f.Description, File: f.File, Trigger: TriggerOf(f)}
		if f.Timeout > 0 {
			fi.Timeout = f.Timeout.String()
		}
		info.Flows = append(info.Flows, fi)
		if f.HTTP != nil {
			info.Endpoints = append(info.Endpoints, Endpoint{Method: f.HTTP.Method, Path: f.HTTP.Path, Flow: f.Name})
		}
	}
	return info
}

// TriggerOf renders a flow's trigger in the shape Info uses.
func TriggerOf(f *flow.Flow) Trigger {
	switch {
	case f.HTTP != nil:
		return Trigger{Type: "http", Method: f.HTTP.Method, Path: f.HTTP.Path}
	case f.Schedule != nil:
		t := Trigger{Type: "schedule", Cron: f.Schedule.Cron}
		if f.Schedule.Location != nil {
			t.TimeZone = f.Schedule.Location.String()
		}
		return t
	case f.NATS != nil:
		return Trigger{Type: "nats", Subject: f.NATS.Subject, Stream: f.NATS.Stream}
	case f.AMQP != nil:
		return Trigger{Type: "amqp", Queue: f.AMQP.Queue}
	case f.MQTT != nil:
		return Trigger{Type: "mqtt", Topic: f.MQTT.Topic}
	case f.Kafka != nil:
		return Trigger{Type: "kafka", Topics: f.Kafka.Topics, Group: f.Kafka.Group}
	case f.Directory != nil:
		return Trigger{Type: "file", Glob: f.Directory.Glob}
	}
	// A flow without a trigger is reachable only through `call` steps.
	return Trigger{Type: "call"}
}

// Inspect reads and validates the BAR of the given size readable through
// r, and describes it. It is what an upload handler calls on the temporary
// file that holds the request body.
func Inspect(ctx context.Context, r io.ReaderAt, size int64, lim *Limits) (*Info, error) {
	a, err := Read(r, size, lim)
	if err != nil {
		return nil, err
	}
	p, err := a.Load(ctx, nil)
	if err != nil {
		return nil, err
	}
	return a.Describe(p), nil
}

// InspectFile is Inspect for a BAR on disk.
func InspectFile(ctx context.Context, name string, lim *Limits) (*Info, error) {
	a, err := Open(name, lim)
	if err != nil {
		return nil, err
	}
	defer a.Close()
	p, err := a.Load(ctx, nil)
	if err != nil {
		return nil, err
	}
	return a.Describe(p), nil
}
