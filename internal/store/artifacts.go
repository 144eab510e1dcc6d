package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"time"
)

// Configuration is a configuration record; Data is sealed by the caller.
type Configuration struct {
	InstanceID  string
	Name        string
	Type        string
	Description string
	SealedData  []byte // empty in lists
	Size        int64  // size of the clear data
	CreatedAt   time.Time
	CreatedBy   string
	UpdatedAt   time.Time
	UpdatedBy   string
}

// BARFile is a BAR file's record; its bytes are named by SHA256: files in
// the SQLite store's content directory (blobfiles.go), chunks in
// PostgreSQL's blob_chunks.
type BARFile struct {
	InstanceID string
	Name       string
	SHA256     string
	Size       int64
	Info       string // JSON description of the archive (flows, endpoints)
	UploadedAt time.Time
	UploadedBy string
}

// ChunkSize is how BAR bytes are cut for storage in blob_chunks
// (PostgreSQL, and SQLite backups): small enough that no
// read or write holds much in memory, large enough that a 50 MB archive is
// only 50 rows.
const ChunkSize = 1 << 20

// Artifacts is the part of the store that holds configurations and BAR files.
type Artifacts interface {
	// PutConfiguration creates or replaces; createOnly refuses to replace
	// (ErrConflict). created reports whether the name was new.
	PutConfiguration(ctx context.Context, c Configuration, createOnly bool) (created bool, err error)
	GetConfiguration(ctx context.Context, instanceID, name string) (Configuration, error)
	// ListConfigurations lists one page of the instance's configurations,
	// by name, without their data.
	ListConfigurations(ctx context.Context, instanceID string, pg Page) ([]Configuration, error)
	DeleteConfiguration(ctx context.Context, instanceID, name string) error

	// PutBARFile stores content (exactly f.Size bytes hashing to f.SHA256)
	// and the record, replacing a BAR of the same name, in one
	// transaction. Chunks no record uses any more are removed.
	PutBARFile(ctx context.Context, f BARFile, content io.Reader) (created bool, err error)
	GetBARFile(ctx context.Context, instanceID, name string) (BARFile, error)
	// ListBARFiles lists one page of the instance's BAR files, by name.
	ListBARFiles(ctx context.Context, instanceID string, pg Page) ([]BARFile, error)
	DeleteBARFile(ctx context.Context, instanceID, name string) error
	// OpenBlob streams the bytes stored under sha256, a chunk at a time.
	OpenBlob(ctx context.Context, sha256 string) (io.ReadCloser, error)
}

func (s *sqlStore) PutConfiguration(ctx context.Context, c Configuration, createOnly bool) (bool, error) {
	created := false
	err := s.putTx(ctx, func(tx *sql.Tx) error {
		created = false
		var at int64
		var by string
		err := tx.QueryRowContext(ctx, s.q(`SELECT created_at, created_by FROM configurations WHERE instance_id = $1 AND name = $2`),
			c.InstanceID, c.Name).Scan(&at, &by)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO configurations
				(instance_id, name, type, description, sealed_data, size, created_at, created_by, updated_at, updated_by)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7, $8)`),
				c.InstanceID, c.Name, c.Type, c.Description, c.SealedData, c.Size, ms(c.UpdatedAt), c.UpdatedBy)
			return s.mapErr("create configuration", err)
		case err != nil:
			return s.mapErr("read configuration", err)
		case createOnly:
			return fmt.Errorf("%w: configuration %s", ErrConflict, c.Name)
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE configurations SET type = $1, description = $2, sealed_data = $3, size = $4,
			updated_at = $5, updated_by = $6 WHERE instance_id = $7 AND name = $8`),
			c.Type, c.Description, c.SealedData, c.Size, ms(c.UpdatedAt), c.UpdatedBy, c.InstanceID, c.Name)
		return s.mapErr("replace configuration", err)
	})
	return created, err
}

const configCols = `instance_id, name, type, description, size, created_at, created_by, updated_at, updated_by`

func scanConfig(sc scanner, extra ...any) (Configuration, error) {
	var c Configuration
	var ca, ua int64
	err := sc.Scan(append([]any{&c.InstanceID, &c.Name, &c.Type, &c.Description, &c.Size, &ca, &c.CreatedBy, &ua, &c.UpdatedBy}, extra...)...)
	c.CreatedAt, c.UpdatedAt = fromMS(ca), fromMS(ua)
	return c, err
}

