package apps

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

func (s *Service) entity(p iam.Principal, in Input) store.Entity {
	now := s.now()
	return store.Entity{ID: newID(), InstanceID: p.InstanceID, Name: in.Name, Title: in.Title, Summary: in.Summary,
		CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()}
}

// ---- catalogs ----

// CreateCatalog adds a catalog to the caller's instance.
func (s *Service) CreateCatalog(ctx context.Context, p iam.Principal, in Input) (store.Catalog, error) {
	if err := in.check("catalog"); err != nil {
		return store.Catalog{}, err
	}
	object := "catalog/" + in.Name
	if !canManage(p) {
		return store.Catalog{}, s.denied(ctx, p, "catalog.create", object)
	}
	c := store.Catalog{Entity: s.entity(p, in)}
	return c, s.IAM.Audited(ctx, p, "catalog.create", object, func(ctx context.Context) error {
		return iam.StoreErr(s.Store.CreateCatalog(ctx, c), "catalog "+in.Name)
	})
}

// ListCatalogs lists a page of the caller's instance's catalogs, by name.
func (s *Service) ListCatalogs(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[store.Catalog], error) {
	if err := readable(p); err != nil {
		return iam.ListPage[store.Catalog]{}, err
	}
	return iam.PageOf(req, []string{"catalogs", p.InstanceID}, func(pg store.Page) ([]store.Catalog, error) {
		return s.Store.ListCatalogs(ctx, p.InstanceID, pg)
	})
}

// GetCatalog reads a catalog by id or name.
func (s *Service) GetCatalog(ctx context.Context, p iam.Principal, ref string) (store.Catalog, error) {
	if err := readable(p); err != nil {
		return store.Catalog{}, err
	}
	r, err := s.Resolve(ctx, p, Path{Catalog: ref})
	return r.Catalog, err
}

// UpdateCatalog changes a catalog's title and summary; its name is fixed.
func (s *Service) UpdateCatalog(ctx context.Context, p iam.Principal, ref string, in Input) (store.Catalog, error) {
	r, err := s.Resolve(ctx, p, Path{Catalog: ref})
	if err != nil {
		return store.Catalog{}, err
	}
	c := r.Catalog
	if err := checkRename(&in, c.Name, "catalog"); err != nil {
		return c, err
	}
	if !canManage(p) {
		return c, s.denied(ctx, p, "catalog.update", r.object("catalog"))
	}
	c.Title, c.Summary, c.UpdatedAt, c.UpdatedBy = in.Title, in.Summary, s.now(), p.Actor()
	return c, s.IAM.Audited(ctx, p, "catalog.update", r.object("catalog"), func(ctx context.Context) error {
		return iam.StoreErr(s.Store.UpdateCatalog(ctx, c), "catalog "+c.Name)
	})
}

// DeleteCatalog deletes a catalog; one with consumer orgs is refused
// unless force, which deletes them, their apps and credentials too.
func (s *Service) DeleteCatalog(ctx context.Context, p iam.Principal, ref string, force bool) error {
	r, err := s.Resolve(ctx, p, Path{Catalog: ref})
	if err != nil {
		return err
	}
	object := r.object("catalog")
	if !canManage(p) {
		return s.denied(ctx, p, "catalog.delete", object)
	}
	if err := s.refuseChildren(ctx, "catalog", r.Catalog.ID, "catalog "+r.Catalog.Name, "consumer orgs", force); err != nil {
		return s.IAM.Finish(ctx, p, "catalog.delete", object, err)
	}
	var gone []store.AppCredential
	if err := s.IAM.Audited(ctx, p, "catalog.delete", object, func(ctx context.Context) (err error) {
		gone, err = s.Store.DeleteCatalog(ctx, p.InstanceID, r.Catalog.ID)
		return iam.StoreErr(err, "catalog "+r.Catalog.Name)
	}); err != nil {
		return err
	}
	s.emitDeleted(gone, "cascade")
	return nil
}

// checkRename refuses a name change (names are part of every path and of
// clients' configuration) and fills an empty title from the name.
func checkRename(in *Input, current, what string) error {
	if in.Name != "" && in.Name != current {
		return iam.Invalidf("the name of %s %s cannot change (asked for %q)", what, current, in.Name)
	}
	in.Name = current
	return in.check(what)
}

