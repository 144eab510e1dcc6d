package orchestrator

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// Ref kinds a runtime's spec names.
const (
	RefConfiguration = "configuration"
	RefBARFile       = "barFile"
)

// Service manages the integration runtimes of an instance.
type Service struct {
	Store store.Store
	IAM   *iam.Service // for auditing
	Now   clock.Func
	// Kick, when set, asks the reconciler to act on a change now rather
	// than at its next pass.
	Kick func()
	// MaxRuntimes and MaxReplicas are the quotas of every instance: how
	// many runtimes it may have, and how many replicas they may ask for
	// together (0: no quota).
	MaxRuntimes int
	MaxReplicas int
}

func (s *Service) now() time.Time { return s.Now.Now().UTC() }

func (s *Service) kick() {
	if s.Kick != nil {
		s.Kick()
	}
}

// Runtime is a runtime's record with its spec and status decoded.
type Runtime struct {
	store.Runtime
	Spec   Spec
	Status Status
}

// Decode reads a stored runtime.
func Decode(r store.Runtime) (Runtime, error) {
	out := Runtime{Runtime: r, Status: PendingStatus()}
	if err := json.Unmarshal([]byte(r.Spec), &out.Spec); err != nil {
		return out, fmt.Errorf("orchestrator: stored spec of %s does not parse: %w", r.Name, err)
	}
	if r.Status != "" && r.Status != "{}" {
		if err := json.Unmarshal([]byte(r.Status), &out.Status); err != nil {
			return out, fmt.Errorf("orchestrator: stored status of %s does not parse: %w", r.Name, err)
		}
	}
	return out, nil
}

// checkQuotas refuses a spec that would take the instance over
// MaxRuntimes or MaxReplicas, counting every runtime but the one replaced.
// Put runs it and the write in one store.Locked transaction, so
// concurrent PUTs cannot pass it together.
func (s *Service) checkQuotas(ctx context.Context, instanceID, name string, spec Spec) error {
	if s.MaxRuntimes <= 0 && s.MaxReplicas <= 0 {
		return nil
	}
	list, err := s.Store.ListRuntimes(ctx, instanceID, store.Page{})
	if err != nil {
		return err
	}
	others, replicas := 0, 0
	for _, rec := range list {
		if rec.Name == name {
			continue
		}
		others++
		var sp Spec
		if json.Unmarshal([]byte(rec.Spec), &sp) == nil && sp.Replicas != nil {
			replicas += *sp.Replicas
		}
	}
	if s.MaxRuntimes > 0 && others+1 > s.MaxRuntimes {
		return iam.Forbiddenf("quota exceeded: the instance has %d integration runtimes, its quota is %d (--quota-runtimes)", others, s.MaxRuntimes)
	}
	want := 0
	if spec.Replicas != nil {
		want = *spec.Replicas
	}
	if s.MaxReplicas > 0 && replicas+want > s.MaxReplicas {
		return iam.Forbiddenf("quota exceeded: %d replicas here and %d in the instance's other runtimes are more than its quota of %d replicas (--quota-replicas)", want, replicas, s.MaxReplicas)
	}
	return nil
}

