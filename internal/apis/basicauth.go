package apis

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// BasicAuthUser is the user name of a runtime's flow basic credential.
const BasicAuthUser = "flows"

// basicAuthSpec is what is stored: the hash, never the password.
type basicAuthSpec struct {
	Username     string `json:"username"`
	PasswordHash string `json:"passwordHash"`
}

// forceBasicAuth reports whether a runtime spec turns App Connect's
// spec.forceFlowBasicAuth.enabled on.
func forceBasicAuth(rs orchestrator.Spec) bool {
	var v struct {
		Enabled bool `json:"enabled"`
	}
	return len(rs.ForceFlowBasicAuth) > 0 && json.Unmarshal(rs.ForceFlowBasicAuth, &v) == nil && v.Enabled
}

// GenerateBasicAuth makes a new basic credential for the flows of
// runtime name (replacing any earlier one) and returns it: the password
// is shown this once and stored only as a hash. The runtime enforces it
// while its spec.forceFlowBasicAuth.enabled is true.
func (s *Service) GenerateBasicAuth(ctx context.Context, p iam.Principal, runtime string) (string, secret.Value, error) {
	object := "integrationRuntime/" + runtime + "/basicAuth"
	if _, err := s.Store.GetRuntime(ctx, p.InstanceID, runtime); err != nil {
		return "", secret.Value{}, iam.StoreErr(err, "integration runtime "+runtime)
	}
	pw := newPassword()
	spec, _ := json.Marshal(basicAuthSpec{Username: BasicAuthUser, PasswordHash: gateway.HashSecret(pw.Reveal())})
	now := s.now()
	_, _, err := s.Store.PutPublished(ctx, store.PublishedObject{InstanceID: p.InstanceID, Kind: kindBasicAuth, Name: runtime, ID: newID(),
		Spec: string(spec), CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()})
	if err := s.IAM.Finish(ctx, p, "basicAuth.generate", object, iam.StoreErr(err, "basic credential of "+runtime)); err != nil {
		return "", secret.Value{}, err
	}
	s.Notify()
	return BasicAuthUser, pw, nil
}

// kindBasicAuth keeps a runtime's flow basic credential with the
// published objects (named after the runtime).
const kindBasicAuth = "basicauth"

func (s *Service) basicAuth(ctx context.Context, instanceID, runtime string) ([]gateway.BasicCredential, error) {
	o, err := s.Store.GetPublished(ctx, instanceID, kindBasicAuth, runtime)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var b basicAuthSpec
	if err := json.Unmarshal([]byte(o.Spec), &b); err != nil {
		return nil, err
	}
	return []gateway.BasicCredential{{Username: b.Username, PasswordHash: b.PasswordHash}}, nil
}

// newPassword is a fresh flow basic password in the format of every
// secret Sluice issues: slfb_, 30 random base62 characters and a CRC32
// checksum (package secret), which the gateway checks before hashing.
func newPassword() secret.Value { return secret.NewToken(gateway.BasicPasswordPrefix) }
