// Package barstore owns BAR files as a resource of the control plane:
// uploads streamed to a temporary file while hashing, validated with the
// BAR reader and flow engine before anything is stored, stored as the
// store's content-addressed files (SQLite) or chunks (PostgreSQL), listed, downloaded and deleted, with
// every change audited. An invalid upload never replaces what a name held.
package barstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/resource"
	"github.com/sluice-dev/sluice/internal/store"
)

// DefaultMaxSize is the default limit of one BAR upload.
const DefaultMaxSize = 100 << 20

// Service manages the BAR files of an instance.
type Service struct {
	Store   store.Store
	IAM     *iam.Service // for auditing
	TempDir string       // where uploads are spooled while they are checked, unless the store spools them (store.BlobSpooler)
	MaxSize int64        // largest accepted upload; 0: DefaultMaxSize
	Now     clock.Func
	// InUse refuses deleting a BAR file that runtimes use (unless force);
	// nil allows every delete.
	InUse func(ctx context.Context, instanceID, kind, name string, force bool) error
	// MaxValidations bounds the uploads validated at once (0:
	// DefaultMaxValidations). Validating loads the whole project; the
	// flow engine's limits bound what one load costs, this bounds how
	// many such costs add up. An upload over it is refused with BusyError
	// rather than queued, so waiting requests hold no memory.
	MaxValidations int
	// MaxStorage is the quota of BAR bytes every instance may store
	// (0: none); an upload that would take it over is refused.
	MaxStorage int64

	semOnce     sync.Once
	validations chan struct{}
}

// DefaultMaxValidations is the default of Service.MaxValidations.
const DefaultMaxValidations = 2

// BusyError is an upload refused because MaxValidations uploads are being
// validated; the caller should retry after RetryAfter.
type BusyError struct {
	Limit      int
	RetryAfter time.Duration
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("%d BAR files are being validated, the limit of uploads validated at once (--max-bar-validations); retry in %s", e.Limit, e.RetryAfter)
}

func (s *Service) maxValidations() int {
	if s.MaxValidations > 0 {
		return s.MaxValidations
	}
	return DefaultMaxValidations
}

// acquire takes a validation slot, or returns a BusyError.
func (s *Service) acquire() (release func(), err error) {
	s.semOnce.Do(func() { s.validations = make(chan struct{}, s.maxValidations()) })
	select {
	case s.validations <- struct{}{}:
		return func() { <-s.validations }, nil
	default:
		return nil, &BusyError{Limit: cap(s.validations), RetryAfter: 2 * time.Second}
	}
}

func (s *Service) now() time.Time { return s.Now.Now().UTC() }

func (s *Service) maxSize() int64 {
	if s.MaxSize > 0 {
		return s.MaxSize
	}
	return DefaultMaxSize
}

// File is a stored BAR file with its description.
type File struct {
	store.BARFile
	Info bar.Info
}

// InvalidError is an upload that is not a valid BAR: Problems name the
// file, line and column of each problem found.
type InvalidError struct {
	Problems []string
}

func (e *InvalidError) Error() string {
	return "the BAR file is not valid: " + strings.Join(e.Problems, "; ")
}

// TooLargeError is an upload over the size limit.
type TooLargeError struct{ Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("the BAR file is larger than the limit of %d bytes", e.Limit)
}

