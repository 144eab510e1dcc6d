package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// blobFiles keeps the SQLite store's BAR content as files named by their
// SHA-256 in a directory beside the database, so the database holds only
// the records. Moving 50 MB through SQLite's pages, its WAL and the
// checkpoint cost twice the work of receiving the upload (bench/README.md);
// a file is written once and, when the upload was spooled into the same
// directory (CreateBlobSpool), only linked into place.
//
// The rules that keep acknowledged content and the records in step:
//   - a content file appears only whole: written to a spool file in the
//     directory, fsynced, then hard-linked under its hash, and the
//     directory fsynced, all before the record's transaction commits;
//   - the link is made inside that write transaction, and a file is removed
//     only inside another write transaction that sees no record naming it,
//     after the transaction that dropped the last record committed: SQLite's
//     write lock orders the two, so a file a committed record names is never
//     removed, whichever process holds the lock;
//   - a file left without a record (a transaction that rolled back, a
//     crash between link and commit, a removal that failed) is only wasted
//     space, removed when the store is next opened;
//   - a backup holds a shared lock on the directory while it copies what
//     its snapshot names (holdContent), and removals wait for it.
type blobFiles struct {
	dir string

	mu      sync.Mutex
	pending map[string]bool // content that may have lost its last record
}

// blobDirSuffix names the content directory after its database file, so
// two stores in one directory never collect each other's files.
const blobDirSuffix = "-bars"

// spoolPattern names the spool files, which are never a hash.
const spoolPattern = ".spool-*"

// contentLockFile is the lock a backup holds while it copies content
// files, and removals take before they remove one (holdContent).
const contentLockFile = ".lock"

func newBlobFiles(dbPath string) (*blobFiles, error) {
	dir := dbPath + blobDirSuffix
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: unable to create the BAR content directory %s: %w", dir, err)
	}
	return &blobFiles{dir: dir, pending: map[string]bool{}}, nil
}

// isSHA256 reports whether name is a hex SHA-256, the only names content
// files have (so a record can never name a path outside the directory).
func isSHA256(name string) bool {
	if len(name) != 64 {
		return false
	}
	for _, c := range name {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

func (b *blobFiles) path(sha string) (string, error) {
	if !isSHA256(sha) {
		return "", fmt.Errorf("store: %q is not a SHA-256 of BAR content", sha)
	}
	return filepath.Join(b.dir, sha), nil
}

// BlobSpooler is a store that keeps BAR content as files (SQLite): an
// upload spooled into a file from CreateBlobSpool becomes the stored
// content by a link, where any other reader given to PutBARFile is copied.
type BlobSpooler interface {
	CreateBlobSpool() (*os.File, error)
}

var _ BlobSpooler = (*sqliteStore)(nil)

// CreateBlobSpool creates a file to spool an upload into, in the content
// directory: PutBARFile then links it into place instead of copying it.
// The caller closes and removes it.
func (s *sqliteStore) CreateBlobSpool() (*os.File, error) {
	return s.files.createSpool()
}

// createSpool creates a spool file in the directory, locked for as long
// as it is open (lockSpool), so that the sweep of another process opening
// the store leaves it alone. One that the sweep opened between its
// creation and its lock, or removed, is given up for another.
func (b *blobFiles) createSpool() (*os.File, error) {
	for attempt := 1; ; attempt++ {
		f, err := os.CreateTemp(b.dir, spoolPattern)
		if err != nil {
			return nil, err
		}
		err = lockSpool(f)
		if err == nil {
			var fst, pst os.FileInfo
			if fst, err = f.Stat(); err == nil {
				if pst, err = os.Stat(f.Name()); err == nil && !os.SameFile(fst, pst) {
					err = fs.ErrNotExist
				}
			}
		}
		if err == nil {
			return f, nil
		}
		f.Close()
		os.Remove(f.Name())
		if attempt == 3 {
			return nil, fmt.Errorf("store: unable to create a spool file for BAR content: %w", err)
		}
	}
}

// spool returns a synced file in the directory holding exactly size bytes
// of content, and the function that removes it when it was made here. An
// *os.File from CreateBlobSpool is used as it is.
func (b *blobFiles) spool(content io.Reader, size int64) (string, func(), error) {
	if f, ok := content.(*os.File); ok && filepath.Dir(f.Name()) == b.dir {
		st, err := f.Stat()
		if err != nil {
			return "", nil, fmt.Errorf("store: unable to read BAR content: %w", err)
		}
		if st.Size() != size {
			return "", nil, fmt.Errorf("store: BAR content is %d bytes, expected %d", st.Size(), size)
		}
		if err := f.Sync(); err != nil {
			return "", nil, fmt.Errorf("store: unable to sync BAR content: %w", err)
		}
		return f.Name(), func() {}, nil
	}
	f, err := b.createSpool()
	if err != nil {
		return "", nil, fmt.Errorf("store: unable to write BAR content: %w", err)
	}
	remove := func() {
		os.Remove(f.Name())
		f.Close() // after the removal: the lock keeps the sweep off it until then
	}
	n, err := io.Copy(f, content)
	if err == nil && n != size {
		err = fmt.Errorf("store: BAR content is %d bytes, expected %d", n, size)
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		remove()
		return "", nil, fmt.Errorf("store: unable to write BAR content: %w", err)
	}
	return f.Name(), remove, nil
}

// link puts the synced spool file in place as sha's content; content that
// is there already is identical (its name is its hash) and kept.
func (b *blobFiles) link(spool, sha string) error {
	final, err := b.path(sha)
	if err != nil {
		return err
	}
	if err := os.Link(spool, final); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("store: unable to store BAR content: %w", err)
	}
	// The new name must be on disk before the record that uses it commits.
	if err := syncDir(b.dir); err != nil {
		return fmt.Errorf("store: unable to sync the BAR content directory: %w", err)
	}
	b.mark(sha)
	return nil
}

// mark notes content that may have lost its last record (or never got
// one), to be checked by collect after the transaction.
func (b *blobFiles) mark(sha string) {
	b.mu.Lock()
	b.pending[sha] = true
	b.mu.Unlock()
}

func (b *blobFiles) open(sha string) (io.ReadCloser, error) {
	p, err := b.path(sha)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("store: unable to open BAR content: %w", err)
	}
	return f, nil
}