func (s *sqlStore) GetConfiguration(ctx context.Context, instanceID, name string) (Configuration, error) {
	var data []byte
	c, err := scanConfig(s.queryRow(ctx, `SELECT `+configCols+`, sealed_data FROM configurations WHERE instance_id = $1 AND name = $2`, instanceID, name), &data)
	c.SealedData = data
	return c, s.mapErr("read configuration", err)
}

// PageKey is a configuration's position in its list: by name.
func (c Configuration) PageKey() []string { return []string{c.Name} }

var configList = listQuery{op: "list configurations", cols: configCols, from: "FROM configurations",
	where: "instance_id = $1", key: []keyCol{{expr: "name"}}}

func (s *sqlStore) ListConfigurations(ctx context.Context, instanceID string, pg Page) ([]Configuration, error) {
	return listRows(ctx, s, configList, pg, func(sc scanner) (Configuration, error) { return scanConfig(sc) }, instanceID)
}

func (s *sqlStore) DeleteConfiguration(ctx context.Context, instanceID, name string) error {
	res, err := s.exec(ctx, `DELETE FROM configurations WHERE instance_id = $1 AND name = $2`, instanceID, name)
	return s.affectedOne("delete configuration", res, err)
}

func (s *sqlStore) PutBARFile(ctx context.Context, f BARFile, content io.Reader) (bool, error) {
	var spool string
	if s.files != nil {
		// Written and synced before the write lock is taken: only the
		// link into place happens inside the transaction.
		var remove func()
		var err error
		if spool, remove, err = s.files.spool(content, f.Size); err != nil {
			return false, err
		}
		defer remove()
	}
	created := false
	err := s.putTx(ctx, func(tx *sql.Tx) error {
		created = false
		if s.files != nil {
			if err := s.files.link(spool, f.SHA256); err != nil {
				return err
			}
			return s.putBARRecord(ctx, tx, f, &created)
		}
		var have int
		if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM blob_chunks WHERE sha256 = $1`), f.SHA256).Scan(&have); err != nil {
			return s.mapErr("look up BAR content", err)
		}
		// Identical content is stored once; only new content is written.
		if have == 0 {
			if err := s.writeChunks(ctx, tx, f.SHA256, f.Size, content); err != nil {
				return err
			}
		}
		return s.putBARRecord(ctx, tx, f, &created)
	})
	return created, err
}

// putBARRecord creates or replaces f's record, once its content is stored.
func (s *sqlStore) putBARRecord(ctx context.Context, tx *sql.Tx, f BARFile, created *bool) error {
	var old string
	err := tx.QueryRowContext(ctx, s.q(`SELECT sha256 FROM bar_files WHERE instance_id = $1 AND name = $2`), f.InstanceID, f.Name).Scan(&old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		*created = true
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO bar_files (instance_id, name, sha256, size, info, uploaded_at, uploaded_by)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`), f.InstanceID, f.Name, f.SHA256, f.Size, f.Info, ms(f.UploadedAt), f.UploadedBy)
		return s.mapErr("create BAR file", err)
	case err != nil:
		return s.mapErr("read BAR file", err)
	}
	if _, err := tx.ExecContext(ctx, s.q(`UPDATE bar_files SET sha256 = $1, size = $2, info = $3, uploaded_at = $4, uploaded_by = $5
			WHERE instance_id = $6 AND name = $7`), f.SHA256, f.Size, f.Info, ms(f.UploadedAt), f.UploadedBy, f.InstanceID, f.Name); err != nil {
		return s.mapErr("replace BAR file", err)
	}
	return s.collectBlob(ctx, tx, old)
}

// writeChunks stores exactly size bytes of r under sha in ChunkSize rows.
// Where the dialect bulk-loads (PostgreSQL), the rows stream to the
// server in one COPY: a statement per chunk waited for each chunk's
// round trip, with the server idle while the next chunk was read and
// encoded and the control plane idle while the server stored it.
func (s *sqlStore) writeChunks(ctx context.Context, tx *sql.Tx, sha string, size int64, r io.Reader) error {
	if conn := s.connOf(tx); conn != nil {
		var contentErr error
		err := conn.Raw(func(dc any) (err error) {
			contentErr, err = s.d.copyChunks(ctx, dc, sha, size, r)
			return err
		})
		if contentErr != nil {
			return contentErr // what the server saw only as a failed COPY
		}
		return s.mapErr("write BAR content", err)
	}
	stmt, err := tx.PrepareContext(ctx, s.q(`INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3)`))
	if err != nil {
		return s.mapErr("prepare chunk insert", err)
	}
	defer stmt.Close()
	buf := make([]byte, ChunkSize)
	var written int64
	for seq := 0; ; seq++ {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if _, err := stmt.ExecContext(ctx, sha, seq, buf[:n]); err != nil {
				return s.mapErr("write BAR content", err)
			}
			written += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return errContentRead(err)
		}
	}
	if written != size {
		return errContentSize(written, size)
	}
	return nil
}

