package iam

import (
	"context"
	"errors"

	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// CredentialInput describes a public API credential.
type CredentialInput struct {
	Name        string
	Description string
	OwnerKind   string // "" with OwnerName "": an instance credential
	OwnerName   string
}

// PutClientCredential creates a credential and returns its secret, shown
// only this once. For an existing name it updates the description only and
// returns no secret (createOnly refuses instead): a secret is never reissued
// under a name, so rotation means creating a new credential, moving clients
// over, then deleting the old one.
func (s *Service) PutClientCredential(ctx context.Context, p Principal, in CredentialInput, createOnly bool) (store.ClientCredential, secret.Value, error) {
	return s.putClientCredential(ctx, p, in, createOnly, false)
}

func (s *Service) putClientCredential(ctx context.Context, p Principal, in CredentialInput, createOnly, raced bool) (store.ClientCredential, secret.Value, error) {
	object := "clientCredential/" + in.Name
	if !p.IsAdmin() {
		return store.ClientCredential{}, secret.Value{}, s.finish(ctx, p, "clientCredential.put", object, forbidden("only admins manage public API credentials"))
	}
	if err := resource.ValidateName("credential", in.Name); err != nil {
		return store.ClientCredential{}, secret.Value{}, invalid("%s", err.Error())
	}
	if len(in.Description) > 1024 {
		return store.ClientCredential{}, secret.Value{}, invalid("description is longer than 1024 characters")
	}
	cur, err := s.Store.GetClientCredentialByName(ctx, p.InstanceID, in.Name)
	switch {
	case err == nil && createOnly:
		return store.ClientCredential{}, secret.Value{}, conflict("credential %s already exists", in.Name)
	case err == nil:
		if in.OwnerKind != cur.OwnerKind || in.OwnerName != cur.OwnerName {
			return store.ClientCredential{}, secret.Value{}, invalid("the owner of credential %s cannot change: create a new credential", in.Name)
		}
		err := storeErr(s.Store.UpdateClientCredentialDescription(ctx, p.InstanceID, in.Name, in.Description), "credential "+in.Name)
		if err := s.finish(ctx, p, "clientCredential.update", object, err); err != nil {
			return store.ClientCredential{}, secret.Value{}, err
		}
		cur.Description = in.Description
		return cur, secret.Value{}, nil
	case !errors.Is(err, store.ErrNotFound):
		return store.ClientCredential{}, secret.Value{}, err
	}
	c := store.ClientCredential{ClientID: randomID(16), InstanceID: p.InstanceID, Name: in.Name, Description: in.Description,
		CreatedAt: s.now(), CreatedBy: p.Actor()}
	if in.OwnerKind != "" || in.OwnerName != "" {
		if in.OwnerKind != store.KindUser && in.OwnerKind != store.KindServiceID {
			return store.ClientCredential{}, secret.Value{}, invalid("owner kind %q is not one of user, serviceId", in.OwnerKind)
		}
		owner, err := s.Store.GetIdentity(ctx, p.InstanceID, in.OwnerKind, in.OwnerName)
		if err != nil {
			return store.ClientCredential{}, secret.Value{}, storeErr(err, kindWord(in.OwnerKind)+" "+in.OwnerName)
		}
		c.OwnerID, c.OwnerKind, c.OwnerName, c.OwnerRole = owner.ID, owner.Kind, owner.Name, owner.Role
	}
	v := newSecret(ClientSecretPrefix)
	c.SecretHash, c.SecretHint = hashSecret(v), hint(v, ClientSecretPrefix)
	err = s.Store.CreateClientCredential(ctx, c)
	if errors.Is(err, store.ErrConflict) && !createOnly && !raced {
		// Another PUT created the name a moment ago: this one updates it,
		// as if it had come second (and so gets no secret).
		return s.putClientCredential(ctx, p, in, createOnly, true)
	}
	err = storeErr(err, "credential "+in.Name)
	if err := s.finish(ctx, p, "clientCredential.create", object, err); err != nil {
		return store.ClientCredential{}, secret.Value{}, err
	}
	return c, v, nil
}

// ListClientCredentials lists a page of the instance's credentials
// (admins only), by name.
func (s *Service) ListClientCredentials(ctx context.Context, p Principal, req ListRequest) (ListPage[store.ClientCredential], error) {
	if !p.IsAdmin() {
		return ListPage[store.ClientCredential]{}, forbidden("only admins list public API credentials")
	}
	pg, err := PageOf(req, []string{"credentials", p.InstanceID}, func(pg store.Page) ([]store.ClientCredential, error) {
		return s.Store.ListClientCredentials(ctx, p.InstanceID, pg)
	})
	s.used.pendingClients(pg.Items)
	return pg, err
}

// GetClientCredential reads one credential (admins only).
func (s *Service) GetClientCredential(ctx context.Context, p Principal, name string) (store.ClientCredential, error) {
	if !p.IsAdmin() {
		return store.ClientCredential{}, forbidden("only admins read public API credentials")
	}
	c, err := s.Store.GetClientCredentialByName(ctx, p.InstanceID, name)
	one := []store.ClientCredential{c}
	s.used.pendingClients(one)
	return one[0], storeErr(err, "credential "+name)
}

// DeleteClientCredential removes a credential; every token minted for its
// client id fails on its next use.
func (s *Service) DeleteClientCredential(ctx context.Context, p Principal, name string) error {
	object := "clientCredential/" + name
	if !p.IsAdmin() {
		return s.finish(ctx, p, "clientCredential.delete", object, forbidden("only admins delete public API credentials"))
	}
	err := storeErr(s.Store.DeleteClientCredential(ctx, p.InstanceID, name), "credential "+name)
	return s.finish(ctx, p, "clientCredential.delete", object, err)
}

// ListAudit returns audit events of the caller's instance (admins only).
func (s *Service) ListAudit(ctx context.Context, p Principal, f store.AuditFilter) ([]store.AuditEvent, error) {
	if !p.IsAdmin() {
		return nil, forbidden("only admins read the audit log")
	}
	f.InstanceID = p.InstanceID
	return s.Store.ListAuditEvents(ctx, f)
}
