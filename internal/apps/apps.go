// Package apps owns the consumer side of Sluice: catalogs (every instance
// has a "sandbox" one), consumer orgs in a catalog, apps in a consumer
// org, and app credentials on an app — permanent ones and leases that
// expire, with their credential policy, renewal, revocation and the
// sweeper that deletes expired leases. It authenticates app credentials
// (an expired one never authenticates, whether or not the sweeper has run)
// and mints their tokens. Every business rule about these objects lives
// here: the native API, API Connect's wire (package apic) and the
// dashboard are thin layers over this Service. Secrets are issued in the
// iam package's prefixed, checksummed format and only their hashes are
// stored; the clear value leaves the service once, in the create answer.
// It knows nothing about HTTP.
package apps

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// App states.
const (
	StateEnabled  = "enabled"
	StateDisabled = "disabled"
)

// Limits of free-text fields.
const (
	maxTitle   = 128
	maxSummary = 1024
)

// Service manages catalogs, consumer orgs, apps and app credentials.
type Service struct {
	Store store.Store
	IAM   *iam.Service // auditing and token signing
	Now   clock.Func

	mu       sync.Mutex
	watchers []func(Event)
	kick     func(time.Time) // the sweeper's wake-up, set by Sweeper.Run
}

func (s *Service) now() time.Time { return s.Now.Now().UTC() }

// Event types of the change feed.
const (
	EventCredentialCreated = "credential.created"
	EventCredentialRenewed = "credential.renewed"
	EventCredentialDeleted = "credential.deleted" // deleted, revoked, expired, or gone with a parent
	EventAppUpdated        = "app.updated"        // title, state or policy changed
)

// Event is one change to what authenticates as an app, for consumers that
// keep their own view (a runtime's gateway): which client id appeared,
// moved its expiry or went away, and why.
type Event struct {
	Type       string
	Credential store.AppCredential // SecretHash included: the gateway checks secrets with it
	App        store.App           // set for EventAppUpdated
	Reason     string              // "revoked", "expired", "deleted", "cascade"
}

// Watch registers fn to be called, after commit, for every change this
// process makes. fn runs on the caller's goroutine and must not block.
// The feed is per process: replicas sharing PostgreSQL hear only their
// own changes. Nothing that decides whether a credential authenticates
// reads it — AuthenticateClient and AuthenticateToken read the store at
// every use — so it only hastens views kept elsewhere (gateway watches),
// which also poll the store.
func (s *Service) Watch(fn func(Event)) {
	s.mu.Lock()
	s.watchers = append(s.watchers, fn)
	s.mu.Unlock()
}

func (s *Service) emit(ev Event) {
	s.mu.Lock()
	ws := append([]func(Event){}, s.watchers...)
	s.mu.Unlock()
	for _, w := range ws {
		w(ev)
	}
}

func (s *Service) emitDeleted(gone []store.AppCredential, reason string) {
	for _, c := range gone {
		s.emit(Event{Type: EventCredentialDeleted, Credential: c, Reason: reason})
	}
}

// canManage reports whether p may change consumer objects.
func canManage(p iam.Principal) bool { return iam.RoleRank(p.Role) >= iam.RoleRank(iam.RoleDeveloper) }

// canRead reports whether p may read them (every role).
func canRead(p iam.Principal) bool { return iam.RoleRank(p.Role) >= iam.RoleRank(iam.RoleViewer) }

func (s *Service) denied(ctx context.Context, p iam.Principal, action, object string) error {
	return s.IAM.Finish(ctx, p, action, object, iam.Forbiddenf("the %s role may not change catalogs, consumer orgs, apps or their credentials", p.Role))
}

func readable(p iam.Principal) error {
	if !canRead(p) {
		return iam.Forbiddenf("the %s role may not read consumer apps", p.Role)
	}
	return nil
}

// Input is what a caller sets on a catalog, consumer org or app. An empty
// Name is derived from Title (API Connect clients often send only a title).
type Input struct {
	Name    string
	Title   string
	Summary string
}

