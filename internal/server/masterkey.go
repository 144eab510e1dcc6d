package server

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// unlockSecrets finds the master key and opens the store's keyring with it.
//
// The key comes from SLUICE_MASTER_KEY when set, otherwise from the key file
// in the data dir. A key file is created only for a store that holds no
// sealed data yet: creating a fresh key for a store that already has data
// keys would only hide the real problem (a lost or misplaced key).
func unlockSecrets(ctx context.Context, st store.Store, dataDir string, envKey secret.Value, log *slog.Logger) (*secret.Keyring, error) {
	if !envKey.IsZero() {
		mk, err := secret.ParseMasterKey(envKey.Reveal())
		if err != nil {
			return nil, fmt.Errorf("SLUICE_MASTER_KEY: %w", err)
		}
		return openKeyring(ctx, st, mk, "SLUICE_MASTER_KEY")
	}
	keyPath := filepath.Join(dataDir, secret.KeyFileName)
	mk, err := secret.ReadKeyFile(keyPath)
	switch {
	case err == nil:
		kr, err := openKeyring(ctx, st, mk, keyPath)
		if errors.Is(err, secret.ErrWrongMasterKey) {
			// A rotation may have re-wrapped the store and then stopped
			// before renaming the new key file into place: finish it.
			if kr, ok := finishRotation(ctx, st, dataDir, log); ok {
				return kr, nil
			}
		}
		return kr, err
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	keys, err := st.ListDataKeys(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) > 0 {
		if kr, ok := finishRotation(ctx, st, dataDir, log); ok {
			return kr, nil
		}
		return nil, fmt.Errorf("the store holds sealed secrets but no master key was given: set SLUICE_MASTER_KEY or restore %s", keyPath)
	}
	mk, created, err := secret.LoadOrCreateKeyFile(dataDir)
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("created master key file", "path", keyPath, "fingerprint", mk.Fingerprint())
	}
	return openKeyring(ctx, st, mk, keyPath)
}

func openKeyring(ctx context.Context, st store.Store, mk secret.MasterKey, source string) (*secret.Keyring, error) {
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if errors.Is(err, secret.ErrWrongMasterKey) {
		return nil, fmt.Errorf("the master key from %s (fingerprint %s) does not open this store: start with the key the store was created or last rotated with: %w", source, mk.Fingerprint(), err)
	}
	return kr, err
}

func finishRotation(ctx context.Context, st store.Store, dataDir string, log *slog.Logger) (*secret.Keyring, bool) {
	next, err := secret.ReadKeyFile(filepath.Join(dataDir, secret.NextKeyFileName))
	if err != nil {
		return nil, false
	}
	kr, err := secret.OpenKeyring(ctx, st, next)
	if err != nil {
		return nil, false
	}
	if err := os.Remove(filepath.Join(dataDir, secret.KeyFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, false
	}
	if err := secret.ReplaceKeyFile(dataDir); err != nil {
		return nil, false
	}
	log.Warn("finished an interrupted master key rotation", "fingerprint", next.Fingerprint())
	return kr, true
}

// RotateMasterKey re-wraps the store's data keys under a new master key.
// With a key file, the new key is written to master.key.next first, the
// store re-wrapped, then the file renamed into place; with
// SLUICE_MASTER_KEY (current) the new key comes from newKey and the caller
// must switch every replica's SLUICE_MASTER_KEY to it.
func RotateMasterKey(ctx context.Context, storeDSN, dataDir string, envKey, newKey secret.Value, log *slog.Logger) (secret.MasterKey, error) {
	dataDir, _, err := prepareDataDir(dataDir)
	if err != nil {
		return secret.MasterKey{}, err
	}
	st, err := store.Open(ctx, storeDSN, dataDir)
	if err != nil {
		return secret.MasterKey{}, err
	}
	defer st.Close()
	var current secret.MasterKey
	if !envKey.IsZero() {
		if current, err = secret.ParseMasterKey(envKey.Reveal()); err != nil {
			return secret.MasterKey{}, fmt.Errorf("SLUICE_MASTER_KEY: %w", err)
		}
	} else if current, err = secret.ReadKeyFile(filepath.Join(dataDir, secret.KeyFileName)); err != nil {
		return secret.MasterKey{}, fmt.Errorf("no current master key: set SLUICE_MASTER_KEY or run in the data dir that holds %s: %w", secret.KeyFileName, err)
	}
	if _, err := openKeyring(ctx, st, current, "the current key"); err != nil {
		return secret.MasterKey{}, err
	}
	var next secret.MasterKey
	if !newKey.IsZero() {
		if next, err = secret.ParseMasterKey(newKey.Reveal()); err != nil {
			return secret.MasterKey{}, fmt.Errorf("SLUICE_NEW_MASTER_KEY: %w", err)
		}
	} else if next, err = secret.NewMasterKey(); err != nil {
		return secret.MasterKey{}, err
	}
	useFile := envKey.IsZero()
	if useFile {
		nextPath := filepath.Join(dataDir, secret.NextKeyFileName)
		_ = os.Remove(nextPath) // a leftover from a rotation that never re-wrapped anything
		if err := secret.WriteKeyFile(nextPath, next); err != nil {
			return secret.MasterKey{}, fmt.Errorf("unable to write %s: %w", nextPath, err)
		}
	}
	if err := secret.RotateMasterKey(ctx, st, current, next); err != nil {
		return secret.MasterKey{}, err
	}
	if useFile {
		if err := os.Remove(filepath.Join(dataDir, secret.KeyFileName)); err != nil {
			return secret.MasterKey{}, err
		}
		if err := secret.ReplaceKeyFile(dataDir); err != nil {
			return secret.MasterKey{}, err
		}
	}
	log.Info("master key rotated", "old_fingerprint", current.Fingerprint(), "new_fingerprint", next.Fingerprint())
	return next, nil
}

// RotateSigningKey creates a new token signing key of alg in the store.
// Running control planes on PostgreSQL start signing with it within
// milliseconds (the change feed), on SQLite within a minute (or at once
// when they meet a token it signed); tokens signed with the old key keep
// working until they expire, and the old key stays in the JWKS until then.
func RotateSigningKey(ctx context.Context, storeDSN, dataDir, alg string, envKey secret.Value, lifetime time.Duration, log *slog.Logger) (string, error) {
	dataDir, _, err := prepareDataDir(dataDir)
	if err != nil {
		return "", err
	}
	st, err := store.Open(ctx, storeDSN, dataDir)
	if err != nil {
		return "", err
	}
	defer st.Close()
	kr, err := unlockSecrets(ctx, st, dataDir, envKey, log)
	if err != nil {
		return "", err
	}
	tokens := &iam.Tokens{Store: st, Keyring: kr, Alg: alg, Lifetime: lifetime}
	if err := tokens.Load(ctx); err != nil {
		return "", err
	}
	if err := tokens.Rotate(ctx); err != nil {
		return "", err
	}
	return tokens.ActiveKeyID(), nil
}