// ---- consumer orgs ----

// CreateConsumerOrg adds a consumer org to a catalog.
func (s *Service) CreateConsumerOrg(ctx context.Context, p iam.Principal, catalog string, in Input) (store.ConsumerOrg, error) {
	if err := in.check("consumer org"); err != nil {
		return store.ConsumerOrg{}, err
	}
	r, err := s.Resolve(ctx, p, Path{Catalog: catalog})
	if err != nil {
		return store.ConsumerOrg{}, err
	}
	r.ConsumerOrg.Name = in.Name
	object := r.object("consumerOrg")
	if !canManage(p) {
		return store.ConsumerOrg{}, s.denied(ctx, p, "consumerOrg.create", object)
	}
	o := store.ConsumerOrg{Entity: s.entity(p, in), CatalogID: r.Catalog.ID}
	return o, s.IAM.Audited(ctx, p, "consumerOrg.create", object, func(ctx context.Context) error {
		return iam.StoreErr(s.Store.CreateConsumerOrg(ctx, o), "consumer org "+in.Name+" in catalog "+r.Catalog.Name)
	})
}

// ListConsumerOrgs lists a page of a catalog's consumer orgs, by name.
func (s *Service) ListConsumerOrgs(ctx context.Context, p iam.Principal, catalog string, req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
	if err := readable(p); err != nil {
		return iam.ListPage[store.ConsumerOrg]{}, err
	}
	r, err := s.Resolve(ctx, p, Path{Catalog: catalog})
	if err != nil {
		return iam.ListPage[store.ConsumerOrg]{}, err
	}
	return iam.PageOf(req, []string{"consumerOrgs", p.InstanceID, r.Catalog.ID}, func(pg store.Page) ([]store.ConsumerOrg, error) {
		return s.Store.ListConsumerOrgs(ctx, r.Catalog.ID, pg)
	})
}

// GetConsumerOrg reads a consumer org.
func (s *Service) GetConsumerOrg(ctx context.Context, p iam.Principal, path Path) (Resolved, error) {
	if err := readable(p); err != nil {
		return Resolved{}, err
	}
	return s.Resolve(ctx, p, Path{Catalog: path.Catalog, ConsumerOrg: path.ConsumerOrg})
}

// UpdateConsumerOrg changes a consumer org's title and summary.
func (s *Service) UpdateConsumerOrg(ctx context.Context, p iam.Principal, path Path, in Input) (store.ConsumerOrg, error) {
	r, err := s.Resolve(ctx, p, Path{Catalog: path.Catalog, ConsumerOrg: path.ConsumerOrg})
	if err != nil {
		return store.ConsumerOrg{}, err
	}
	o := r.ConsumerOrg
	if err := checkRename(&in, o.Name, "consumer org"); err != nil {
		return o, err
	}
	if !canManage(p) {
		return o, s.denied(ctx, p, "consumerOrg.update", r.object("consumerOrg"))
	}
	o.Title, o.Summary, o.UpdatedAt, o.UpdatedBy = in.Title, in.Summary, s.now(), p.Actor()
	return o, s.IAM.Audited(ctx, p, "consumerOrg.update", r.object("consumerOrg"), func(ctx context.Context) error {
		return iam.StoreErr(s.Store.UpdateConsumerOrg(ctx, o), "consumer org "+o.Name)
	})
}

// DeleteConsumerOrg deletes a consumer org; one with apps is refused
// unless force.
func (s *Service) DeleteConsumerOrg(ctx context.Context, p iam.Principal, path Path, force bool) error {
	r, err := s.Resolve(ctx, p, Path{Catalog: path.Catalog, ConsumerOrg: path.ConsumerOrg})
	if err != nil {
		return err
	}
	object := r.object("consumerOrg")
	if !canManage(p) {
		return s.denied(ctx, p, "consumerOrg.delete", object)
	}
	if err := s.refuseChildren(ctx, "consumerOrg", r.ConsumerOrg.ID, "consumer org "+r.ConsumerOrg.Name, "apps", force); err != nil {
		return s.IAM.Finish(ctx, p, "consumerOrg.delete", object, err)
	}
	var gone []store.AppCredential
	if err := s.IAM.Audited(ctx, p, "consumerOrg.delete", object, func(ctx context.Context) (err error) {
		gone, err = s.Store.DeleteConsumerOrg(ctx, r.ConsumerOrg.ID)
		return iam.StoreErr(err, "consumer org "+r.ConsumerOrg.Name)
	}); err != nil {
		return err
	}
	s.emitDeleted(gone, "cascade")
	return nil
}

