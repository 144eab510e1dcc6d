package bar

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/flow"
)

// buildTime is the modification time of every entry a build writes, so
// that building the same project twice gives byte-identical archives
// (content-addressed storage, reproducible CI artefacts). It is the zip
// format's epoch.
var buildTime = time.Date(1980, 1, 1, 0, 0, 0, 0, time.UTC)

// Skipped reports whether a build leaves out the project path rel (slash
// separated): hidden files and directories (.git, .DS_Store, editor
// swap files), BAR files (build outputs) and the `sluice flow test`
// fixtures under tests/, which are for the developer, not the runtime.
func Skipped(rel string) bool {
	if rel == flow.TestsDir || strings.HasPrefix(rel, flow.TestsDir+"/") {
		return true
	}
	base := rel[strings.LastIndexByte(rel, '/')+1:]
	return strings.HasPrefix(base, ".") || strings.HasSuffix(base, ".bar")
}

// Build packages the project in dir into a BAR and returns its bytes. It
// refuses symbolic links and special files in the project, and it
// validates what it built by reading the archive back and loading its
// project, so a BAR that Build returns is one a runtime accepts (given the
// configurations the project references).
func Build(ctx context.Context, dir string, lim *Limits) ([]byte, *Info, error) {
	l := lim.withDefaults()
	files, err := collect(dir, l)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, rel := range files {
		data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return nil, nil, fmt.Errorf("bar: build: %w", err)
		}
		hdr := &zip.FileHeader{Name: rel, Method: zip.Deflate, Modified: buildTime}
		hdr.SetMode(0o644)
		w, err := zw.CreateHeader(hdr)
		if err != nil {
			return nil, nil, fmt.Errorf("bar: build: %s: %w", rel, err)
		}
		if _, err := w.Write(data); err != nil {
			return nil, nil, fmt.Errorf("bar: build: %s: %w", rel, err)
		}
	}
	if err := zw.Close(); err != nil {
		return nil, nil, fmt.Errorf("bar: build: %w", err)
	}
	out := buf.Bytes()
	a, err := Read(bytes.NewReader(out), int64(len(out)), &l)
	if err != nil {
		return nil, nil, err
	}
	p, err := a.Load(ctx, nil)
	if err != nil {
		return nil, nil, err
	}
	return out, a.Describe(p), nil
}

// BuildFile builds the project in dir and writes the BAR to out, replacing
// it atomically only when the build succeeded.
func BuildFile(ctx context.Context, dir, out string, lim *Limits) (*Info, error) {
	data, info, err := Build(ctx, dir, lim)
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".bar-*")
	if err != nil {
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	return info, nil
}

// collect lists the project files under dir (slash-separated, sorted) and
// holds them to the same limits a reader applies.
func collect(dir string, l Limits) ([]string, error) {
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("bar: build: %s is not a directory", dir)
	}
	var files []string
	var total int64
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if Skipped(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s: %w (copy the file into the project instead)", rel, ErrSymlink)
		case d.IsDir():
			return nil
		case !d.Type().IsRegular():
			return fmt.Errorf("%s: %w", rel, ErrSpecialFile)
		}
		if err := checkName(rel); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > l.MaxFileSize {
			return fmt.Errorf("%s: %w: %s, the limit is %s", rel, ErrTooLarge, byteCount(fi.Size()), byteCount(l.MaxFileSize))
		}
		total += fi.Size()
		if total > l.MaxTotalSize {
			return fmt.Errorf("%w: the project is more than %s", ErrTooLarge, byteCount(l.MaxTotalSize))
		}
		files = append(files, rel)
		if len(files) > l.MaxEntries {
			return fmt.Errorf("%w: more than %d files", ErrTooMany, l.MaxEntries)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("bar: build: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("bar: build: %s: %w: no files", dir, ErrInvalid)
	}
	sort.Strings(files)
	return files, nil
}
