package apis

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"math/big"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// BasicAuthUser is the user name of a runtime's flow basic credential.
const BasicAuthUser = "flows"

// basicAuthPrefix marks flow basic-auth passwords, so leak scanners can
// tell them from other text.
const basicAuthPrefix = "slfb_"

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

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func newPassword() secret.Value {
	b := []byte(basicAuthPrefix)
	for i := 0; i < 36; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(base62))))
		if err != nil {
			panic("apis: system randomness failed: " + err.Error())
		}
		b = append(b, base62[n.Int64()])
	}
	return secret.New(string(b))
}
