package iam

import (
	"context"
	"errors"

	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// IdentityInput is a user or service ID as a caller describes it.
type IdentityInput struct {
	Kind        string // store.KindUser or store.KindServiceID
	Name        string
	Description string
	Role        string
	Password    secret.Value // users only; empty keeps the current one
}

func kindWord(kind string) string {
	if kind == store.KindServiceID {
		return "service ID"
	}
	return "user"
}

func (in IdentityInput) validate() error {
	if err := resource.ValidateName(kindWord(in.Kind), in.Name); err != nil {
		return invalid("%s", err.Error())
	}
	if err := validRole(in.Role); err != nil {
		return err
	}
	if len(in.Description) > 1024 {
		return invalid("description is longer than 1024 characters")
	}
	if in.Kind == store.KindServiceID && !in.Password.IsZero() {
		return invalid("service IDs have no password: they use API keys or client credentials")
	}
	if !in.Password.IsZero() && len(in.Password.Reveal()) < 12 {
		return invalid("password is shorter than 12 characters")
	}
	return nil
}

// PutIdentity creates a user or service ID, or replaces an existing one's
// role, description and (when given) password. createOnly refuses to touch
// an existing one (POST semantics).
func (s *Service) PutIdentity(ctx context.Context, p Principal, in IdentityInput, createOnly bool) (store.Identity, bool, error) {
	object := in.Kind + "/" + in.Name
	if !p.IsAdmin() {
		return store.Identity{}, false, s.finish(ctx, p, in.Kind+".put", object, forbidden("only admins manage users and service IDs"))
	}
	if err := in.validate(); err != nil {
		return store.Identity{}, false, err
	}
	var hash string
	if !in.Password.IsZero() {
		h, err := HashPassword(in.Password)
		if err != nil {
			return store.Identity{}, false, err
		}
		hash = h
	}
	now := s.now()
	// Twice at most: a create that loses the race to another PUT of the
	// same new name replaces what that one created, as if it came second.
	for attempt := 0; ; attempt++ {
		cur, err := s.Store.GetIdentity(ctx, p.InstanceID, in.Kind, in.Name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			id := store.Identity{ID: idPrefix(in.Kind) + randomID(8), InstanceID: p.InstanceID, Kind: in.Kind, Name: in.Name,
				Description: in.Description, Role: in.Role, PasswordHash: hash, CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now}
			err := s.Store.CreateIdentity(ctx, id)
			if errors.Is(err, store.ErrConflict) && !createOnly && attempt == 0 {
				continue
			}
			err = storeErr(err, kindWord(in.Kind)+" "+in.Name)
			return id, true, s.finish(ctx, p, in.Kind+".create", object, err)
		case err != nil:
			return store.Identity{}, false, err
		case createOnly:
			return store.Identity{}, false, conflict("%s %s already exists", kindWord(in.Kind), in.Name)
		}
		if cur.Role == RoleAdmin && in.Role != RoleAdmin && cur.ID == p.SubjectID {
			last, err := s.lastAdmin(ctx, p.InstanceID, cur.ID)
			if err != nil {
				return store.Identity{}, false, err
			}
			if last {
				return store.Identity{}, false, s.finish(ctx, p, in.Kind+".update", object,
					conflict("you are the last admin of this instance: make another identity admin before you give up the role"))
			}
		}
		// A new password or a lower role ends the identity's dashboard
		// sessions, on every replica: they hold the epoch they began in.
		if hash != "" || RoleRank(in.Role) < RoleRank(cur.Role) {
			cur.SessionEpoch++
		}
		cur.Description, cur.Role, cur.UpdatedAt = in.Description, in.Role, now
		if hash != "" {
			cur.PasswordHash = hash
		}
		err = storeErr(s.Store.UpdateIdentity(ctx, cur), kindWord(in.Kind)+" "+in.Name)
		return cur, false, s.finish(ctx, p, in.Kind+".update", object, err)
	}
}

// lastAdmin reports whether no identity of the instance but except holds
// the admin role.
func (s *Service) lastAdmin(ctx context.Context, instanceID, except string) (bool, error) {
	for _, kind := range []string{store.KindUser, store.KindServiceID} {
		ids, err := s.Store.ListIdentities(ctx, instanceID, kind, store.Page{})
		if err != nil {
			return false, err
		}
		for _, id := range ids {
			if id.ID != except && id.Role == RoleAdmin {
				return false, nil
			}
		}
	}
	return true, nil
}

func idPrefix(kind string) string {
	if kind == store.KindServiceID {
		return "sid-"
	}
	return "usr-"
}

// GetIdentity reads one user or service ID. Admins read any; others only
// themselves.
func (s *Service) GetIdentity(ctx context.Context, p Principal, kind, name string) (store.Identity, error) {
	if !p.IsAdmin() && !(p.SubjectKind == kind && p.SubjectName == name) {
		return store.Identity{}, forbidden("only admins read other identities")
	}
	id, err := s.Store.GetIdentity(ctx, p.InstanceID, kind, name)
	return id, storeErr(err, kindWord(kind)+" "+name)
}

// ListIdentities lists a page of the users or service IDs of the
// caller's instance, by name.
func (s *Service) ListIdentities(ctx context.Context, p Principal, kind string, req ListRequest) (ListPage[store.Identity], error) {
	if !p.IsAdmin() {
		return ListPage[store.Identity]{}, forbidden("only admins list users and service IDs")
	}
	return PageOf(req, []string{kind, p.InstanceID}, func(pg store.Page) ([]store.Identity, error) {
		return s.Store.ListIdentities(ctx, p.InstanceID, kind, pg)
	})
}

// DeleteIdentity removes a user or service ID with its API keys and owned
// credentials; tokens minted from them stop working at once.
func (s *Service) DeleteIdentity(ctx context.Context, p Principal, kind, name string) error {
	object := kind + "/" + name
	if !p.IsAdmin() {
		return s.finish(ctx, p, kind+".delete", object, forbidden("only admins delete users and service IDs"))
	}
	if kind == p.SubjectKind && name == p.SubjectName {
		return invalid("you cannot delete the identity you are signed in as")
	}
	err := storeErr(s.Store.DeleteIdentity(ctx, p.InstanceID, kind, name), kindWord(kind)+" "+name)
	return s.finish(ctx, p, kind+".delete", object, err)
}