// collectFiles removes the marked content no record names, in a write
// transaction of its own (see blobFiles). It runs after the transaction
// that marked it, never inside it: a removal inside a transaction that
// then rolled back would lose content a record still names. A failure
// leaves the files for the sweep at the next open; the change that marked
// them has committed either way, so it is not reported.
func (s *sqliteStore) collectFiles(ctx context.Context) {
	b := s.files
	b.mu.Lock()
	shas := make([]string, 0, len(b.pending))
	for sha := range b.pending {
		shas = append(shas, sha)
	}
	clear(b.pending)
	b.mu.Unlock()
	if len(shas) == 0 {
		return
	}
	release, ok := tryRemovals(b.dir)
	if !ok {
		// A backup is copying content: the removals wait for the next
		// write, or the next open.
		for _, sha := range shas {
			b.mark(sha)
		}
		return
	}
	defer release()
	// The removal is not the request's: it completes even when the
	// request that caused it is cancelled.
	ctx = context.WithoutCancel(ctx)
	_ = s.inTx(ctx, func(tx *sql.Tx) error {
		for _, sha := range shas {
			if err := s.removeUnused(ctx, tx, sha); err != nil {
				return err
			}
		}
		return nil
	})
}

// removeUnused removes sha's file when no record names it; tx holds the
// write lock.
func (s *sqliteStore) removeUnused(ctx context.Context, tx *sql.Tx, sha string) error {
	var used int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM bar_files WHERE sha256 = $1`), sha).Scan(&used); err != nil {
		return s.mapErr("look up BAR content", err)
	}
	if used > 0 {
		return nil
	}
	p, err := s.files.path(sha)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// afterWrite collects content a top-level write may have left unused; one
// inside a caller's transaction is collected when Locked commits it.
func (s *sqliteStore) afterWrite(ctx context.Context) {
	if s.txOf(ctx) == nil {
		s.collectFiles(ctx)
	}
}

func (s *sqliteStore) PutBARFile(ctx context.Context, f BARFile, content io.Reader) (bool, error) {
	created, err := s.sqlStore.PutBARFile(ctx, f, content)
	s.afterWrite(ctx)
	return created, err
}

func (s *sqliteStore) DeleteBARFile(ctx context.Context, instanceID, name string) error {
	err := s.sqlStore.DeleteBARFile(ctx, instanceID, name)
	s.afterWrite(ctx)
	return err
}

func (s *sqliteStore) DeleteInstance(ctx context.Context, instanceID string) (InstanceContents, error) {
	c, err := s.sqlStore.DeleteInstance(ctx, instanceID)
	s.afterWrite(ctx)
	return c, err
}

// openFiles moves content an older store (or a backup, see Backup) holds
// in blob_chunks into files, then removes the content files no record
// names. It runs once, when the store opens.
func (s *sqliteStore) openFiles(ctx context.Context) error {
	var shas []string
	rows, err := s.query(ctx, `SELECT DISTINCT sha256 FROM blob_chunks`)
	if err != nil {
		return s.mapErr("list BAR content", err)
	}
	for rows.Next() {
		var sha string
		if err := rows.Scan(&sha); err != nil {
			rows.Close()
			return s.mapErr("list BAR content", err)
		}
		shas = append(shas, sha)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return s.mapErr("list BAR content", err)
	}
	for _, sha := range shas {
		if err := s.moveChunks(ctx, sha); err != nil {
			return err
		}
	}
	return s.sweepFiles(ctx)
}

// moveChunks writes sha's chunks to its file, then deletes them.
func (s *sqliteStore) moveChunks(ctx context.Context, sha string) error {
	var size int64
	if err := s.queryRow(ctx, `SELECT COALESCE(SUM(length(data)), 0) FROM blob_chunks WHERE sha256 = $1`, sha).Scan(&size); err != nil {
		return s.mapErr("read BAR content", err)
	}
	rc, err := s.openChunks(ctx, sha)
	if err != nil {
		return err
	}
	spool, remove, err := s.files.spool(rc, size)
	if err != nil {
		return err
	}
	defer remove()
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.files.link(spool, sha); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`DELETE FROM blob_chunks WHERE sha256 = $1`), sha)
		return s.mapErr("remove moved BAR content", err)
	})
}

// sweepFiles removes content files no record names, under the write lock
// (see blobFiles), and spool files no upload holds open: those a crash
// left (an upload in another process on the same store holds its lock).
func (s *sqliteStore) sweepFiles(ctx context.Context) error {
	entries, err := os.ReadDir(s.files.dir)
	if err != nil {
		return fmt.Errorf("store: unable to list the BAR content directory: %w", err)
	}
	for _, e := range entries {
		if ok, _ := filepath.Match(spoolPattern, e.Name()); ok {
			p := filepath.Join(s.files.dir, e.Name())
			if abandoned, release := spoolAbandoned(p); abandoned {
				os.Remove(p)
				release()
			}
		}
	}
	release, ok := tryRemovals(s.files.dir)
	if !ok {
		return nil // a backup is copying content: removed at a later open
	}
	defer release()
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, e := range entries {
			if isSHA256(e.Name()) {
				if err := s.removeUnused(ctx, tx, e.Name()); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
