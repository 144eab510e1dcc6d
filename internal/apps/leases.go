package apps

import (
	"context"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// leaseTTL picks a lease's TTL: the one asked, or the app's default, and
// refuses one above the app's maximum.
func leaseTTL(a store.App, ttl time.Duration) (time.Duration, error) {
	if ttl == 0 {
		ttl = a.DefaultTTL
	}
	switch {
	case ttl == 0:
		return 0, iam.Invalidf("ttl is missing and app %s has no credential policy defaultTtl: give a ttl such as \"1h\"", a.Name)
	case ttl < time.Second:
		return 0, iam.Invalidf("ttl %s is shorter than 1s", ttl)
	case a.MaxTTL > 0 && ttl > a.MaxTTL:
		return 0, iam.Invalidf("ttl %s is longer than app %s's credential policy maxTtl %s", ttl, a.Name, a.MaxTTL)
	}
	return ttl, nil
}

// CreateLease creates a credential that expires after ttl (zero: the
// app's defaultTtl). It stops authenticating at its expiry and the
// sweeper deletes it within a second of it.
func (s *Service) CreateLease(ctx context.Context, p iam.Principal, path Path, in CredentialInput, ttl time.Duration) (Resolved, Issued, error) {
	if in.Name == "" && in.Title == "" {
		in.Name = "lease-" + newID()[:8]
	}
	return s.issue(ctx, p, path, in, ttl, "lease.create")
}

// ListLeases lists a page of an app's unexpired leases, oldest first.
func (s *Service) ListLeases(ctx context.Context, p iam.Principal, path Path, req iam.ListRequest) (iam.ListPage[store.AppCredential], error) {
	if err := readable(p); err != nil {
		return iam.ListPage[store.AppCredential]{}, err
	}
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return iam.ListPage[store.AppCredential]{}, err
	}
	return s.listCredentials(ctx, p, r, true, req)
}

// Renewal is the answer to a renewal.
type Renewal struct {
	Credential store.AppCredential
	// Capped says the expiry asked for was past the lease's maximum
	// (creation + the app's maxTtl) and was cut to it.
	Capped bool
}

// RenewLease moves a lease's expiry to now + increment (zero: the app's
// defaultTtl, else the lease's original TTL), never past its creation +
// maxTtl: the answer says when it was capped. An expired lease cannot be
// renewed; an increment above maxTtl, or a lease already at its maximum,
// is refused.
func (s *Service) RenewLease(ctx context.Context, p iam.Principal, path Path, ref string, increment time.Duration) (Resolved, Renewal, error) {
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return r, Renewal{}, err
	}
	c, err := s.Store.GetAppCredential(ctx, r.App.ID, ref)
	now := s.now()
	if err == nil && (!c.Leased() || !now.Before(c.ExpiresAt)) {
		err = store.ErrNotFound
	}
	if err != nil {
		return r, Renewal{}, iam.StoreErr(err, "lease "+ref+" of app "+r.App.Name)
	}
	object := credentialObject(r, c.Name)
	if !canManage(p) {
		return r, Renewal{}, s.denied(ctx, p, "lease.renew", object)
	}
	if increment == 0 {
		increment = r.App.DefaultTTL
	}
	if increment == 0 {
		increment = c.ExpiresAt.Sub(c.CreatedAt)
	}
	switch {
	case increment < time.Second:
		return r, Renewal{}, s.IAM.Finish(ctx, p, "lease.renew", object, iam.Invalidf("increment %s is shorter than 1s", increment))
	case r.App.MaxTTL > 0 && increment > r.App.MaxTTL:
		return r, Renewal{}, s.IAM.Finish(ctx, p, "lease.renew", object,
			iam.Invalidf("increment %s is longer than app %s's credential policy maxTtl %s", increment, r.App.Name, r.App.MaxTTL))
	case !c.MaxExpiresAt.IsZero() && !c.ExpiresAt.Before(c.MaxExpiresAt):
		return r, Renewal{}, s.IAM.Finish(ctx, p, "lease.renew", object,
			iam.Invalidf("lease %s is already at its maximum expiry %s (created + maxTtl): create a new lease", c.ID, c.MaxExpiresAt.Format(time.RFC3339)))
	}
	out := Renewal{}
	exp := now.Add(increment)
	if !c.MaxExpiresAt.IsZero() && exp.After(c.MaxExpiresAt) {
		exp, out.Capped = c.MaxExpiresAt, true
	}
	c.ExpiresAt, c.UpdatedAt = exp, now
	if err := s.IAM.Audited(ctx, p, "lease.renew", object, func(ctx context.Context) error {
		return iam.StoreErr(s.Store.SetAppCredentialExpiry(ctx, c.ID, exp, now), "lease "+ref)
	}); err != nil {
		return r, Renewal{}, err
	}
	out.Credential = c
	s.emit(Event{Type: EventCredentialRenewed, Credential: c})
	return r, out, nil
}

// RevokeLease deletes a lease at once.
func (s *Service) RevokeLease(ctx context.Context, p iam.Principal, path Path, ref string) error {
	return s.remove(ctx, p, path, ref, true)
}

// RevokeLeases deletes every lease of an app at once and says how many.
func (s *Service) RevokeLeases(ctx context.Context, p iam.Principal, path Path) (int, error) {
	r, err := s.Resolve(ctx, p, path)
	if err != nil {
		return 0, err
	}
	object := "leases/" + r.Catalog.Name + "/" + r.ConsumerOrg.Name + "/" + r.App.Name
	if !canManage(p) {
		return 0, s.denied(ctx, p, "lease.revokeAll", object)
	}
	var gone []store.AppCredential
	if err := s.IAM.Audited(ctx, p, "lease.revokeAll", object, func(ctx context.Context) (err error) {
		gone, err = s.Store.DeleteLeases(ctx, r.App.ID)
		return err
	}); err != nil {
		return 0, err
	}
	s.emitDeleted(gone, "revoked")
	return len(gone), nil
}

// wake tells a running sweeper that a lease expires at t, so it can set
// its timer earlier if needed.
func (s *Service) wake(t time.Time) {
	s.mu.Lock()
	k := s.kick
	s.mu.Unlock()
	if k != nil {
		k(t)
	}
}
