package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

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
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		return iam.InitialCredentials{}, fmt.Errorf("data dir %q: %v", dataDir, err)
	}
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return iam.InitialCredentials{}, fmt.Errorf("data dir %s does not exist: run 'sluice serve' once first, or give the right --data-dir", abs)
	}
	if abs, _, err = prepareDataDir(abs); err != nil {
		return iam.InitialCredentials{}, err
	}
	st, err := store.Open(ctx, storeDSN, abs)
	if err != nil {
		return iam.InitialCredentials{}, err
	}
	defer st.Close()
	existing, err := st.ListInstances(ctx)
	if err != nil {
		return iam.InitialCredentials{}, err
	}
	if len(existing) == 0 {
		return iam.InitialCredentials{}, fmt.Errorf("the store %s has no instance yet: run 'sluice serve' once first (it creates the first instance), or give the right --data-dir/--store", st.Location())
	}
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
