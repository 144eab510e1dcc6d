// Package apis owns published APIs, their plans and the subscriptions of
// consumer apps to plans. An API is a set of HTTP flows — of one BAR
// wherever it runs, or of one runtime — with a name, version, base path
// and an OpenAPI document (the BAR's own under openapi/, or one generated
// from the flows' triggers and validate schemas), checked when the API is
// written. A plan says how callers of its APIs authenticate (client-id,
// oauth or none), whether subscriptions need approval and how often each
// app may call. Every rule about these objects lives here; the native API,
// API Connect's wire and the federation agent are thin layers over this
// Service. GatewayState compiles what a runtime's gateway enforces.
// It knows nothing about HTTP.
package apis

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/flow"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// Service manages published APIs, plans and subscriptions.
type Service struct {
	Store store.Store
	IAM   *iam.Service // auditing
	Now   clock.Func
	// Apps resolves the app a subscription names ("catalog/consumer-org/app",
	// ids or names) to the app's id; nil refuses subscriptions.
	Apps AppResolver
	// Credentials gives the gateway the subscribed apps' credentials;
	// nil: none (every credential is refused).
	Credentials Credentials

	mu       sync.Mutex
	watchers map[int]chan struct{}
	nextW    int
	changes  atomic.Uint64 // Notify calls: a compiled gateway state older than this is stale
	gateways map[string]*gatewayEntry
}

// AppResolver finds consumer apps for subscriptions (package apps).
type AppResolver interface {
	ResolveApp(ctx context.Context, p iam.Principal, path string) (App, error)
}

// App is what the gateway needs of a consumer app.
type App struct {
	ID, Name                       string
	ConsumerOrgID, ConsumerOrgName string
	CatalogID, CatalogName         string
	Enabled                        bool
}

func (s *Service) now() time.Time { return s.Now.Now().UTC() }

// Changed returns a channel that receives (without blocking the writer)
// after every change this process makes to published objects, and a
// function that stops it. Replicas see their own changes only; watchers
// also poll the store.
func (s *Service) Changed() (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.watchers == nil {
		s.watchers = map[int]chan struct{}{}
	}
	id := s.nextW
	s.nextW++
	ch := make(chan struct{}, 1)
	s.watchers[id] = ch
	return ch, func() { s.mu.Lock(); delete(s.watchers, id); s.mu.Unlock() }
}

