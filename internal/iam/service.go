package iam

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// Roles, from most to least powerful.
const (
	RoleAdmin     = "admin"     // everything in the instance, identities included
	RoleDeveloper = "developer" // manage integration resources
	RoleViewer    = "viewer"    // read only
)

// RoleRank orders roles; a route needing rank r admits roles of rank ≥ r.
func RoleRank(role string) int {
	switch role {
	case RoleAdmin:
		return 3
	case RoleDeveloper:
		return 2
	case RoleViewer:
		return 1
	}
	return 0
}

func validRole(role string) error {
	if RoleRank(role) == 0 {
		return invalid("role %q is not one of admin, developer, viewer", role)
	}
	return nil
}

// Principal is who a request acts as, established from its token.
type Principal struct {
	InstanceID  string
	SubjectID   string
	SubjectKind string // store.KindUser or store.KindServiceID
	SubjectName string
	Role        string
	ClientID    string
	KeyID       string // API key the token came from, "" for client_credentials
	TokenID     string
	ExpiresAt   time.Time
	Source      string // remote address, for audit
	RequestID   string
}

// Actor names the principal in audit records.
func (p Principal) Actor() string { return p.SubjectKind + ":" + p.SubjectName }

// IsAdmin reports whether the principal administers its instance.
func (p Principal) IsAdmin() bool { return p.Role == RoleAdmin }

// Service is the identity and token service.
type Service struct {
	Store  store.Store
	Tokens *Tokens
	Audit  *Auditor
	Now    clock.Func
	// RefreshLifetime is how long refresh tokens of POST /api/token
	// live; zero: DefaultRefreshLifetime.
	RefreshLifetime time.Duration

	// Lifetimes of the tokens of other tools' exchanges; zero: the
	// tokens' default lifetime (RefreshTokenLifetime: 30 days).
	ApplicationTokenLifetime time.Duration // Airbyte applications
	APIKeyTokenLifetime      time.Duration // IBM Cloud IAM API-key exchange
	RefreshTokenLifetime     time.Duration // IBM Cloud IAM refresh tokens

	// Metrics counts tokens and leases; nil: not counted.
	Metrics Metrics

	// AuditRetention is the --audit-retention in force (0: events are kept
	// for ever), which audit readers are told.
	AuditRetention time.Duration

	used     usage        // last-used times, written by RecordUsage
	refusals refusalTally // refused token requests naming no client, audited by FlushRefusals
}

func (s *Service) now() time.Time { return s.Now.Now().UTC() }

// audit records one action; err decides the outcome. A failure to write
// the audit record is returned, so the caller does not acknowledge an
// action that left no trace.
func (s *Service) audit(ctx context.Context, p Principal, action, object string, err error, detail string) error {
	outcome := OutcomeSuccess
	switch k := KindOf(err); {
	case err == nil:
	case k == KindForbidden || k == KindUnauthorized || k == KindTooManyRequests:
		outcome = OutcomeDenied
	default:
		outcome = OutcomeFailure
	}
	if err != nil && detail == "" {
		var e *Error
		if errors.As(err, &e) {
			detail = e.Msg
		}
	}
	s.count(ctx, action, outcome, err)
	return s.Audit.Record(ctx, store.AuditEvent{
		At: s.now(), InstanceID: p.InstanceID, Actor: p.Actor(), Action: action, Object: object,
		Outcome: outcome, Source: p.Source, RequestID: p.RequestID, Detail: detail,
	})
}

// finish audits a mutation and returns its error, or the audit's.
func (s *Service) finish(ctx context.Context, p Principal, action, object string, err error) error {
	if aerr := s.audit(ctx, p, action, object, err, ""); aerr != nil && err == nil {
		return fmt.Errorf("iam: unable to audit %s: %w", action, aerr)
	}
	return err
}

// storeErr maps store sentinels to client-facing errors about what.
func storeErr(err error, what string) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return notFound("%s not found", what)
	case errors.Is(err, store.ErrConflict):
		return conflict("%s already exists", what)
	}
	return err
}

// InitialCredentials is what the first start prints once and writes to
// <data-dir>/initial-credentials.json.
type InitialCredentials struct {
	Endpoint     string `json:"endpoint"`
	InstanceID   string `json:"instanceId"`
	ClientID     string `json:"clientId"`
	ClientSecret string `json:"clientSecret"`
	APIKey       string `json:"apiKey"`
	Username     string `json:"username"`
	Password     string `json:"password"`
}

