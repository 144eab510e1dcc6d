// Package flowapis is the federation agent's provider until Sluice has
// published APIs (issue 13, items 1–2): it presents each integration
// runtime that serves HTTP flows as one API — its flows' routes from the
// stored BAR metadata, its base URL from the runtime's status, and the
// OpenAPI documents its BARs ship under openapi/ (or, when they ship none,
// a minimal OpenAPI 3 document built from the routes).
//
// It reads Sluice through a Source: the control plane's services when the
// agent runs inside `sluice serve`, the public API when it runs as
// `sluice federation-agent`. It creates nothing: without published APIs
// there are no plans to subscribe to, and SUBSCRIBE and UNSUBSCRIBE are
// refused with federation.ErrUnavailable saying so.
package flowapis

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/federation"
)

// Runtime is what the provider needs of an integration runtime.
type Runtime struct {
	Name    string
	Version string   // spec.version
	Phase   string   // status.phase
	BARs    []string // names of the instance's BAR files it runs (external BAR URLs are not readable and are left out)
	// EndpointURLs are the URLs of its HTTP endpoints, as its status
	// gives them; empty while it is not running.
	EndpointURLs []string
}

// BAR is what the provider needs of a stored BAR file.
type BAR struct {
	Name        string
	SHA256      string
	Project     string
	Version     string
	Description string
	Endpoints   []bar.Endpoint
}

// Source is where the provider reads Sluice from.
type Source interface {
	Runtimes(ctx context.Context) ([]Runtime, error)
	BAR(ctx context.Context, name string) (BAR, error)
	// OpenBAR streams a BAR file's bytes.
	OpenBAR(ctx context.Context, name string) (io.ReadCloser, error)
	// Health is nil when Sluice answers.
	Health(ctx context.Context) error
}

// MaxDocumentSize bounds one OpenAPI document read from a BAR.
const MaxDocumentSize = 1 << 20

// maxCachedArchives bounds the BAR contents whose facts are kept.
const maxCachedArchives = 256

// Provider federates runtimes' HTTP flows. It implements
// federation.Provider.
type Provider struct {
	Source Source
	// TempDir is where BAR files are spooled while their openapi/
	// documents are read; "" for the system's.
	TempDir string

	mu       sync.Mutex
	archives map[string]archiveFacts // by BAR sha256: contents never change
}

var _ federation.Provider = (*Provider)(nil)

