package store_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"testing/iotest"

	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// barContent is content of more than two chunks, so chunked paths (the
// PostgreSQL store, SQLite backups) cut it.
func barContent(t *testing.T) ([]byte, string) {
	t.Helper()
	b := make([]byte, 2*store.ChunkSize+12345)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func putBAR(t *testing.T, s store.Store, instance, name string, content []byte, sha string) {
	t.Helper()
	if _, err := s.PutBARFile(context.Background(), store.BARFile{InstanceID: instance, Name: name, SHA256: sha, Size: int64(len(content)),
		Info: "{}", UploadedAt: clocktest.Epoch(), UploadedBy: "test"}, bytes.NewReader(content)); err != nil {
		t.Fatalf("put %s: %v", name, err)
	}
}

func readBlob(t *testing.T, s store.Store, sha string) ([]byte, error) {
	t.Helper()
	rc, err := s.OpenBlob(context.Background(), sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// openWithInstance opens the SQLite store in dir with an instance i1.
func openWithInstance(t *testing.T, dir string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateInstance(context.Background(), newInstance("i1", clocktest.Epoch())); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

// openKind opens a fresh store of kind with its files in dir, closed
// when the test ends.
func openKind(t *testing.T, kind, dir string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), storetest.DSN(t, kind), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openDB opens the SQLite database in dir directly, as another program would.
func openDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: filepath.Join(dir, store.DefaultSQLiteFile)}).EscapedPath())
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// contentFiles lists the content files of the SQLite store in dataDir.
func contentFiles(t *testing.T, dataDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, store.DefaultSQLiteFile+"-bars"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != ".lock" { // the lock backups and removals share
			names = append(names, e.Name())
		}
	}
	return names
}

// Identical content is stored once and read back whole; content stays
// while any BAR file names it and goes with the last one, whether
// replaced, deleted or taken by its instance's deletion; content that does
// not match its record is refused and stores nothing. On SQLite the
// content is one file per hash beside the database.
func TestBARContentSharedAndCollected(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openKind(t, kind, dir)
			files := func(want ...string) {
				t.Helper()
				if kind != "sqlite" {
					return
				}
				slices.Sort(want)
				if got := contentFiles(t, dir); !slices.Equal(got, want) {
					t.Fatalf("content files %v, want %v", got, want)
				}
			}
			for _, id := range []string{"i1", "i2"} {
				if err := s.CreateInstance(ctx, newInstance(id, clocktest.Epoch())); err != nil {
					t.Fatal(err)
				}
			}
			a, shaA := barContent(t)
			b, shaB := barContent(t)
			putBAR(t, s, "i1", "one", a, shaA)
			putBAR(t, s, "i1", "two", a, shaA)
			putBAR(t, s, "i2", "three", a, shaA)
			files(shaA)
			if got, err := readBlob(t, s, shaA); err != nil || !bytes.Equal(got, a) {
				t.Fatalf("read back %d bytes, %v; want the %d put", len(got), err, len(a))
			}

			putBAR(t, s, "i1", "two", b, shaB) // replaced: a is still named by one
			files(shaA, shaB)
			if err := s.DeleteBARFile(ctx, "i1", "one"); err != nil {
				t.Fatal(err)
			}
			if _, err := readBlob(t, s, shaA); err != nil {
				t.Fatalf("content named by i2's BAR: %v", err)
			}
			if _, err := s.DeleteInstance(ctx, "i2"); err != nil {
				t.Fatal(err)
			}
			if _, err := readBlob(t, s, shaA); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("content no BAR names any more: %v, want ErrNotFound", err)
			}
			files(shaB)
			if got, err := readBlob(t, s, shaB); err != nil || !bytes.Equal(got, b) {
				t.Fatalf("read back %d bytes, %v; want the %d put", len(got), err, len(b))
			}

			short := store.BARFile{InstanceID: "i1", Name: "short", SHA256: shaA, Size: int64(len(a)) + 1, Info: "{}",
				UploadedAt: clocktest.Epoch(), UploadedBy: "test"}
			if _, err := s.PutBARFile(ctx, short, bytes.NewReader(a)); err == nil {
				t.Fatal("content shorter than its record was stored")
			}
			if _, err := s.GetBARFile(ctx, "i1", "short"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a refused BAR has a record: %v", err)
			}
			files(shaB)

			if err := s.DeleteBARFile(ctx, "i1", "two"); err != nil {
				t.Fatal(err)
			}
			if _, err := readBlob(t, s, shaB); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("content of a deleted BAR: %v, want ErrNotFound", err)
			}
			files()
		})
	}
}