// ---- apps ----

func checkPolicy(pol CredentialPolicy) error {
	switch {
	case pol.DefaultTTL < 0 || pol.MaxTTL < 0:
		return iam.Invalidf("credential policy TTLs cannot be negative")
	case pol.DefaultTTL != 0 && pol.DefaultTTL < time.Second, pol.MaxTTL != 0 && pol.MaxTTL < time.Second:
		return iam.Invalidf("credential policy TTLs are at least 1s")
	case pol.MaxTTL != 0 && pol.DefaultTTL > pol.MaxTTL:
		return iam.Invalidf("credential policy defaultTtl %s is longer than its maxTtl %s", pol.DefaultTTL, pol.MaxTTL)
	}
	return nil
}

func checkState(state string) error {
	if state != StateEnabled && state != StateDisabled {
		return iam.Invalidf("state %q is not one of enabled, disabled", state)
	}
	return nil
}

// CreateApp adds an app to a consumer org.
func (s *Service) CreateApp(ctx context.Context, p iam.Principal, path Path, in AppInput) (Resolved, error) {
	if err := in.check("app"); err != nil {
		return Resolved{}, err
	}
	if in.State == "" {
		in.State = StateEnabled
	}
	if err := checkState(in.State); err != nil {
		return Resolved{}, err
	}
	var pol CredentialPolicy
	if in.Policy != nil {
		pol = *in.Policy
	}
	if err := checkPolicy(pol); err != nil {
		return Resolved{}, err
	}
	r, err := s.Resolve(ctx, p, Path{Catalog: path.Catalog, ConsumerOrg: path.ConsumerOrg})
	if err != nil {
		return r, err
	}
	r.App = store.App{Entity: s.entity(p, in.Input), CatalogID: r.Catalog.ID, ConsumerOrgID: r.ConsumerOrg.ID, State: in.State,
		DefaultTTL: pol.DefaultTTL, MaxTTL: pol.MaxTTL}
	object := r.object("app")
	if !canManage(p) {
		return Resolved{}, s.denied(ctx, p, "app.create", object)
	}
	return r, s.IAM.Audited(ctx, p, "app.create", object, func(ctx context.Context) error {
		return iam.StoreErr(s.Store.CreateApp(ctx, r.App), "app "+in.Name+" in consumer org "+r.ConsumerOrg.Name)
	})
}

// ListApps lists a page of a consumer org's apps, or with
// path.ConsumerOrg "" of every app of the catalog, by name.
func (s *Service) ListApps(ctx context.Context, p iam.Principal, path Path, req iam.ListRequest) (iam.ListPage[store.App], error) {
	if err := readable(p); err != nil {
		return iam.ListPage[store.App]{}, err
	}
	r, err := s.Resolve(ctx, p, Path{Catalog: path.Catalog, ConsumerOrg: path.ConsumerOrg})
	if err != nil {
		return iam.ListPage[store.App]{}, err
	}
	return iam.PageOf(req, []string{"apps", p.InstanceID, r.Catalog.ID, r.ConsumerOrg.ID}, func(pg store.Page) ([]store.App, error) {
		return s.Store.ListApps(ctx, r.Catalog.ID, r.ConsumerOrg.ID, pg)
	})
}

// ConsumerOrgsByID maps the ids of a catalog's consumer orgs to them, for
// answers that name each app's consumer org.
func (s *Service) ConsumerOrgsByID(ctx context.Context, p iam.Principal, catalog string) (map[string]store.ConsumerOrg, error) {
	os, err := iam.All(func(req iam.ListRequest) (iam.ListPage[store.ConsumerOrg], error) {
		return s.ListConsumerOrgs(ctx, p, catalog, req)
	})
	out := make(map[string]store.ConsumerOrg, len(os))
	for _, o := range os {
		out[o.ID] = o
	}
	return out, err
}

