package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// newBackupCommand and newRestoreCommand are the operator's backups of the
// embedded store. Like master-key rotate they work on the store directly.
func newBackupCommand() *cobra.Command {
	var sf storeFlags
	cmd := &cobra.Command{
		Use:   "backup FILE",
		Short: "Write an online, consistent copy of the SQLite store to FILE",
		Long: `Write an online, consistent copy of the embedded SQLite store to FILE
(which must not exist), while 'sluice serve' keeps serving: every write
acknowledged before the backup started is in the copy. FILE is private
(0600) and synced to disk before the command returns.

The master key is not in the backup, on purpose: a backup without it
reveals no secret. Keep <data-dir>/master.key (or your SLUICE_MASTER_KEY)
apart from the backups; a restore needs both. 'sluice restore' puts a
backup in place.

A PostgreSQL store is backed up with pg_dump (docs/backup.md).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := store.Backup(context.Background(), sf.store, sf.dataDir, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "backup written: %s (%d bytes, schema version %d)\n", info.Path, info.Bytes, info.SchemaVersion)
			if os.Getenv("SLUICE_MASTER_KEY") == "" {
				if mk, err := secret.ReadKeyFile(filepath.Join(sf.dataDir, secret.KeyFileName)); err == nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "the master key is not in the backup: keep %s (fingerprint %s) apart from it; a restore needs both\n",
						filepath.Join(sf.dataDir, secret.KeyFileName), mk.Fingerprint())
				}
			} else {
				fmt.Fprintln(cmd.ErrOrStderr(), "the master key is not in the backup: a restore needs the SLUICE_MASTER_KEY this store runs with")
			}
			return nil
		},
	}
	sf.register(cmd)
	return cmd
}

func newRestoreCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "restore BACKUP",
		Short: "Put a backup in place as the SQLite store of a data dir that has none",
		Long: `Put a file written by 'sluice backup' in place as the SQLite store of
--data-dir, which must hold no store yet (restore never overwrites one).
The backup is checked first: it must be a Sluice store whose schema this
binary knows.

Then give the control plane the master key the store was backed up with:
copy master.key into the data dir, or set SLUICE_MASTER_KEY. Without it
'sluice serve' refuses to start and says so; with another key it refuses
too, naming the key's fingerprint.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := store.Restore(context.Background(), args[0], dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "restored %s (%d bytes, schema version %d)\n", info.Path, info.Bytes, info.SchemaVersion)
			if _, err := os.Stat(filepath.Join(dataDir, secret.KeyFileName)); errors.Is(err, os.ErrNotExist) && os.Getenv("SLUICE_MASTER_KEY") == "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "now put the store's master key in %s (or set SLUICE_MASTER_KEY) before 'sluice serve'\n",
					filepath.Join(dataDir, secret.KeyFileName))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", "./sluice-data", "data directory to restore into (it must hold no store)")
	bindEnv(cmd, "data-dir", "SLUICE_DATA_DIR")
	return cmd
}