// Put stores the BAR read from body under name. The bytes are spooled to a
// temporary file (never held in memory), hashed, and validated; only a
// valid BAR reaches the store, so a failed upload leaves the name's
// previous content in place.
func (s *Service) Put(ctx context.Context, p iam.Principal, name string, body io.Reader) (File, bool, error) {
	if err := resource.ValidateName("BAR file", name); err != nil {
		return File{}, false, iam.Invalidf("%s", err.Error())
	}
	tmp, stored, err := s.spool()
	if err != nil {
		return File{}, false, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	limit := s.maxSize()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(body, limit+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || n > limit:
		return File{}, false, &TooLargeError{Limit: limit}
	case err != nil:
		return File{}, false, fmt.Errorf("barstore: unable to receive the upload: %w", err)
	case n == 0:
		return File{}, false, iam.Invalidf("the body is empty: send the BAR file's bytes (curl --data-binary @file.bar)")
	}
	if stored {
		// The spool becomes the stored content, which is synced before
		// it is acknowledged: writing it to disk while it is validated
		// leaves the store's sync little to wait for. Put returns only
		// once it is done (the deferred Close waits for it).
		synced := make(chan struct{})
		go func() {
			defer close(synced)
			_ = tmp.Sync() // an error is the store's sync's to report
		}()
		defer func() { <-synced }()
	}
	// Checked here to refuse early, and again with the write below,
	// where concurrent uploads cannot pass it together.
	if err := s.checkStorage(ctx, p, name, n); err != nil {
		return File{}, false, s.refuseStorage(ctx, p, name, err)
	}
	release, err := s.acquire()
	if err != nil {
		return File{}, false, err
	}
	info, err := bar.Inspect(ctx, tmp, n, &bar.Limits{MaxArchiveSize: limit})
	release()
	if err != nil {
		return File{}, false, &InvalidError{Problems: problems(err)}
	}
	infoJSON, err := json.Marshal(info)
	if err != nil {
		return File{}, false, err
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return File{}, false, err
	}
	f := store.BARFile{InstanceID: p.InstanceID, Name: name, SHA256: hex.EncodeToString(h.Sum(nil)), Size: n,
		Info: string(infoJSON), UploadedAt: s.now(), UploadedBy: p.Actor()}
	var created bool
	var quotaErr error
	err = s.Store.Locked(ctx, p.InstanceID, func(ctx context.Context) error {
		if quotaErr = s.checkStorage(ctx, p, name, n); quotaErr != nil {
			return quotaErr
		}
		var err error
		created, err = s.Store.PutBARFile(ctx, f, tmp)
		return err
	})
	if quotaErr != nil {
		return File{}, false, s.refuseStorage(ctx, p, name, quotaErr)
	}
	action := "barFile.update"
	if created {
		action = "barFile.create"
	}
	if err := s.IAM.Finish(ctx, p, action, "barFile/"+name, err); err != nil {
		return File{}, false, err
	}
	return File{BARFile: f, Info: *info}, created, nil
}

// spool creates the file an upload is received into: where the store
// keeps content as files, in its directory, so that storing a valid upload
// links this file into place instead of copying it once more.
// stored reports which.
func (s *Service) spool() (f *os.File, stored bool, err error) {
	if sp, ok := s.Store.(store.BlobSpooler); ok {
		f, err := sp.CreateBlobSpool()
		return f, true, err
	}
	if err := os.MkdirAll(s.TempDir, 0o700); err != nil {
		return nil, false, err
	}
	f, err = os.CreateTemp(s.TempDir, "upload-*.bar")
	return f, false, err
}

// refuseStorage audits and returns a refusal of checkStorage.
func (s *Service) refuseStorage(ctx context.Context, p iam.Principal, name string, err error) error {
	action := "barFile.update"
	if _, gerr := s.Store.GetBARFile(ctx, p.InstanceID, name); gerr != nil {
		action = "barFile.create"
	}
	return s.IAM.Finish(ctx, p, action, "barFile/"+name, err)
}

// checkStorage refuses an upload of n bytes under name that would take
// the instance's stored BAR bytes over MaxStorage; the BAR it replaces
// does not count.
func (s *Service) checkStorage(ctx context.Context, p iam.Principal, name string, n int64) error {
	if s.MaxStorage <= 0 {
		return nil
	}
	list, err := s.Store.ListBARFiles(ctx, p.InstanceID, store.Page{})
	if err != nil {
		return err
	}
	var used int64
	for _, f := range list {
		if f.Name != name {
			used += f.Size
		}
	}
	if used+n > s.MaxStorage {
		return iam.Forbiddenf("quota exceeded: this BAR file is %d bytes and the instance's other BAR files %d, more than its quota of %d bytes (--quota-bar-storage)", n, used, s.MaxStorage)
	}
	return nil
}

// problems splits a load error into one line per problem.
func problems(err error) []string {
	var out []string
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, problems(e)...)
		}
		return out
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if line = strings.TrimSpace(strings.TrimPrefix(line, "bar: ")); line != "" {
			out = append(out, line)
		}
	}
	return out
}

func decode(f store.BARFile) (File, error) {
	var info bar.Info
	if err := json.Unmarshal([]byte(f.Info), &info); err != nil {
		return File{}, fmt.Errorf("barstore: stored description of %s does not parse: %w", f.Name, err)
	}
	return File{BARFile: f, Info: info}, nil
}

// Get reads one BAR file's record.
func (s *Service) Get(ctx context.Context, p iam.Principal, name string) (File, error) {
	f, err := s.Store.GetBARFile(ctx, p.InstanceID, name)
	if err != nil {
		return File{}, iam.StoreErr(err, "BAR file "+name)
	}
	return decode(f)
}

// List lists a page of the instance's BAR files, by name.
func (s *Service) List(ctx context.Context, p iam.Principal, req iam.ListRequest) (iam.ListPage[File], error) {
	return iam.PageMap(req, []string{"barFiles", p.InstanceID}, func(pg store.Page) ([]store.BARFile, error) {
		return s.Store.ListBARFiles(ctx, p.InstanceID, pg)
	}, decode)
}

// Open streams a BAR file's bytes.
func (s *Service) Open(ctx context.Context, p iam.Principal, name string) (File, io.ReadCloser, error) {
	f, err := s.Get(ctx, p, name)
	if err != nil {
		return File{}, nil, err
	}
	rc, err := s.Store.OpenBlob(ctx, f.SHA256)
	return f, rc, iam.StoreErr(err, "BAR file "+name)
}

// Delete removes a BAR file; one that runtimes use is refused unless force
// is set.
func (s *Service) Delete(ctx context.Context, p iam.Principal, name string, force bool) error {
	if _, err := s.Store.GetBARFile(ctx, p.InstanceID, name); err != nil {
		return iam.StoreErr(err, "BAR file "+name)
	}
	if s.InUse != nil {
		if err := s.InUse(ctx, p.InstanceID, "barFile", name, force); err != nil {
			// Refused while in use: audited, as every refused mutation is
			// (a plan with subscriptions, an API in a plan).
			return s.IAM.Finish(ctx, p, "barFile.delete", "barFile/"+name, err)
		}
	}
	err := iam.StoreErr(s.Store.DeleteBARFile(ctx, p.InstanceID, name), "BAR file "+name)
	return s.IAM.Finish(ctx, p, "barFile.delete", "barFile/"+name, err)
}
