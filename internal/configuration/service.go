package configuration

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// MaxDataSize bounds the decoded data of one configuration.
const MaxDataSize = 4 << 20

// Service manages the configurations of an instance.
type Service struct {
	Store   store.Store
	Keyring *secret.Keyring
	IAM     *iam.Service // for auditing
	Now     clock.Func
	// InUse refuses deleting a configuration that runtimes use (unless
	// force); nil allows every delete.
	InUse func(ctx context.Context, instanceID, kind, name string, force bool) error
	// MaxArchiveInflated is the quota of bytes one zip configuration
	// (generic, policyproject, loopbackdatasource) may inflate to: every
	// replica unpacks it (0: DefaultMaxArchiveInflated).
	MaxArchiveInflated int64
}

// DefaultMaxArchiveInflated is the default of Service.MaxArchiveInflated.
const DefaultMaxArchiveInflated = 16 << 20

func (s *Service) now() time.Time { return s.Now.Now().UTC() }

// Input is a configuration as a caller writes it. Data nil means "keep
// the current data" (a GET edited and PUT back carries none).
type Input struct {
	Name        string
	Type        string
	Description string
	Data        []byte
}

// aad binds sealed data to its instance and name, so sealed bytes copied
// to another row do not open.
func aad(instanceID, name string) []byte { return []byte("configuration/" + instanceID + "/" + name) }

// Put creates or replaces a configuration; createOnly refuses an existing
// name. Data is validated against its type before anything is written.
func (s *Service) Put(ctx context.Context, p iam.Principal, in Input, createOnly bool) (store.Configuration, bool, error) {
	object := "configuration/" + in.Name
	if err := resource.ValidateName("configuration", in.Name); err != nil {
		return store.Configuration{}, false, iam.Invalidf("%s", err.Error())
	}
	if in.Type == "" {
		return store.Configuration{}, false, iam.Invalidf("spec.type is missing: use one of %s", TypeNames())
	}
	if _, ok := Lookup(in.Type); !ok {
		return store.Configuration{}, false, iam.Invalidf("spec.type %q is not a configuration type: use one of %s", in.Type, TypeNames())
	}
	if len(in.Description) > 1024 {
		return store.Configuration{}, false, iam.Invalidf("spec.description is longer than 1024 characters")
	}
	if len(in.Data) > MaxDataSize {
		return store.Configuration{}, false, iam.Invalidf("spec.data is %d bytes decoded; the limit is %d", len(in.Data), MaxDataSize)
	}
	data := in.Data
	if data == nil {
		cur, err := s.Store.GetConfiguration(ctx, p.InstanceID, in.Name)
		if errors.Is(err, store.ErrNotFound) || createOnly {
			return store.Configuration{}, false, iam.Invalidf("spec.data is missing: give the configuration's data, base64-encoded")
		}
		if err != nil {
			return store.Configuration{}, false, err
		}
		if data, err = s.Keyring.Open(cur.SealedData, aad(p.InstanceID, in.Name)); err != nil {
			return store.Configuration{}, false, err
		}
	}
	if err := s.checkInflated(in.Type, data); err != nil {
		return store.Configuration{}, false, s.IAM.Finish(ctx, p, "configuration.update", object, err)
	}
	if err := Validate(in.Type, data); err != nil {
		return store.Configuration{}, false, iam.Invalidf("%s", err.Error())
	}
	sealed, err := s.Keyring.Seal(data, aad(p.InstanceID, in.Name))
	if err != nil {
		return store.Configuration{}, false, err
	}
	now := s.now()
	c := store.Configuration{InstanceID: p.InstanceID, Name: in.Name, Type: in.Type, Description: in.Description,
		SealedData: sealed, Size: int64(len(data)), CreatedAt: now, CreatedBy: p.Actor(), UpdatedAt: now, UpdatedBy: p.Actor()}
	created, err := s.Store.PutConfiguration(ctx, c, createOnly)
	err = iam.StoreErr(err, "configuration "+in.Name)
	action := "configuration.update"
	if created {
		action = "configuration.create"
	}
	if err := s.IAM.Finish(ctx, p, action, object, err); err != nil {
		return store.Configuration{}, false, err
	}
	out, err := s.Store.GetConfiguration(ctx, p.InstanceID, in.Name)
	out.SealedData = nil
	return out, created, err
}

// Get reads a configuration's record; its data is never returned.
func (s *Service) Get(ctx context.Context, p iam.Principal, name string) (store.Configuration, error) {
	c, err := s.Store.GetConfiguration(ctx, p.InstanceID, name)
	c.SealedData = nil
	return c, iam.StoreErr(err, "configuration "+name)
}

// List lists a page of the instance's configurations, by name.
func (s *Service) List(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[store.Configuration], error) {
	return iam.PageOf(req, []string{"configurations", p.InstanceID}, func(pg store.Page) ([]store.Configuration, error) {
		return s.Store.ListConfigurations(ctx, p.InstanceID, pg)
	})
}

// Delete removes a configuration; one that runtimes use is refused unless
// force is set.
func (s *Service) Delete(ctx context.Context, p iam.Principal, name string, force bool) error {
	if _, err := s.Store.GetConfiguration(ctx, p.InstanceID, name); err != nil {
		return iam.StoreErr(err, "configuration "+name)
	}
	if s.InUse != nil {
		if err := s.InUse(ctx, p.InstanceID, "configuration", name, force); err != nil {
			return s.IAM.Finish(ctx, p, "configuration.delete", "configuration/"+name, err) // refused: audited too
		}
	}
	err := iam.StoreErr(s.Store.DeleteConfiguration(ctx, p.InstanceID, name), "configuration "+name)
	return s.IAM.Finish(ctx, p, "configuration.delete", "configuration/"+name, err)
}

// Data opens a configuration's data, for materialising a runtime. Callers
// must treat the result as secret.
func (s *Service) Data(ctx context.Context, instanceID, name string) (store.Configuration, []byte, error) {
	c, err := s.Store.GetConfiguration(ctx, instanceID, name)
	if err != nil {
		return c, nil, err
	}
	data, err := s.Keyring.Open(c.SealedData, aad(instanceID, name))
	c.SealedData = nil
	return c, data, err
}

// checkInflated refuses a zip configuration that inflates past the quota,
// before validation unpacks it.
func (s *Service) checkInflated(typeName string, data []byte) error {
	switch typeName {
	case "generic", "policyproject", "loopbackdatasource":
	default:
		return nil
	}
	limit := s.MaxArchiveInflated
	if limit <= 0 {
		limit = DefaultMaxArchiveInflated
	}
	if total, ok := inflatedSize(data); ok && total > limit {
		return iam.Forbiddenf("quota exceeded: the archive inflates to %d bytes, the quota of a configuration archive is %d bytes (--quota-config-archive)", total, limit)
	}
	return nil
}
