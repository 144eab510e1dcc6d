package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrBackupElsewhere says a store is not backed up by Sluice itself:
// PostgreSQL is backed up with its own tools (docs/backup.md).
var ErrBackupElsewhere = errors.New("a PostgreSQL store is backed up with pg_dump, not by sluice: see docs/backup.md")

// BackupInfo describes a finished backup.
type BackupInfo struct {
	Path          string
	Bytes         int64
	SchemaVersion int
}

// Backup writes an online, consistent copy of the store named by dsn (as
// Open takes it) to out, which must not exist. SQLite's VACUUM INTO reads
// one snapshot of the database while the control plane keeps writing, so
// every write acknowledged before the backup started is in it, and none is
// half in it. The BAR content the snapshot names, kept as files beside the
// database (blobfiles.go) and kept from removal meanwhile, is copied into
// the backup's blob_chunks, so a backup is one self-contained file; the
// store opened on a restored copy moves it back into files. The copy is
// private (0600) and synced before Backup returns. It opens the database without migrating it: a backup
// never changes what it copies.
func Backup(ctx context.Context, dsn, dataDir, out string) (BackupInfo, error) {
	var path string
	switch {
	case dsn == "":
		path = filepath.Join(dataDir, DefaultSQLiteFile)
	case strings.HasPrefix(dsn, "sqlite:"):
		path = strings.TrimPrefix(strings.TrimPrefix(dsn, "sqlite:"), "//")
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return BackupInfo{}, ErrBackupElsewhere
	default:
		return BackupInfo{}, fmt.Errorf("store %q is not understood: use sqlite:PATH, or leave it empty for SQLite in the data dir", redactDSN(dsn))
	}
	if _, err := os.Stat(path); err != nil {
		return BackupInfo{}, fmt.Errorf("no SQLite store at %s: %w", path, err)
	}
	if _, err := os.Lstat(out); err == nil {
		return BackupInfo{}, fmt.Errorf("%s exists already: a backup never overwrites a file", out)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return BackupInfo{}, fmt.Errorf("unable to open %s: %w", path, err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version); err != nil {
		return BackupInfo{}, fmt.Errorf("%s is not a Sluice store (no schema version): %w", path, err)
	}
	if err := createPrivate(out); err != nil {
		return BackupInfo{}, err
	}
	ok := false
	defer func() {
		if !ok {
			os.Remove(out)
		}
	}()
	// While the backup holds the content, the control plane removes none:
	// what the snapshot names is there to copy. Where that lock is not
	// available, content removed between the snapshot and its copy (its
	// BAR was replaced or deleted meanwhile) is no longer named by a newer
	// snapshot: the copy is taken again.
	release, err := holdContent(path + blobDirSuffix)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("unable to lock the BAR content of %s: %w", path, err)
	}
	defer release()
	for attempt := 1; ; attempt++ {
		err = backupOnce(ctx, db, path+blobDirSuffix, out)
		if err == nil {
			break
		}
		if !errors.Is(err, errContentGone) || attempt == 5 {
			return BackupInfo{}, err
		}
		if err := os.Remove(out); err != nil {
			return BackupInfo{}, err
		}
		if err := createPrivate(out); err != nil {
			return BackupInfo{}, err
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		return BackupInfo{}, err
	}
	ok = true
	return BackupInfo{Path: out, Bytes: st.Size(), SchemaVersion: version}, nil
}

// errContentGone is BAR content a snapshot names that was removed before
// it was copied.
var errContentGone = errors.New("store: BAR content was removed during the backup")

// createPrivate creates the backup's target empty and private: VACUUM
// INTO keeps an existing empty file's mode.
func createPrivate(out string) error {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("unable to create %s: %w", out, err)
	}
	return f.Close()
}

// backupOnce writes one snapshot of db to out, which exists empty, and
// copies into it the BAR content files in dir it names.
func backupOnce(ctx context.Context, db *sql.DB, dir, out string) error {
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, out); err != nil {
		return fmt.Errorf("unable to copy the database: %w", err)
	}
	cdb, err := sql.Open("sqlite", "file:"+(&url.URL{Path: out}).EscapedPath())
	if err != nil {
		return fmt.Errorf("unable to open %s: %w", out, err)
	}
	defer cdb.Close()
	cp := &sqlStore{db: cdb, d: sqliteDialect(), location: out}
	// Content still in chunks (a store this binary has not opened yet)
	// is in the snapshot already.
	rows, err := cdb.QueryContext(ctx, `SELECT sha256, MAX(size) FROM bar_files
		WHERE sha256 NOT IN (SELECT sha256 FROM blob_chunks) GROUP BY sha256`)
	if err != nil {
		return fmt.Errorf("unable to list the BAR content of the backup: %w", err)
	}
	type content struct {
		sha  string
		size int64
	}
	var todo []content
	for rows.Next() {
		var c content
		if err := rows.Scan(&c.sha, &c.size); err != nil {
			rows.Close()
			return fmt.Errorf("unable to list the BAR content of the backup: %w", err)
		}
		todo = append(todo, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("unable to list the BAR content of the backup: %w", err)
	}
	files := &blobFiles{dir: dir}
	for _, c := range todo {
		rc, err := files.open(c.sha)
		if errors.Is(err, ErrNotFound) {
			return errContentGone
		}
		if err != nil {
			return err
		}
		err = cp.inTx(ctx, func(tx *sql.Tx) error { return cp.writeChunks(ctx, tx, c.sha, c.size, rc) })
		rc.Close()
		if err != nil {
			return fmt.Errorf("unable to copy BAR content %s: %w", c.sha, err)
		}
	}
	if err := cdb.Close(); err != nil {
		return err
	}
	return syncFile(out)
}

// Restore puts a backup in place as the SQLite store of dataDir, which
// must hold none yet (a restore never overwrites a store). The backup is
// checked first: it must be a Sluice store whose schema this binary knows.
// The master key is not part of it: the control plane started on the
// restored data needs the key the store was backed up with.
func Restore(ctx context.Context, backup, dataDir string) (BackupInfo, error) {
	target := filepath.Join(dataDir, DefaultSQLiteFile)
	if _, err := os.Lstat(target); err == nil {
		return BackupInfo{}, fmt.Errorf("%s exists already: restore into a data dir without a store", target)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: backup}).EscapedPath()+"?mode=ro")
	if err != nil {
		return BackupInfo{}, err
	}
	var version int
	err = db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&version)
	db.Close()
	if err != nil {
		return BackupInfo{}, fmt.Errorf("%s is not a Sluice backup (no schema version): %w", backup, err)
	}
	ms, err := loadMigrations()
	if err != nil {
		return BackupInfo{}, err
	}
	if version > len(ms) {
		return BackupInfo{}, fmt.Errorf("the backup's schema is at version %d but this sluice binary knows only %d: restore with a newer sluice", version, len(ms))
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return BackupInfo{}, err
	}
	// Copied to a temporary name and renamed, so a crash never leaves a
	// half store where the control plane would open it.
	tmp := target + ".restoring"
	if err := copyFile(backup, tmp); err != nil {
		os.Remove(tmp)
		return BackupInfo{}, err
	}
	if err := os.Rename(tmp, target); err != nil {
		os.Remove(tmp)
		return BackupInfo{}, err
	}
	st, err := os.Stat(target)
	if err != nil {
		return BackupInfo{}, err
	}
	return BackupInfo{Path: target, Bytes: st.Size(), SchemaVersion: version}, syncDir(dataDir)
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := dst.ReadFrom(src); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
