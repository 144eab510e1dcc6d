package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// openExistingStore opens the store of a control plane that has been
// started before, for the operator's commands. It refuses a data dir that
// does not exist and a store without an instance: the first instance is
// made by the first `sluice serve`, which also creates the master key, and
// an operator who points a command at an empty store has most likely given
// the wrong --data-dir or --store.
func openExistingStore(ctx context.Context, storeDSN, dataDir string) (store.Store, string, error) {
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return nil, "", fmt.Errorf("data dir %q: %v", dataDir, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("data dir %s does not exist: run 'sluice serve' once first, or give the right --data-dir", abs)
	}
	if abs, _, err = prepareDataDir(abs); err != nil {
		return nil, "", err
	}
	st, err := store.Open(ctx, storeDSN, abs)
	if err != nil {
		return nil, "", err
	}
	existing, err := st.ListInstances(ctx)
	if err == nil && len(existing) == 0 {
		err = fmt.Errorf("the store %s has no instance yet: run 'sluice serve' once first (it creates the first instance), or give the right --data-dir/--store", st.Location())
	}
	if err != nil {
		st.Close()
		return nil, "", err
	}
	return st, abs, nil
}

// CreateInstance adds a tenant to the store of a control plane, with an
// admin user, an API key and a client credential, and returns their
// clear-text secrets, which exist nowhere else. It may run while the
// control plane serves: SQLite in WAL mode admits a second writer process,
// and PostgreSQL is shared anyway.
//
// It refuses a store that was never started (no instance yet): the first
// instance is made by the first `sluice serve`, which also creates the
// master key, and an operator who points this command at an empty store
// has most likely given the wrong --data-dir or --store.
func CreateInstance(ctx context.Context, storeDSN, dataDir string, envKey secret.Value, name string, log *slog.Logger) (iam.InitialCredentials, error) {
	if err := resource.ValidateName("instance", name); err != nil {
		return iam.InitialCredentials{}, err
	}
	st, abs, err := openExistingStore(ctx, storeDSN, dataDir)
	if err != nil {
		return iam.InitialCredentials{}, err
	}
	defer st.Close()
	// Unlocking proves the master key at hand is the store's, so an instance
	// is never added to a store this operator cannot otherwise run.
	if _, err := unlockSecrets(ctx, st, abs, envKey, log); err != nil {
		return iam.InitialCredentials{}, err
	}
	auditor := iam.NewAuditor(st)
	defer auditor.Close()
	svc := &iam.Service{Store: st, Audit: auditor}
	creds, err := svc.CreateInstance(ctx, name)
	if err != nil {
		return iam.InitialCredentials{}, fmt.Errorf("unable to create instance %s: %w", name, err)
	}
	log.Info("instance created", "instance_id", creds.InstanceID, "name", name)
	return creds, nil
}

// InstanceSummary is one instance with what it holds.
type InstanceSummary struct {
	store.Instance
	Contents store.InstanceContents
}

// ListInstances lists the instances of a control plane's store with what
// each holds. It needs no master key: it reads no secret.
func ListInstances(ctx context.Context, storeDSN, dataDir string) ([]InstanceSummary, error) {
	st, _, err := openExistingStore(ctx, storeDSN, dataDir)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	list, err := st.ListInstances(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]InstanceSummary, 0, len(list))
	for _, in := range list {
		c, err := st.InstanceContents(ctx, in.ID)
		if err != nil {
			return nil, fmt.Errorf("unable to read instance %s: %w", in.ID, err)
		}
		out = append(out, InstanceSummary{Instance: in, Contents: c})
	}
	return out, nil
}

// InstanceHasRuntimes is the refusal to delete an instance whose
// integration runtimes still exist, without force.
type InstanceHasRuntimes struct {
	Instance store.Instance
	Runtimes []string
}

func (e *InstanceHasRuntimes) Error() string {
	return fmt.Sprintf("instance %s (%s) has %d integration runtime(s): %s", e.Instance.ID, e.Instance.Name, len(e.Runtimes), strings.Join(e.Runtimes, ", "))
}

// DeleteInstance removes an instance, named by its id or (when no id
// matches and the name is unambiguous) its name, with everything in it,
// and returns what was removed. While it has integration runtimes it is
// refused (*InstanceHasRuntimes) unless force is set; a control plane
// serving the store then stops their processes within a reconcile pass
// (or at its next start). The last instance of a store is never deleted:
// a store without one is one no command accepts any more.
func DeleteInstance(ctx context.Context, storeDSN, dataDir string, envKey secret.Value, ref string, force bool, log *slog.Logger) (InstanceSummary, error) {
	st, abs, err := openExistingStore(ctx, storeDSN, dataDir)
	if err != nil {
		return InstanceSummary{}, err
	}
	defer st.Close()
	list, err := st.ListInstances(ctx)
	if err != nil {
		return InstanceSummary{}, err
	}
	var target *store.Instance
	var byName []store.Instance
	for i, in := range list {
		if in.ID == ref {
			target = &list[i]
		}
		if in.Name == ref {
			byName = append(byName, in)
		}
	}
	switch {
	case target != nil:
	case len(byName) == 1:
		target = &byName[0]
	case len(byName) > 1:
		return InstanceSummary{}, fmt.Errorf("%d instances are named %s: give the instance id ('sluice instances list' shows them)", len(byName), ref)
	default:
		return InstanceSummary{}, fmt.Errorf("no instance has the id or name %s ('sluice instances list' shows them)", ref)
	}
	if len(list) == 1 {
		return InstanceSummary{}, fmt.Errorf("instance %s (%s) is the store's only instance: it is not deleted (remove the data dir, or drop the database, to start over)", target.ID, target.Name)
	}
	// As for create: only an operator who holds the store's master key
	// changes its tenants.
	if _, err := unlockSecrets(ctx, st, abs, envKey, log); err != nil {
		return InstanceSummary{}, err
	}
	c, err := st.InstanceContents(ctx, target.ID)
	if err != nil {
		return InstanceSummary{}, err
	}
	if len(c.Runtimes) > 0 && !force {
		return InstanceSummary{}, &InstanceHasRuntimes{Instance: *target, Runtimes: c.Runtimes}
	}
	if c, err = st.DeleteInstance(ctx, target.ID); err != nil {
		return InstanceSummary{}, fmt.Errorf("unable to delete instance %s: %w", target.ID, err)
	}
	log.Info("instance deleted", "instance_id", target.ID, "name", target.Name, "runtimes", len(c.Runtimes))
	return InstanceSummary{Instance: *target, Contents: c}, nil
}