// AppInput is an app as a caller writes it.
type AppInput struct {
	Input
	State  string // "" keeps the current state (enabled for a new app)
	Policy *CredentialPolicy
}

// CredentialPolicy bounds an app's leases: DefaultTTL when a lease names
// none, MaxTTL both the longest TTL a lease may ask and how far past its
// creation renewals may take it. Zero values mean no default, no cap.
type CredentialPolicy struct {
	DefaultTTL time.Duration
	MaxTTL     time.Duration
}

func (in *Input) check(what string) error {
	if in.Name == "" && in.Title != "" {
		in.Name = NameFromTitle(in.Title)
	}
	if err := resource.ValidateName(what, in.Name); err != nil {
		return iam.Invalidf("%s", err.Error())
	}
	if in.Title == "" {
		in.Title = in.Name
	}
	if len(in.Title) > maxTitle {
		return iam.Invalidf("title is longer than %d characters", maxTitle)
	}
	if len(in.Summary) > maxSummary {
		return iam.Invalidf("summary is longer than %d characters", maxSummary)
	}
	return nil
}

// NameFromTitle derives a name that follows the name rule from a title,
// as API Connect does: lower case, runs of other characters become one
// '-', at most 32 characters.
func NameFromTitle(title string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(title) {
		ok := (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '_' || r == '.'
		switch {
		case ok:
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if len(name) > resource.MaxNameLength {
		name = strings.TrimRight(name[:resource.MaxNameLength], "-")
	}
	if name == "." || name == ".." {
		return ""
	}
	return name
}

func newID() string { return uuid.NewString() }

// Path names an object by the refs (id or name) of it and its parents.
type Path struct {
	Catalog, ConsumerOrg, App string
}

func (p Path) String() string {
	parts := []string{p.Catalog}
	if p.ConsumerOrg != "" {
		parts = append(parts, p.ConsumerOrg)
	}
	if p.App != "" {
		parts = append(parts, p.App)
	}
	return strings.Join(parts, "/")
}

// Resolved is a path with its objects read.
type Resolved struct {
	Catalog     store.Catalog
	ConsumerOrg store.ConsumerOrg
	App         store.App
}

// object names a resolved path in audit records: names, not ids.
func (r Resolved) object(kind string) string {
	switch kind {
	case "catalog":
		return "catalog/" + r.Catalog.Name
	case "consumerOrg":
		return "consumerOrg/" + r.Catalog.Name + "/" + r.ConsumerOrg.Name
	}
	return "app/" + r.Catalog.Name + "/" + r.ConsumerOrg.Name + "/" + r.App.Name
}

// Resolve reads the objects a path names, as deep as the path goes; a
// missing one is a not-found error naming it.
func (s *Service) Resolve(ctx context.Context, p iam.Principal, path Path) (Resolved, error) {
	var r Resolved
	var err error
	if r.Catalog, err = s.Store.GetCatalog(ctx, p.InstanceID, path.Catalog); err != nil {
		return r, iam.StoreErr(err, "catalog "+path.Catalog)
	}
	if path.ConsumerOrg == "" {
		return r, nil
	}
	if r.ConsumerOrg, err = s.Store.GetConsumerOrg(ctx, r.Catalog.ID, path.ConsumerOrg); err != nil {
		return r, iam.StoreErr(err, "consumer org "+path.ConsumerOrg+" in catalog "+r.Catalog.Name)
	}
	if path.App == "" {
		return r, nil
	}
	if r.App, err = s.Store.GetApp(ctx, r.ConsumerOrg.ID, path.App); err != nil {
		return r, iam.StoreErr(err, "app "+path.App+" in consumer org "+r.ConsumerOrg.Name)
	}
	return r, nil
}

// refuseChildren refuses deleting a parent that has children, unless force.
func (s *Service) refuseChildren(ctx context.Context, kind, id, what, children string, force bool) error {
	if force {
		return nil
	}
	n, err := s.Store.CountChildren(ctx, kind, id)
	if err != nil {
		return err
	}
	if n > 0 {
		return iam.Conflictf("%s has %d %s: delete them first, or delete with force to delete them too", what, n, children)
	}
	return nil
}
