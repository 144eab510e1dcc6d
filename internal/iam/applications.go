package iam

import (
	"context"
	"errors"

	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// Applications are client credentials owned by the user or service ID
// that made them (Airbyte calls them applications): the client id and
// secret alone get a token with the owner's role, they do not expire, and
// they go when they are deleted or their owner is. Unlike instance
// credentials, which only admins manage, every caller manages its own.

// CreateApplication makes a credential owned by the caller and returns its
// secret, shown only this once.
func (s *Service) CreateApplication(ctx context.Context, p Principal, name string) (store.ClientCredential, secret.Value, error) {
	object := "clientCredential/" + name
	if err := resource.ValidateName("application", name); err != nil {
		err = invalid("%s", err.Error())
		return store.ClientCredential{}, secret.Value{}, s.finish(ctx, p, "clientCredential.create", object, err)
	}
	owner, err := s.Store.GetIdentity(ctx, p.InstanceID, p.SubjectKind, p.SubjectName)
	if err != nil {
		return store.ClientCredential{}, secret.Value{}, storeErr(err, kindWord(p.SubjectKind)+" "+p.SubjectName)
	}
	c := store.ClientCredential{ClientID: randomID(16), InstanceID: p.InstanceID, Name: name, Description: "application of " + p.Actor(),
		CreatedAt: s.now(), CreatedBy: p.Actor(), OwnerID: owner.ID, OwnerKind: owner.Kind, OwnerName: owner.Name, OwnerRole: owner.Role}
	v := newSecret(ClientSecretPrefix)
	c.SecretHash, c.SecretHint = hashSecret(v), hint(v, ClientSecretPrefix)
	err = storeErr(s.Store.CreateClientCredential(ctx, c), "credential "+name)
	if err := s.finish(ctx, p, "clientCredential.create", object, err); err != nil {
		return store.ClientCredential{}, secret.Value{}, err
	}
	return c, v, nil
}

// ListApplications lists one page of the caller's own applications.
func (s *Service) ListApplications(ctx context.Context, p Principal, req ListRequest) (ListPage[store.ClientCredential], error) {
	pg, err := PageOf(req, []string{"applications", p.InstanceID, p.SubjectID}, func(pg store.Page) ([]store.ClientCredential, error) {
		return s.Store.ListOwnedClientCredentials(ctx, p.InstanceID, p.SubjectID, pg)
	})
	s.used.pendingClients(pg.Items)
	return pg, err
}

// GetApplication reads one of the caller's applications by client id;
// anyone else's is as good as absent.
func (s *Service) GetApplication(ctx context.Context, p Principal, clientID string) (store.ClientCredential, error) {
	c, err := s.Store.GetClientCredential(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (c.InstanceID != p.InstanceID || c.OwnerID == "" || c.OwnerID != p.SubjectID)) {
		return store.ClientCredential{}, notFound("application %s not found", clientID)
	}
	return c, err
}

// DeleteApplication removes one of the caller's applications and returns
// what it was; every token minted for it fails on its next use.
func (s *Service) DeleteApplication(ctx context.Context, p Principal, clientID string) (store.ClientCredential, error) {
	c, err := s.GetApplication(ctx, p, clientID)
	if err != nil {
		return c, s.finish(ctx, p, "clientCredential.delete", "clientCredential/"+clientID, err)
	}
	err = storeErr(s.Store.DeleteClientCredential(ctx, p.InstanceID, c.Name), "application "+clientID)
	return c, s.finish(ctx, p, "clientCredential.delete", "clientCredential/"+c.Name, err)
}

// ApplicationToken is the client_credentials grant of applications, with
// their own token lifetime. An instance credential is refused with
// ErrGrantNotAllowed: it needs an API key as well.
func (s *Service) ApplicationToken(ctx context.Context, r TokenRequest) (TokenResponse, error) {
	ctx = WithGrant(ctx, GrantApplication)
	return s.clientCredentials(ctx, r, s.ApplicationTokenLifetime)
}