// Put creates or replaces a runtime's spec; createOnly refuses an
// existing name. A changed spec gets a new generation, which the
// reconciler rolls out.
func (s *Service) Put(ctx context.Context, p iam.Principal, name string, spec Spec, createOnly bool) (Runtime, bool, error) {
	if err := resource.ValidateName("integration runtime", name); err != nil {
		return Runtime{}, false, iam.Invalidf("%s", err.Error())
	}
	if err := spec.Normalize(); err != nil {
		return Runtime{}, false, iam.Invalidf("%s", err.Error())
	}
	if createOnly {
		if _, err := s.Store.GetRuntime(ctx, p.InstanceID, name); err == nil {
			return Runtime{}, false, iam.Conflictf("integration runtime %s already exists", name)
		}
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return Runtime{}, false, err
	}
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return Runtime{}, false, err
	}
	h := sha256.Sum256(tok)
	uidb := make([]byte, 8)
	_, _ = rand.Read(uidb)
	now := s.now()
	status, _ := json.Marshal(PendingStatus())
	rec := store.Runtime{InstanceID: p.InstanceID, Name: name, UID: "ir-" + hex.EncodeToString(uidb), Spec: string(specJSON),
		Status: string(status), FetchTokenHash: hex.EncodeToString(h[:]), CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()}
	bars, configs := spec.Refs()
	var refs []store.Ref
	for _, b := range bars {
		refs = append(refs, store.Ref{Kind: RefBARFile, Name: b})
	}
	for _, c := range configs {
		refs = append(refs, store.Ref{Kind: RefConfiguration, Name: c})
	}
	var stored store.Runtime
	var created bool
	var quotaErr error
	err = s.Store.Locked(ctx, p.InstanceID, func(ctx context.Context) error {
		if quotaErr = s.checkQuotas(ctx, p.InstanceID, name, spec); quotaErr != nil {
			return quotaErr
		}
		var err error
		stored, created, err = s.Store.PutRuntime(ctx, rec, refs)
		return err
	})
	if quotaErr != nil {
		action := "integrationRuntime.update"
		if _, gerr := s.Store.GetRuntime(ctx, p.InstanceID, name); gerr != nil {
			action = "integrationRuntime.create"
		}
		return Runtime{}, false, s.IAM.Finish(ctx, p, action, "integrationRuntime/"+name, quotaErr)
	}
	action := "integrationRuntime.update"
	if created {
		action = "integrationRuntime.create"
	}
	if err := s.IAM.Finish(ctx, p, action, "integrationRuntime/"+name, iam.StoreErr(err, "integration runtime "+name)); err != nil {
		return Runtime{}, false, err
	}
	s.kick()
	out, err := Decode(stored)
	return out, created, err
}

// Get reads one runtime.
func (s *Service) Get(ctx context.Context, p iam.Principal, name string) (Runtime, error) {
	r, err := s.Store.GetRuntime(ctx, p.InstanceID, name)
	if err != nil {
		return Runtime{}, iam.StoreErr(err, "integration runtime "+name)
	}
	return Decode(r)
}

// List lists a page of the instance's runtimes, by name.
func (s *Service) List(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[Runtime], error) {
	return iam.PageMap(req, runtimeScope(p), s.listPage(ctx, p), Decode)
}

// ListStored is List with the runtimes as stored, not decoded: for a
// caller that remembers what it made of each stored row (the API's
// answers). Its pages and continue tokens are List's.
func (s *Service) ListStored(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[store.Runtime], error) {
	return iam.PageOf(req, runtimeScope(p), s.listPage(ctx, p))
}

func runtimeScope(p iam.Principal) []string { return []string{"integrationRuntimes", p.InstanceID} }

func (s *Service) listPage(ctx context.Context, p iam.Principal) func(store.Page) ([]store.Runtime, error) {
	return func(pg store.Page) ([]store.Runtime, error) { return s.Store.ListRuntimes(ctx, p.InstanceID, pg) }
}

// Delete removes a runtime; the reconciler stops it and removes what was
// materialised for it.
func (s *Service) Delete(ctx context.Context, p iam.Principal, name string) error {
	err := iam.StoreErr(s.Store.DeleteRuntime(ctx, p.InstanceID, name), "integration runtime "+name)
	if err := s.IAM.Finish(ctx, p, "integrationRuntime.delete", "integrationRuntime/"+name, err); err != nil {
		return err
	}
	s.kick()
	return nil
}

// InUse refuses to delete a configuration or BAR file that runtimes name,
// unless force is set; the error names the runtimes.
func (s *Service) InUse(ctx context.Context, instanceID, kind, name string, force bool) error {
	if force {
		return nil
	}
	users, err := s.Store.RuntimesUsing(ctx, instanceID, store.Ref{Kind: kind, Name: name})
	if err != nil || len(users) == 0 {
		return err
	}
	what := "configuration"
	field := "spec.configurations"
	if kind == RefBARFile {
		what, field = "BAR file", "spec.barURL"
	}
	return iam.Conflictf("%s %s is used by integration runtime(s) %s: remove it from their %s first, or delete with ?force=true",
		what, name, strings.Join(users, ", "), field)
}