// GetApp reads an app.
func (s *Service) GetApp(ctx context.Context, p iam.Principal, path Path) (Resolved, error) {
	if err := readable(p); err != nil {
		return Resolved{}, err
	}
	return s.Resolve(ctx, p, path)
}

// UpdateApp changes an app's title, summary, state and credential
// policy (a nil Policy keeps the current one). Disabling an app stops its
// credentials from authenticating at once.
func (s *Service) UpdateApp(ctx context.Context, p iam.Principal, path Path, in AppInput) (Resolved, error) {
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return r, err
	}
	a := r.App
	if err := checkRename(&in.Input, a.Name, "app"); err != nil {
		return r, err
	}
	if in.State == "" {
		in.State = a.State
	}
	if err := checkState(in.State); err != nil {
		return r, err
	}
	pol := CredentialPolicy{DefaultTTL: a.DefaultTTL, MaxTTL: a.MaxTTL}
	if in.Policy != nil {
		pol = *in.Policy
	}
	if err := checkPolicy(pol); err != nil {
		return r, err
	}
	if !canManage(p) {
		return r, s.denied(ctx, p, "app.update", r.object("app"))
	}
	a.Title, a.Summary, a.State, a.DefaultTTL, a.MaxTTL = in.Title, in.Summary, in.State, pol.DefaultTTL, pol.MaxTTL
	a.UpdatedAt, a.UpdatedBy = s.now(), p.Actor()
	if err := s.IAM.Audited(ctx, p, "app.update", r.object("app"), func(ctx context.Context) error {
		return iam.StoreErr(s.Store.UpdateApp(ctx, a), "app "+a.Name)
	}); err != nil {
		return r, err
	}
	r.App = a
	s.emit(Event{Type: EventAppUpdated, App: a})
	return r, nil
}

// DeleteApp deletes an app; one with credentials is refused unless force.
func (s *Service) DeleteApp(ctx context.Context, p iam.Principal, path Path, force bool) error {
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return err
	}
	object := r.object("app")
	if !canManage(p) {
		return s.denied(ctx, p, "app.delete", object)
	}
	if err := s.refuseChildren(ctx, "app", r.App.ID, "app "+r.App.Name, "credentials", force); err != nil {
		return s.IAM.Finish(ctx, p, "app.delete", object, err)
	}
	var gone []store.AppCredential
	if err := s.IAM.Audited(ctx, p, "app.delete", object, func(ctx context.Context) (err error) {
		gone, err = s.Store.DeleteApp(ctx, r.App.ID)
		return iam.StoreErr(err, "app "+r.App.Name)
	}); err != nil {
		return err
	}
	s.emitDeleted(gone, "cascade")
	return nil
}

// isNotFound reports a store not-found.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// ---- create or replace (PUT) ----

// Replacing keeps what is not part of the object as written: its id, name,
// creation and children. The name is the path's last segment when the
// object is created; an existing object is found by its id or its name.
// Everything is checked before anything is written, and a concurrent
// create of the same name makes the loser replace what the winner made.

// checkPut refuses a name in the body that is not the path's, and checks
// the input as a create would (the name rule applies to a new name).
func checkPut(in *Input, ref, what string) error {
	if in.Name != "" && in.Name != ref {
		return iam.Invalidf("metadata.name %q does not match the %s's name in the path %q", in.Name, what, ref)
	}
	probe := *in
	probe.Name = ref
	return probe.check(what)
}

// PutCatalog creates the catalog ref names, or replaces the title and
// summary of the one it names; created says which.
func (s *Service) PutCatalog(ctx context.Context, p iam.Principal, ref string, in Input) (store.Catalog, bool, error) {
	for attempt := 0; ; attempt++ {
		cur, err := s.Store.GetCatalog(ctx, p.InstanceID, ref)
		if err == nil {
			c, err := s.UpdateCatalog(ctx, p, cur.ID, in)
			return c, false, err
		}
		if !isNotFound(err) {
			return store.Catalog{}, false, err
		}
		if err := checkPut(&in, ref, "catalog"); err != nil {
			return store.Catalog{}, false, err
		}
		in.Name = ref
		c, err := s.CreateCatalog(ctx, p, in)
		if iam.KindOf(err) == iam.KindConflict && attempt == 0 {
			continue
		}
		return c, err == nil, err
	}
}