// Notify tells watchers that something they compile from changed (an
// app, a credential: package apps calls it too).
func (s *Service) Notify() {
	s.changes.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// APISpec is a published API as a caller writes it.
type APISpec struct {
	Title       string `json:"title,omitempty"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	BasePath    string `json:"basePath"`
	// BARFile publishes flows of this BAR file wherever it runs; Runtime
	// those of one runtime (of BARFile only, when both are set).
	BARFile string `json:"barFile,omitempty"`
	Runtime string `json:"runtime,omitempty"`
	// Flows names the HTTP flows of the API; empty: every HTTP flow.
	Flows []string `json:"flows,omitempty"`
	// Document names the OpenAPI file under openapi/ when the BAR has
	// several; empty takes the first, or generates one when there is none.
	Document string `json:"document,omitempty"`
}

// APIStatus is what Sluice found when the API was written.
type APIStatus struct {
	Flows []FlowRef `json:"flows"`
	// DocumentSource is "generated" or the BAR's file the document came from.
	DocumentSource string `json:"documentSource"`
	OpenAPIVersion string `json:"openapiVersion"`
}

// FlowRef is one flow of an API.
type FlowRef struct {
	BARFile string `json:"barFile"`
	Project string `json:"project"`
	Name    string `json:"name"`
	Method  string `json:"method"`
	Path    string `json:"path"`
}

// API is a stored API with its spec and status decoded.
type API struct {
	store.PublishedObject
	Spec   APISpec
	Status APIStatus
}

const (
	maxTitle       = 128
	maxDescription = 4096
	maxVersion     = 64
)

func newID() string { return uuid.NewString() }

func decodeAPI(o store.PublishedObject) (API, error) {
	a := API{PublishedObject: o}
	if err := json.Unmarshal([]byte(o.Spec), &a.Spec); err != nil {
		return a, fmt.Errorf("apis: stored spec of API %s: %w", o.Name, err)
	}
	if err := json.Unmarshal([]byte(o.Status), &a.Status); err != nil {
		return a, fmt.Errorf("apis: stored status of API %s: %w", o.Name, err)
	}
	return a, nil
}

// PutAPI creates or replaces an API (createOnly refuses an existing
// name). Its flows and OpenAPI document are resolved and checked first;
// nothing is written when any of it is wrong.
func (s *Service) PutAPI(ctx context.Context, p iam.Principal, name string, spec APISpec, createOnly bool) (API, bool, error) {
	object := "api/" + name
	if err := resource.ValidateName("API", name); err != nil {
		return API{}, false, iam.Invalidf("%s", err.Error())
	}
	if err := spec.check(); err != nil {
		return API{}, false, err
	}
	if createOnly {
		if _, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindAPI, name); err == nil {
			return API{}, false, iam.Conflictf("API %s exists already", name)
		}
	}
	status, doc, err := s.resolve(ctx, p.InstanceID, spec)
	if err != nil {
		return API{}, false, err
	}
	specJSON, _ := json.Marshal(spec)
	statusJSON, _ := json.Marshal(status)
	now := s.now()
	o := store.PublishedObject{InstanceID: p.InstanceID, Kind: store.KindAPI, Name: name, ID: newID(), Spec: string(specJSON),
		Status: string(statusJSON), Document: doc, CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()}
	stored, created, err := s.Store.PutPublished(ctx, o)
	err = iam.StoreErr(err, "API "+name)
	action := "api.update"
	if created {
		action = "api.create"
	}
	if err := s.IAM.Finish(ctx, p, action, object, err); err != nil {
		return API{}, false, err
	}
	s.Notify()
	a, err := decodeAPI(stored)
	return a, created, err
}

func (spec *APISpec) check() error {
	switch {
	case spec.Version == "":
		return iam.Invalidf("spec.version is missing: give the API's version, such as 1.0.0")
	case len(spec.Version) > maxVersion:
		return iam.Invalidf("spec.version is longer than %d characters", maxVersion)
	case len(spec.Title) > maxTitle:
		return iam.Invalidf("spec.title is longer than %d characters", maxTitle)
	case len(spec.Description) > maxDescription:
		return iam.Invalidf("spec.description is longer than %d characters", maxDescription)
	case spec.BARFile == "" && spec.Runtime == "":
		return iam.Invalidf("spec.barFile or spec.runtime is missing: name the BAR file or the runtime whose flows the API serves")
	}
	if spec.BasePath == "" {
		spec.BasePath = "/"
	}
	if !strings.HasPrefix(spec.BasePath, "/") || strings.ContainsAny(spec.BasePath, "{}?# ") || len(spec.BasePath) > 256 {
		return iam.Invalidf("spec.basePath %q is not a path: it starts with / and has no {, }, ?, # or spaces", spec.BasePath)
	}
	if len(spec.BasePath) > 1 {
		spec.BasePath = strings.TrimRight(spec.BasePath, "/")
	}
	return nil
}

// loadedBAR is one BAR file's project, loaded to describe it.
type loadedBAR struct {
	name    string
	project *flow.Project
}

// bars loads the BAR files an API spec names: its BAR file, or every
// Sluice BAR file of its runtime.
func (s *Service) bars(ctx context.Context, instanceID string, spec APISpec) ([]loadedBAR, error) {
	names := []string{spec.BARFile}
	if spec.Runtime != "" {
		rt, err := s.Store.GetRuntime(ctx, instanceID, spec.Runtime)
		if errors.Is(err, store.ErrNotFound) {
			return nil, iam.Invalidf("spec.runtime names integration runtime %s, which does not exist", spec.Runtime)
		}
		if err != nil {
			return nil, err
		}
		var rs orchestrator.Spec
		if err := json.Unmarshal([]byte(rt.Spec), &rs); err != nil {
			return nil, fmt.Errorf("apis: stored spec of runtime %s: %w", rt.Name, err)
		}
		var of []string
		for _, u := range rs.BarURL {
			if ref, err := orchestrator.ParseBARURL(u); err == nil && ref.Name != "" {
				of = append(of, ref.Name)
			}
		}
		if spec.BARFile == "" {
			names = of
		} else if !contains(of, spec.BARFile) {
			return nil, iam.Invalidf("runtime %s does not run BAR file %s", spec.Runtime, spec.BARFile)
		}
		if len(names) == 0 {
			return nil, iam.Invalidf("runtime %s runs no BAR file of this instance: nothing to publish", spec.Runtime)
		}
	}
	var out []loadedBAR
	for _, n := range names {
		f, err := s.Store.GetBARFile(ctx, instanceID, n)
		if errors.Is(err, store.ErrNotFound) {
			return nil, iam.Invalidf("the API names BAR file %s, which does not exist", n)
		}
		if err != nil {
			return nil, err
		}
		rc, err := s.Store.OpenBlob(ctx, f.SHA256)
		if err != nil {
			return nil, iam.StoreErr(err, "BAR file "+n)
		}
		data, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("apis: read BAR file %s: %w", n, err)
		}
		a, err := bar.Read(bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			return nil, fmt.Errorf("apis: BAR file %s: %w", n, err)
		}
		p, err := a.Load(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("apis: BAR file %s: %w", n, err)
		}
		out = append(out, loadedBAR{name: n, project: p})
	}
	return out, nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// resolve finds the API's flows and its OpenAPI document.
func (s *Service) resolve(ctx context.Context, instanceID string, spec APISpec) (APIStatus, []byte, error) {
	bars, err := s.bars(ctx, instanceID, spec)
	if err != nil {
		return APIStatus{}, nil, err
	}
	var st APIStatus
	var flows []*flow.Flow
	want := map[string]bool{}
	for _, f := range spec.Flows {
		want[f] = true
	}
	for _, b := range bars {
		for _, f := range b.project.Flows {
			if f.HTTP == nil || (len(want) > 0 && !want[f.Name]) {
				continue
			}
			delete(want, f.Name)
			if spec.BasePath != "/" && f.HTTP.Path != spec.BasePath && !strings.HasPrefix(f.HTTP.Path, spec.BasePath+"/") {
				return st, nil, iam.Invalidf("flow %s serves %s, which is not under spec.basePath %s", f.Name, f.HTTP.Path, spec.BasePath)
			}
			st.Flows = append(st.Flows, FlowRef{BARFile: b.name, Project: b.project.Name, Name: f.Name, Method: f.HTTP.Method, Path: f.HTTP.Path})
			flows = append(flows, f)
		}
	}
	if len(want) > 0 {
		var missing []string
		for f := range want {
			missing = append(missing, f)
		}
		sort.Strings(missing)
		return st, nil, iam.Invalidf("spec.flows names %s, which %s not an HTTP flow of the API's BAR files", strings.Join(missing, ", "), plural(len(missing), "is", "are"))
	}
	if len(st.Flows) == 0 {
		return st, nil, iam.Invalidf("the API's BAR files have no HTTP flow to publish")
	}
	doc, source, err := document(spec, bars, flows)
	if err != nil {
		return st, nil, err
	}
	st.DocumentSource = source
	var head struct {
		OpenAPI string `json:"openapi"`
	}
	_ = json.Unmarshal(doc, &head)
	st.OpenAPIVersion = head.OpenAPI
	return st, doc, nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// GetAPI reads an API by name or id.
func (s *Service) GetAPI(ctx context.Context, p iam.Principal, ref string) (API, error) {
	o, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindAPI, ref)
	if err != nil {
		return API{}, iam.StoreErr(err, "API "+ref)
	}
	return decodeAPI(o)
}

// pagePublished reads a page of the instance's published objects of a
// kind, each decoded.
func pagePublished[T any](ctx context.Context, s *Service, p iam.Principal, req iam.ListRequest, kind string, decode func(store.PublishedObject) (T, error)) (iam.ListPage[T], error) {
	return iam.PageMap(req, []string{kind, p.InstanceID}, func(pg store.Page) ([]store.PublishedObject, error) {
		return s.Store.ListPublished(ctx, p.InstanceID, kind, pg)
	}, decode)
}

// ListAPIs lists a page of the instance's APIs, by name.
func (s *Service) ListAPIs(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[API], error) {
	return pagePublished(ctx, s, p, req, store.KindAPI, decodeAPI)
}

// CountAPIs counts the instance's APIs.
func (s *Service) CountAPIs(ctx context.Context, p iam.Principal) (int, error) {
	return s.Store.CountPublished(ctx, p.InstanceID, store.KindAPI)
}

func (s *Service) listAPIs(ctx context.Context, instanceID string) ([]API, error) {
	os, err := s.Store.ListPublished(ctx, instanceID, store.KindAPI, store.Page{})
	if err != nil {
		return nil, err
	}
	out := make([]API, 0, len(os))
	for _, o := range os {
		a, err := decodeAPI(o)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

// Document returns an API's OpenAPI document (JSON).
func (s *Service) Document(ctx context.Context, p iam.Principal, ref string) (API, []byte, error) {
	o, err := s.Store.GetPublished(ctx, p.InstanceID, store.KindAPI, ref)
	if err != nil {
		return API{}, nil, iam.StoreErr(err, "API "+ref)
	}
	a, err := decodeAPI(o)
	return a, o.Document, err
}

// DeleteAPI removes an API; one that plans name is refused.
func (s *Service) DeleteAPI(ctx context.Context, p iam.Principal, name string) error {
	a, err := s.GetAPI(ctx, p, name)
	if err != nil {
		return err
	}
	plans, err := s.listPlans(ctx, p.InstanceID)
	if err != nil {
		return err
	}
	var users []string
	for _, pl := range plans {
		if contains(pl.Spec.APIs, a.Name) {
			users = append(users, pl.Name)
		}
	}
	if len(users) > 0 {
		return s.IAM.Finish(ctx, p, "api.delete", "api/"+a.Name,
			iam.Conflictf("API %s is in plan %s: remove it from the plan first", a.Name, strings.Join(users, ", ")))
	}
	err = iam.StoreErr(s.Store.DeletePublished(ctx, p.InstanceID, store.KindAPI, a.Name), "API "+a.Name)
	if err = s.IAM.Finish(ctx, p, "api.delete", "api/"+a.Name, err); err == nil {
		s.Notify()
	}
	return err
}

// BARInUse refuses deleting BAR file name while a published API serves
// its flows: the API would name flows that no longer exist, and its plans
// would protect nothing. Unlike a runtime's use, force does not override
// it; the API is changed or deleted first.
func (s *Service) BARInUse(ctx context.Context, instanceID, name string) error {
	all, err := s.listAPIs(ctx, instanceID)
	if err != nil {
		return err
	}
	var users []string
	for _, a := range all {
		uses := a.Spec.BARFile == name
		for _, f := range a.Status.Flows {
			uses = uses || f.BARFile == name
		}
		if uses {
			users = append(users, a.Name)
		}
	}
	if len(users) == 0 {
		return nil
	}
	return iam.Conflictf("BAR file %s is used by published API(s) %s: delete the API(s) or publish them from another BAR file first (force does not override this)",
		name, strings.Join(users, ", "))
}
