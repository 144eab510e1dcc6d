package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
)

// bundleLimits bound what a runtime accepts from its control plane.
var bundleLimits = &bar.Limits{MaxArchiveSize: 1 << 30, MaxFileSize: 256 << 20, MaxTotalSize: 1 << 30, MaxEntries: 20000, MaxRatio: 1000}

// FetchBundle downloads this runtime's bundle (bars/*.bar and a config/
// directory, see docs/runtime.md) from the control plane with the token in
// tokenFile, and unpacks it into dir (0700 directories, 0600 files). It
// returns the BAR paths and the config dir to load. The token is the
// runtime's own: it opens this runtime generation's bundle and nothing
// else, and it is never logged. client nil is http.DefaultClient (plain
// http, or https trusted by the system's roots).
func FetchBundle(ctx context.Context, client *http.Client, url, tokenFile, dir string) ([]string, string, error) {
	tok, err := os.ReadFile(tokenFile)
	if err != nil {
		return nil, "", fmt.Errorf("runtime: bundle token: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, "", fmt.Errorf("runtime: bundle url: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", fmt.Errorf("runtime: fetching the bundle: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, bundleLimits.MaxArchiveSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("runtime: fetching the bundle: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("runtime: the control plane refused the bundle: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	a, err := bar.Read(bytes.NewReader(body), int64(len(body)), bundleLimits)
	if err != nil {
		return nil, "", fmt.Errorf("runtime: the bundle: %w", err)
	}
	defer a.Close()
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", err
	}
	fsys := a.FS()
	var bars []string
	err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.FromSlash(p))
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
			return err
		}
		if strings.HasPrefix(p, "bars/") && strings.HasSuffix(p, ".bar") {
			bars = append(bars, target)
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		return nil, "", fmt.Errorf("runtime: unpacking the bundle: %w", err)
	}
	sort.Strings(bars)
	configDir := filepath.Join(dir, "config")
	if err := os.MkdirAll(configDir, 0o700); err != nil {
		return nil, "", err
	}
	return bars, configDir, nil
}