// APIs lists one API per runtime that serves at least one HTTP route.
func (p *Provider) APIs(ctx context.Context) ([]federation.API, error) {
	rts, err := p.Source.Runtimes(ctx)
	if err != nil {
		return nil, fmt.Errorf("unable to list the integration runtimes: %w", err)
	}
	var out []federation.API
	for _, rt := range rts {
		api, ok, err := p.api(ctx, rt)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, api)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

func (p *Provider) api(ctx context.Context, rt Runtime) (federation.API, bool, error) {
	var (
		bars      []BAR
		endpoints []bar.Endpoint
		docs      []federation.Document
	)
	for _, name := range rt.BARs {
		b, err := p.Source.BAR(ctx, name)
		if err != nil {
			return federation.API{}, false, fmt.Errorf("unable to read BAR file %s of runtime %s: %w", name, rt.Name, err)
		}
		facts, err := p.archive(ctx, b)
		if err != nil {
			return federation.API{}, false, fmt.Errorf("unable to read BAR file %s of runtime %s: %w", name, rt.Name, err)
		}
		if b.Description == "" {
			b.Description = facts.description
		}
		bars = append(bars, b)
		endpoints = append(endpoints, b.Endpoints...)
		docs = append(docs, facts.docs...)
	}
	if len(endpoints) == 0 {
		return federation.API{}, false, nil
	}
	base := baseURL(rt.EndpointURLs)
	version := rt.Version
	var descs, names []string
	for _, b := range bars {
		names = append(names, b.Name)
		if version == "" {
			version = b.Version
		}
		if b.Description != "" {
			descs = append(descs, b.Description)
		}
	}
	if version == "" {
		version = "1.0.0"
	}
	description := strings.Join(descs, "\n\n")
	if len(docs) == 0 {
		generated, err := generate(rt.Name, version, description, base, endpoints)
		if err != nil {
			return federation.API{}, false, err
		}
		docs = []federation.Document{{Kind: federation.DocOpenAPI, Filename: rt.Name + ".openapi.json", Content: generated}}
	}
	api := federation.API{ID: rt.Name, Name: rt.Name, Version: version, Description: description, URL: base, Documents: docs,
		Labels: []federation.Label{{Name: "sluice.runtime", Value: rt.Name}, {Name: "sluice.phase", Value: rt.Phase},
			{Name: "sluice.barFiles", Value: strings.Join(names, ", ")}}}
	if base != "" {
		api.Labels = append(api.Labels, federation.Label{Name: "sluice.endpoint", Value: base, URL: true})
	}
	return api, true, nil
}

// archive reads what the provider needs of a BAR's bytes (its OpenAPI
// documents, its description), once per BAR content.
func (p *Provider) archive(ctx context.Context, b BAR) (archiveFacts, error) {
	p.mu.Lock()
	facts, ok := p.archives[b.SHA256]
	p.mu.Unlock()
	if ok {
		return facts, nil
	}
	rc, err := p.Source.OpenBAR(ctx, b.Name)
	if err != nil {
		return facts, err
	}
	defer rc.Close()
	facts, err = readArchive(ctx, rc, p.TempDir, b.Name)
	if err != nil {
		return facts, err
	}
	p.mu.Lock()
	if p.archives == nil || len(p.archives) >= maxCachedArchives {
		// Old BAR contents accumulate as projects are redeployed;
		// starting over costs one read of each BAR still in use.
		p.archives = map[string]archiveFacts{}
	}
	p.archives[b.SHA256] = facts
	p.mu.Unlock()
	return facts, nil
}

// baseURL is the scheme and host the runtime's endpoints share, "" when
// it lists none.
func baseURL(endpoints []string) string {
	for _, e := range endpoints {
		u, err := url.Parse(e)
		if err == nil && u.Scheme != "" && u.Host != "" {
			return u.Scheme + "://" + u.Host
		}
	}
	return ""
}

// generate builds a minimal OpenAPI 3.0 document from a runtime's HTTP
// routes: each path with its parameters and methods. It says only what
// the routes say; request and response schemas come with published APIs
// (issue 13, item 1).
func generate(title, version, description, base string, endpoints []bar.Endpoint) ([]byte, error) {
	type op struct {
		OperationID string           `json:"operationId"`
		Summary     string           `json:"summary"`
		Parameters  []map[string]any `json:"parameters,omitempty"`
		Responses   map[string]any   `json:"responses"`
	}
	paths := map[string]map[string]op{}
	for _, e := range endpoints {
		p, params := openAPIPath(e.Path)
		if paths[p] == nil {
			paths[p] = map[string]op{}
		}
		var ps []map[string]any
		for _, name := range params {
			ps = append(ps, map[string]any{"name": name, "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
		}
		paths[p][strings.ToLower(e.Method)] = op{OperationID: e.Flow, Summary: "flow " + e.Flow, Parameters: ps,
			Responses: map[string]any{"default": map[string]string{"description": "the answer of flow " + e.Flow}}}
	}
	doc := map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]string{"title": title, "version": version, "description": description},
		"paths":   paths,
	}
	if base != "" {
		doc["servers"] = []map[string]string{{"url": base}}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("unable to encode the OpenAPI document of %s: %w", title, err)
	}
	return buf.Bytes(), nil
}

// openAPIPath turns a flow's path template into OpenAPI's: {name} stays,
// a last {name...} (the rest of the path) becomes {name}, and the
// parameters are listed in order.
func openAPIPath(template string) (string, []string) {
	segs := strings.Split(template, "/")
	var params []string
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := strings.TrimSuffix(strings.Trim(s, "{}"), "...")
			segs[i] = "{" + name + "}"
			params = append(params, name)
		}
	}
	p := strings.Join(segs, "/")
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p, params
}

// Subscribe is refused: subscriptions need published APIs with plans.
func (p *Provider) Subscribe(context.Context, federation.Subscription) (federation.Credential, error) {
	return federation.Credential{}, errNoPlans
}

// Unsubscribe is refused for the same reason.
func (p *Provider) Unsubscribe(context.Context, federation.Subscription) error { return errNoPlans }

var errNoPlans = fmt.Errorf("subscriptions are %w: this Sluice federates its runtimes' flows without plans (published APIs with plans are not in this build)", federation.ErrUnavailable)

// Health is the source's.
func (p *Provider) Health(ctx context.Context) error { return p.Source.Health(ctx) }