// newInstance builds a tenant with an admin user, an API key for it and a
// client credential. The returned credentials hold clear-text secrets.
func (s *Service) newInstance(name string) (store.NewInstance, InitialCredentials, error) {
	now := s.now()
	inst := store.Instance{ID: newInstanceID(), Name: name, CreatedAt: now}
	password := secret.New(randomBase62(24))
	hash, err := HashPassword(password)
	if err != nil {
		return store.NewInstance{}, InitialCredentials{}, err
	}
	admin := store.Identity{ID: "usr-" + randomID(8), InstanceID: inst.ID, Kind: store.KindUser, Name: "admin",
		Description: "created at first start", Role: RoleAdmin, PasswordHash: hash, CreatedAt: now, CreatedBy: "system", UpdatedAt: now}
	key := newSecret(APIKeyPrefix)
	apiKey := store.APIKey{ID: "ak-" + randomID(8), InstanceID: inst.ID, OwnerID: admin.ID, Name: "initial",
		Description: "created at first start", KeyHash: hashSecret(key), KeyHint: hint(key, APIKeyPrefix), CreatedAt: now, CreatedBy: "system"}
	cs := newSecret(ClientSecretPrefix)
	cred := store.ClientCredential{ClientID: randomID(16), InstanceID: inst.ID, Name: "initial", Description: "created at first start",
		SecretHash: hashSecret(cs), SecretHint: hint(cs, ClientSecretPrefix), CreatedAt: now, CreatedBy: "system"}
	return store.NewInstance{Instance: inst, Admin: admin, Key: apiKey, Credential: cred},
		InitialCredentials{InstanceID: inst.ID, ClientID: cred.ClientID, ClientSecret: cs.Reveal(), APIKey: key.Reveal(),
			Username: admin.Name, Password: password.Reveal()}, nil
}

// Bootstrap creates the first instance of an empty store. It returns nil
// credentials, changing nothing, when the store was bootstrapped before —
// by this process or any other sharing the store.
func (s *Service) Bootstrap(ctx context.Context) (*InitialCredentials, error) {
	// Look before building the first instance: that hashes a password
	// (argon2id, 64 MiB), which every later start would pay for nothing.
	if _, err := s.Store.GetSetting(ctx, "bootstrapped"); err == nil {
		return nil, nil
	}
	n, creds, err := s.newInstance("default")
	if err != nil {
		return nil, err
	}
	done, err := s.Store.Bootstrap(ctx, n)
	if err != nil || !done {
		return nil, err
	}
	sys := Principal{InstanceID: n.Instance.ID, SubjectKind: "system", SubjectName: "bootstrap"}
	if err := s.audit(ctx, sys, "instance.create", "instance/"+n.Instance.ID, nil, "first start: admin user, API key and client credential created"); err != nil {
		return nil, err
	}
	return &creds, nil
}

// CreateInstance adds a tenant and returns its initial credentials.
func (s *Service) CreateInstance(ctx context.Context, name string) (InitialCredentials, error) {
	n, creds, err := s.newInstance(name)
	if err != nil {
		return creds, err
	}
	if err := s.Store.CreateInstance(ctx, n); err != nil {
		return InitialCredentials{}, err
	}
	sys := Principal{InstanceID: n.Instance.ID, SubjectKind: "system", SubjectName: "cli"}
	return creds, s.audit(ctx, sys, "instance.create", "instance/"+n.Instance.ID, nil, "")
}

// scopeFor is the OAuth scope of a role's tokens. App Connect tokens carry
// "appcon:manage"; a viewer's carry a read-only scope.
func scopeFor(role string) string {
	if role == RoleViewer {
		return "appcon:read"
	}
	return "appcon:manage"
}

// Finish audits a mutation another domain package performed for p and
// returns its error, or the audit's when the mutation succeeded but left
// no trace (the caller must then not acknowledge it).
func (s *Service) Finish(ctx context.Context, p Principal, action, object string, err error) error {
	return s.finish(ctx, p, action, object, err)
}

// Audited performs a mutation for p and writes its audit record in the
// same transaction (store.Audited): a change that committed always has
// its record, and one whose record cannot be written is not made — so a
// caller is never told "failed" about something that happened. A failed
// mutation is audited afterwards, as Finish does, and its error returned.
func (s *Service) Audited(ctx context.Context, p Principal, action, object string, fn func(ctx context.Context) error) error {
	ev := store.AuditEvent{At: s.now(), InstanceID: p.InstanceID, Actor: p.Actor(), Action: action, Object: object,
		Outcome: OutcomeSuccess, Source: p.Source, RequestID: p.RequestID}
	ev.ID = fmt.Sprintf("%016x%s", ev.At.UnixNano(), randomID(4))
	err := s.Store.Audited(ctx, ev, fn)
	if err != nil {
		_ = s.audit(ctx, p, action, object, err, "") // the refusal or failure; err is the answer either way
		return err
	}
	s.Audit.committed([]store.AuditEvent{ev})
	return nil
}

// Record audits an action another domain package decided (a token it
// issued or refused), with non-secret detail.
func (s *Service) Record(ctx context.Context, p Principal, action, object string, err error, detail string) error {
	return s.audit(ctx, p, action, object, err, detail)
}
