package configuration

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/runtime"
	"github.com/sluice-dev/sluice/internal/secret"
)

// zipLimits bound the zips configurations carry (App Connect recommends
// generic zips under 660 KB; these limits leave room and stop bombs).
var zipLimits = &bar.Limits{MaxArchiveSize: 16 << 20, MaxFileSize: 16 << 20, MaxTotalSize: 64 << 20, MaxEntries: 2000}

func validateZip(data []byte) error {
	a, err := bar.Read(bytes.NewReader(data), int64(len(data)), zipLimits)
	if err != nil {
		return fmt.Errorf("is not a usable zip: %v", strings.TrimPrefix(err.Error(), "bar: "))
	}
	defer a.Close()
	if len(a.Files()) == 0 {
		return errors.New("is a zip with no files")
	}
	return nil
}

// inflatedSize is what a zip's entries declare they inflate to; ok is
// false when data is not a zip (validation then says why). The declared
// sizes are what the BAR reader holds every entry to.
func inflatedSize(data []byte) (int64, bool) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return 0, false
	}
	var total uint64
	for _, f := range zr.File {
		total += f.UncompressedSize64
	}
	return int64(min(total, 1<<62)), true
}

// Materialise writes one configuration into a runtime config dir (the
// layout `sluice runtime --config-dir` reads, docs/runtime.md): files
// 0600, directories 0700. Zips are unpacked through the safe BAR reader, so
// a hostile zip cannot write outside its own directory.
func Materialise(dir, typeName, name string, data []byte) error {
	write := func(rel string, b []byte) error {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		return os.WriteFile(p, b, 0o600)
	}
	switch typeName {
	case "setdbparms":
		return write(filepath.Join("setdbparms", name+".txt"), data)
	case "serverconf":
		return write(filepath.Join("serverconf", name+".yaml"), data)
	case "truststorecertificate":
		return write(filepath.Join("truststorecertificate", name+".pem"), data)
	case "accounts":
		return write(filepath.Join("accounts", name+".yaml"), data)
	case "odbc":
		return write(filepath.Join("odbc", name+".ini"), data)
	case "barauth":
		return nil // used by the control plane only
	case "policyproject", "generic", "loopbackdatasource":
		return unzip(filepath.Join(dir, typeName, name), data)
	}
	return write(filepath.Join(typeName, name), data)
}

func unzip(dest string, data []byte) error {
	a, err := bar.Read(bytes.NewReader(data), int64(len(data)), zipLimits)
	if err != nil {
		return err
	}
	defer a.Close()
	fsys := a.FS()
	return fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dest, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		src, err := fsys.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, src); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// checkWithRuntime materialises data alone into a scratch config dir and
// loads it the way `sluice runtime` will, so what the API accepts is
// exactly what a runtime can use.
func checkWithRuntime(typeName string, data []byte) error {
	dir, err := os.MkdirTemp("", "sluice-config-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := Materialise(dir, typeName, "check", data); err != nil {
		return fmt.Errorf("cannot be unpacked: %v", strings.TrimPrefix(err.Error(), "bar: "))
	}
	// The runtime's messages name files and lines, never content; they
	// are scrubbed again all the same, as they come from data that was
	// perhaps written as another type (a PUT that changes only the type
	// re-validates the stored data).
	if _, err := runtime.LoadConfigDir(dir); err != nil {
		msg := strings.TrimPrefix(err.Error(), "runtime: ")
		// Name places inside the configuration, not the scratch dir.
		msg = strings.ReplaceAll(msg, typeName+"/check.txt:", "line ")
		msg = strings.TrimSpace(strings.ReplaceAll(msg, typeName+"/check.yaml:", ""))
		msg = strings.ReplaceAll(msg, typeName+"/check/", "")
		return errors.New(secret.Scrub(msg))
	}
	return nil
}