// PutConsumerOrg creates the consumer org path names in its catalog, or
// replaces its title and summary. A missing catalog is not found.
func (s *Service) PutConsumerOrg(ctx context.Context, p iam.Principal, path Path, in Input) (Resolved, bool, error) {
	r, err := s.Resolve(ctx, p, Path{Catalog: path.Catalog})
	if err != nil {
		return r, false, err
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.Store.GetConsumerOrg(ctx, r.Catalog.ID, path.ConsumerOrg)
		if err == nil {
			r.ConsumerOrg, err = s.UpdateConsumerOrg(ctx, p, Path{Catalog: r.Catalog.ID, ConsumerOrg: cur.ID}, in)
			return r, false, err
		}
		if !isNotFound(err) {
			return r, false, err
		}
		if err := checkPut(&in, path.ConsumerOrg, "consumer org"); err != nil {
			return r, false, err
		}
		in.Name = path.ConsumerOrg
		r.ConsumerOrg, err = s.CreateConsumerOrg(ctx, p, r.Catalog.ID, in)
		if iam.KindOf(err) == iam.KindConflict && attempt == 0 {
			continue
		}
		return r, err == nil, err
	}
}

// PutApp creates the app path names in its consumer org, or replaces its
// title and summary. An empty State and a nil Policy keep the current ones
// (enabled, no policy for a new app), so a PUT that leaves them out never
// re-enables a disabled app or lifts the bounds of its leases; an empty
// Policy removes the policy.
func (s *Service) PutApp(ctx context.Context, p iam.Principal, path Path, in AppInput) (Resolved, bool, error) {
	r, err := s.Resolve(ctx, p, Path{Catalog: path.Catalog, ConsumerOrg: path.ConsumerOrg})
	if err != nil {
		return r, false, err
	}
	for attempt := 0; ; attempt++ {
		cur, err := s.Store.GetApp(ctx, r.ConsumerOrg.ID, path.App)
		if err == nil {
			out, err := s.UpdateApp(ctx, p, Path{Catalog: r.Catalog.ID, ConsumerOrg: r.ConsumerOrg.ID, App: cur.ID}, in)
			return out, false, err
		}
		if !isNotFound(err) {
			return r, false, err
		}
		if err := checkPut(&in.Input, path.App, "app"); err != nil {
			return r, false, err
		}
		in.Name = path.App
		out, err := s.CreateApp(ctx, p, Path{Catalog: r.Catalog.ID, ConsumerOrg: r.ConsumerOrg.ID}, in)
		if iam.KindOf(err) == iam.KindConflict && attempt == 0 {
			continue
		}
		return out, err == nil, err
	}
}

// CountCatalogs, CountConsumerOrgs, CountApps and CountCredentials count
// what the lists above list, all pages together (API Connect's
// total_results); path names ids already resolved.
func (s *Service) CountCatalogs(ctx context.Context, p iam.Principal) (int, error) {
	if err := readable(p); err != nil {
		return 0, err
	}
	return s.Store.CountCatalogs(ctx, p.InstanceID)
}

func (s *Service) CountConsumerOrgs(ctx context.Context, p iam.Principal, catalogID string) (int, error) {
	if err := readable(p); err != nil {
		return 0, err
	}
	return s.Store.CountConsumerOrgs(ctx, catalogID)
}

func (s *Service) CountApps(ctx context.Context, p iam.Principal, path Path) (int, error) {
	if err := readable(p); err != nil {
		return 0, err
	}
	return s.Store.CountApps(ctx, path.Catalog, path.ConsumerOrg)
}

func (s *Service) CountCredentials(ctx context.Context, p iam.Principal, appID string) (int, error) {
	if err := readable(p); err != nil {
		return 0, err
	}
	return s.Store.CountAppCredentials(ctx, appID, store.AppCredentialFilter{LiveAt: s.now()})
}