// An upload spooled into the store's own file becomes the content without
// a copy, and the caller's spool file is left for the caller to remove.
func TestBARContentFromASpoolFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openWithInstance(t, dir)
	defer s.Close()
	sp, ok := s.(store.BlobSpooler)
	if !ok {
		t.Fatal("the SQLite store does not spool BAR content")
	}
	a, sha := barContent(t)
	f, err := sp.CreateBlobSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutBARFile(ctx, store.BARFile{InstanceID: "i1", Name: "one", SHA256: sha, Size: int64(len(a)), Info: "{}",
		UploadedAt: clocktest.Epoch(), UploadedBy: "test"}, f); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.Name()); err != nil {
		t.Fatalf("the spool file: %v", err)
	}
	if got, err := readBlob(t, s, sha); err != nil || !bytes.Equal(got, a) {
		t.Fatalf("read back %d bytes, %v; want the %d put", len(got), err, len(a))
	}
}

// A SQLite store written before content became files (or restored from a
// backup) holds it in blob_chunks: opening it moves the content into
// files, and removes content files no record names and spool files a
// crash left, leaving those of uploads in progress alone.
func TestSQLiteMovesChunksIntoFiles(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openWithInstance(t, dir)
	a, shaA := barContent(t)
	putBAR(t, s, "i1", "one", a, shaA)
	s.Close()

	// As an older store left it: the record names chunks.
	old, shaOld := barContent(t)
	db := openDB(t, dir)
	if _, err := db.Exec(`INSERT INTO bar_files (instance_id, name, sha256, size, info, uploaded_at, uploaded_by)
		VALUES ('i1', 'old', ?, ?, '{}', 0, 'test')`, shaOld, len(old)); err != nil {
		t.Fatal(err)
	}
	for seq := 0; seq*store.ChunkSize < len(old); seq++ {
		chunk := old[seq*store.ChunkSize : min(len(old), (seq+1)*store.ChunkSize)]
		if _, err := db.Exec(`INSERT INTO blob_chunks (sha256, seq, data) VALUES (?, ?, ?)`, shaOld, seq, chunk); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	bars := filepath.Join(dir, store.DefaultSQLiteFile+"-bars")
	orphan := hex.EncodeToString(make([]byte, 32))
	if err := os.WriteFile(filepath.Join(bars, orphan), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for sha, want := range map[string][]byte{shaA: a, shaOld: old} {
		if got, err := readBlob(t, s, sha); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("read back %d bytes, %v; want the %d put", len(got), err, len(want))
		}
	}
	// An upload in progress, and one a crash left: a second store opened
	// on the same files (as another process would) removes only the
	// second.
	inProgress, err := s.(store.BlobSpooler).CreateBlobSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer inProgress.Close()
	if err := os.WriteFile(filepath.Join(bars, ".spool-left-by-a-crash"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s2, err := store.Open(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	want := []string{filepath.Base(inProgress.Name()), shaA, shaOld}
	slices.Sort(want)
	if got := contentFiles(t, dir); !slices.Equal(got, want) {
		t.Fatalf("content files %v, want %v", got, want)
	}
	db = openDB(t, dir)
	defer db.Close()
	var chunks int
	if err := db.QueryRow(`SELECT COUNT(*) FROM blob_chunks`).Scan(&chunks); err != nil || chunks != 0 {
		t.Fatalf("%d chunks left in the database (%v)", chunks, err)
	}
}

// A backup is one file that holds the BAR content too: restored into a
// new data dir, with the original gone, every BAR reads back whole.
func TestBackupHoldsBARContent(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openWithInstance(t, dir)
	a, shaA := barContent(t)
	b, shaB := barContent(t)
	putBAR(t, s, "i1", "one", a, shaA)
	putBAR(t, s, "i1", "two", b, shaB)
	putBAR(t, s, "i1", "also-two", b, shaB)
	out := filepath.Join(t.TempDir(), "backup.db")
	info, err := store.Backup(ctx, "", dir, out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Bytes < int64(len(a)+len(b)) {
		t.Fatalf("the backup is %d bytes, less than the %d of its BAR content", info.Bytes, len(a)+len(b))
	}
	s.Close()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}

	restored := t.TempDir()
	if _, err := store.Restore(ctx, out, restored); err != nil {
		t.Fatal(err)
	}
	r, err := store.Open(ctx, "", restored)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for name, want := range map[string][]byte{"one": a, "two": b, "also-two": b} {
		f, err := r.GetBARFile(ctx, "i1", name)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := readBlob(t, r, f.SHA256); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s read back %d bytes, %v; want the %d put", name, len(got), err, len(want))
		}
	}
	want := []string{shaA, shaB}
	slices.Sort(want)
	if got := contentFiles(t, restored); !slices.Equal(got, want) {
		t.Fatalf("content files %v, want %v", got, want)
	}
}

// Content that does not match its record's size, or that cannot be read
// to its end, is refused with what went wrong and leaves neither a record
// nor content behind — on PostgreSQL a COPY that the content fails midway
// aborts its transaction — and the store goes on taking uploads, inside a
// caller's transaction (Locked, as barstore calls it) as well as alone.
func TestBARContentRefusedLeavesNothing(t *testing.T) {
	errBoom := errors.New("the client went away")
	a, sha := barContent(t)
	cases := []struct {
		name    string
		content func() io.Reader
		want    error // errors.Is; nil: any error
	}{
		{"one byte longer", func() io.Reader { return bytes.NewReader(append(slices.Clip(a), 0)) }, nil},
		{"chunks longer", func() io.Reader { return bytes.NewReader(append(slices.Clip(a), a...)) }, nil},
		{"unreadable midway", func() io.Reader {
			return io.MultiReader(bytes.NewReader(a[:store.ChunkSize+store.ChunkSize/2]), iotest.ErrReader(errBoom))
		}, errBoom},
		{"unreadable at its end", func() io.Reader { return io.MultiReader(bytes.NewReader(a), iotest.ErrReader(errBoom)) }, errBoom},
		{"unreadable at once", func() io.Reader { return iotest.ErrReader(errBoom) }, errBoom},
	}
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			s := openKind(t, kind, dir)
			if err := s.CreateInstance(ctx, newInstance("i1", clocktest.Epoch())); err != nil {
				t.Fatal(err)
			}
			f := store.BARFile{InstanceID: "i1", Name: "one", SHA256: sha, Size: int64(len(a)), Info: "{}",
				UploadedAt: clocktest.Epoch(), UploadedBy: "test"}
			for _, c := range cases {
				for _, locked := range []bool{false, true} {
					put := func() error {
						_, err := s.PutBARFile(ctx, f, c.content())
						return err
					}
					if locked {
						put = func() error {
							return s.Locked(ctx, "i1", func(ctx context.Context) error {
								_, err := s.PutBARFile(ctx, f, c.content())
								return err
							})
						}
					}
					err := put()
					if err == nil || (c.want != nil && !errors.Is(err, c.want)) {
						t.Fatalf("%s (locked %v): %v, want a refusal (%v)", c.name, locked, err, c.want)
					}
					if _, err := s.GetBARFile(ctx, "i1", "one"); !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("%s: a refused BAR has a record: %v", c.name, err)
					}
					if _, err := readBlob(t, s, sha); !errors.Is(err, store.ErrNotFound) {
						t.Fatalf("%s: a refused BAR's content: %v, want ErrNotFound", c.name, err)
					}
					if kind == "sqlite" {
						if got := contentFiles(t, dir); len(got) != 0 {
							t.Fatalf("%s: content files %v after a refusal", c.name, got)
						}
					}
				}
			}
			if err := s.Locked(ctx, "i1", func(ctx context.Context) error {
				_, err := s.PutBARFile(ctx, f, bytes.NewReader(a))
				return err
			}); err != nil {
				t.Fatalf("a good upload after the refusals: %v", err)
			}
			if got, err := readBlob(t, s, sha); err != nil || !bytes.Equal(got, a) {
				t.Fatalf("read back %d bytes, %v; want the %d put", len(got), err, len(a))
			}
		})
	}
}
