package local

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// binDir is where, under the backend's directory, the executable runtimes
// run from is kept.
const binDir = "bin"

// installBinary puts a copy of the executable src into dir, named by its
// SHA-256 (sluice-<first 16 hex digits>), and returns its path. Runtimes
// are started from that copy, never from src: under `go run` src is a
// temporary file that is deleted when `go run` exits, and an upgrade
// replaces it, while runtimes outlive the control plane and are restarted
// after crashes by its successor. The same content is installed once (a
// hard link when src is on the same file system, else a copy written to a
// temporary name and renamed into place). Copies of other contents are
// removed: a running process keeps its executable's inode, so nothing that
// runs depends on their names.
func installBinary(dir, src string) (string, error) {
	f, err := os.Open(src)
	if err != nil {
		return "", fmt.Errorf("local: reading the sluice binary: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("local: reading the sluice binary %s: %w", src, err)
	}
	name := "sluice-" + hex.EncodeToString(h.Sum(nil))[:16]
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("local: creating %s: %w", dir, err)
	}
	dst := filepath.Join(dir, name)
	if _, err := os.Stat(dst); errors.Is(err, fs.ErrNotExist) {
		if err := placeCopy(dir, dst, src, f); err != nil {
			return "", err
		}
	} else if err != nil {
		return "", fmt.Errorf("local: %w", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.Name() != name && strings.HasPrefix(e.Name(), "sluice-") {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return dst, nil
}

func placeCopy(dir, dst, src string, f *os.File) error {
	if os.Link(src, dst) == nil {
		return nil
	}
	tmp, err := os.CreateTemp(dir, ".tmp-sluice-")
	if err != nil {
		return fmt.Errorf("local: copying the sluice binary: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		tmp.Close()
		return fmt.Errorf("local: copying the sluice binary: %w", err)
	}
	_, err = io.Copy(tmp, f)
	if err == nil {
		err = tmp.Chmod(0o700)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), dst)
	}
	if err != nil {
		return fmt.Errorf("local: copying the sluice binary to %s: %w", dst, err)
	}
	return nil
}