// errContentRead is a PutBARFile whose content could not be read.
func errContentRead(err error) error { return fmt.Errorf("store: unable to read BAR content: %w", err) }

// errContentSize is a PutBARFile whose content is not the record's size.
func errContentSize(got, want int64) error {
	return fmt.Errorf("store: BAR content is %d bytes, expected %d", got, want)
}

// collectBlob removes the chunks of sha when no BAR file names them any
// more; a content file is only marked here, and removed after the
// transaction commits (blobFiles).
func (s *sqlStore) collectBlob(ctx context.Context, tx *sql.Tx, sha string) error {
	if sha == "" {
		return nil
	}
	if s.files != nil {
		s.files.mark(sha)
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(`DELETE FROM blob_chunks WHERE sha256 = $1
		AND NOT EXISTS (SELECT 1 FROM bar_files WHERE sha256 = $1)`), sha)
	return s.mapErr("remove unused BAR content", err)
}

const barCols = `instance_id, name, sha256, size, info, uploaded_at, uploaded_by`

func scanBAR(sc scanner) (BARFile, error) {
	var f BARFile
	var at int64
	err := sc.Scan(&f.InstanceID, &f.Name, &f.SHA256, &f.Size, &f.Info, &at, &f.UploadedBy)
	f.UploadedAt = fromMS(at)
	return f, err
}

func (s *sqlStore) GetBARFile(ctx context.Context, instanceID, name string) (BARFile, error) {
	f, err := scanBAR(s.queryRow(ctx, `SELECT `+barCols+` FROM bar_files WHERE instance_id = $1 AND name = $2`, instanceID, name))
	return f, s.mapErr("read BAR file", err)
}

// PageKey is a BAR file's position in its list: by name.
func (f BARFile) PageKey() []string { return []string{f.Name} }

var barList = listQuery{op: "list BAR files", cols: barCols, from: "FROM bar_files",
	where: "instance_id = $1", key: []keyCol{{expr: "name"}}}

func (s *sqlStore) ListBARFiles(ctx context.Context, instanceID string, pg Page) ([]BARFile, error) {
	return listRows(ctx, s, barList, pg, scanBAR, instanceID)
}

func (s *sqlStore) DeleteBARFile(ctx context.Context, instanceID, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		var sha string
		err := tx.QueryRowContext(ctx, s.q(`SELECT sha256 FROM bar_files WHERE instance_id = $1 AND name = $2`), instanceID, name).Scan(&sha)
		if err != nil {
			return s.mapErr("read BAR file", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM bar_files WHERE instance_id = $1 AND name = $2`), instanceID, name); err != nil {
			return s.mapErr("delete BAR file", err)
		}
		return s.collectBlob(ctx, tx, sha)
	})
}

// blobReader reads a blob one chunk (one query) at a time.
type blobReader struct {
	ctx  context.Context
	s    *sqlStore
	sha  string
	seq  int
	n    int // chunks
	buf  []byte
	done bool
}

func (s *sqlStore) OpenBlob(ctx context.Context, sha string) (io.ReadCloser, error) {
	if s.files != nil {
		return s.files.open(sha)
	}
	return s.openChunks(ctx, sha)
}

// openChunks streams sha's bytes from blob_chunks.
func (s *sqlStore) openChunks(ctx context.Context, sha string) (io.ReadCloser, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM blob_chunks WHERE sha256 = $1`, sha).Scan(&n); err != nil {
		return nil, s.mapErr("open BAR content", err)
	}
	if n == 0 {
		return nil, ErrNotFound
	}
	return &blobReader{ctx: ctx, s: s, sha: sha, n: n}, nil
}

func (b *blobReader) Read(p []byte) (int, error) {
	for len(b.buf) == 0 {
		if b.seq >= b.n {
			return 0, io.EOF
		}
		var data []byte
		if err := b.s.queryRow(b.ctx, `SELECT data FROM blob_chunks WHERE sha256 = $1 AND seq = $2`, b.sha, b.seq).Scan(&data); err != nil {
			return 0, b.s.mapErr("read BAR content", err)
		}
		b.seq++
		b.buf = data
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	return n, nil
}

func (b *blobReader) Close() error { return nil }
