package iam

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// APIKeyInput describes a new API key.
type APIKeyInput struct {
	Name        string
	Description string
	OwnerKind   string    // "" for the caller
	OwnerName   string    // "" for the caller
	ExpiresAt   time.Time // zero: never
}

// CreateAPIKey makes an API key and returns it with its value, which is
// never available again. Anyone may create keys for themselves; admins
// may create them for any user or service ID of the instance.
func (s *Service) CreateAPIKey(ctx context.Context, p Principal, in APIKeyInput) (store.APIKey, secret.Value, error) {
	if in.OwnerKind == "" && in.OwnerName == "" {
		in.OwnerKind, in.OwnerName = p.SubjectKind, p.SubjectName
	}
	object := "apiKey/" + in.OwnerKind + ":" + in.OwnerName + "/" + in.Name
	if err := resource.ValidateName("API key", in.Name); err != nil {
		return store.APIKey{}, secret.Value{}, invalid("%s", err.Error())
	}
	if len(in.Description) > 1024 {
		return store.APIKey{}, secret.Value{}, invalid("description is longer than 1024 characters")
	}
	if in.OwnerKind != store.KindUser && in.OwnerKind != store.KindServiceID {
		return store.APIKey{}, secret.Value{}, invalid("owner kind %q is not one of user, serviceId", in.OwnerKind)
	}
	if !in.ExpiresAt.IsZero() && !in.ExpiresAt.After(s.now()) {
		return store.APIKey{}, secret.Value{}, invalid("expiry %s is not in the future", in.ExpiresAt.Format(time.RFC3339))
	}
	if !p.IsAdmin() && (in.OwnerKind != p.SubjectKind || in.OwnerName != p.SubjectName) {
		return store.APIKey{}, secret.Value{}, s.finish(ctx, p, "apiKey.create", object, forbidden("only admins create API keys for others"))
	}
	owner, err := s.Store.GetIdentity(ctx, p.InstanceID, in.OwnerKind, in.OwnerName)
	if err != nil {
		return store.APIKey{}, secret.Value{}, storeErr(err, kindWord(in.OwnerKind)+" "+in.OwnerName)
	}
	v := newSecret(APIKeyPrefix)
	k := store.APIKey{ID: "ak-" + randomID(8), InstanceID: p.InstanceID, OwnerID: owner.ID, Name: in.Name, Description: in.Description,
		KeyHash: hashSecret(v), KeyHint: hint(v, APIKeyPrefix), ExpiresAt: in.ExpiresAt.UTC(), CreatedAt: s.now(), CreatedBy: p.Actor(),
		OwnerKind: owner.Kind, OwnerName: owner.Name, OwnerRole: owner.Role}
	if !k.ExpiresAt.IsZero() {
		k.ExpiresAt = k.ExpiresAt.Truncate(time.Millisecond)
	}
	err = storeErr(s.Store.CreateAPIKey(ctx, k), "API key "+in.Name+" of "+kindWord(in.OwnerKind)+" "+in.OwnerName)
	if err := s.finish(ctx, p, "apiKey.create", "apiKey/"+k.ID, err); err != nil {
		return store.APIKey{}, secret.Value{}, err
	}
	return k, v, nil
}

// ListAPIKeys lists a page of every key of the instance for admins, and
// of the caller's own keys for everyone else.
func (s *Service) ListAPIKeys(ctx context.Context, p Principal, req ListRequest) (ListPage[store.APIKey], error) {
	owner := p.SubjectID
	if p.IsAdmin() {
		owner = ""
	}
	pg, err := PageOf(req, []string{"apiKeys", p.InstanceID, owner}, func(pg store.Page) ([]store.APIKey, error) {
		return s.Store.ListAPIKeys(ctx, p.InstanceID, owner, pg)
	})
	s.used.pendingKeys(pg.Items)
	return pg, err
}

// GetAPIKey reads one key the caller may see.
func (s *Service) GetAPIKey(ctx context.Context, p Principal, id string) (store.APIKey, error) {
	k, err := s.Store.GetAPIKey(ctx, p.InstanceID, id)
	if err != nil {
		return k, storeErr(err, "API key "+id)
	}
	if !p.IsAdmin() && k.OwnerID != p.SubjectID {
		// Someone else's key is as good as absent to a non-admin.
		return store.APIKey{}, notFound("API key %s not found", id)
	}
	one := []store.APIKey{k}
	s.used.pendingKeys(one)
	return one[0], nil
}

// SetAPIKeyLocked locks or unlocks a key. A locked key cannot be exchanged
// and every token minted from it fails on its next use, also after the key
// is unlocked again: each lock starts a new token epoch for the key (a
// not-before counted in locks rather than seconds, as a token's iat is
// too coarse to tell a token minted just before a lock from one just after
// the unlock).
func (s *Service) SetAPIKeyLocked(ctx context.Context, p Principal, id string, locked bool) (store.APIKey, error) {
	action := "apiKey.unlock"
	if locked {
		action = "apiKey.lock"
	}
	if _, err := s.GetAPIKey(ctx, p, id); err != nil {
		return store.APIKey{}, err
	}
	err := storeErr(s.Store.SetAPIKeyLocked(ctx, p.InstanceID, id, locked), "API key "+id)
	if err := s.finish(ctx, p, action, "apiKey/"+id, err); err != nil {
		return store.APIKey{}, err
	}
	return s.Store.GetAPIKey(ctx, p.InstanceID, id)
}

// DeleteAPIKey removes a key; every token minted from it fails on its next use.
func (s *Service) DeleteAPIKey(ctx context.Context, p Principal, id string) error {
	if _, err := s.GetAPIKey(ctx, p, id); err != nil {
		return err
	}
	err := storeErr(s.Store.DeleteAPIKey(ctx, p.InstanceID, id), "API key "+id)
	return s.finish(ctx, p, "apiKey.delete", "apiKey/"+id, err)
}
