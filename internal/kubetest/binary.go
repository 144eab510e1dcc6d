// Package kubetest runs a real Kubernetes API server (kube-apiserver over
// etcd) for tests, the way controller authors test with envtest: no
// kubelet, no controller manager, no scheduler. Objects are stored,
// validated, admitted (RBAC, quota, admission plugins) and served exactly
// as a cluster would; nothing acts on them, so a test that wants a
// Deployment to be available or a Pod to crash writes that status itself.
//
// kube-apiserver is built from k8s.io/kubernetes in the separate module
// test/kube-apiserver (Sluice's own go.mod never depends on Kubernetes'
// server code) and cached by version under the user's cache directory;
// etcd is Debian's etcd-server. Where either is missing, tests skip and
// say how to get it; under CI (CI set) they fail instead. It is test
// support only: nothing in the product imports it.
package kubetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Version is the kube-apiserver test/kube-apiserver/go.mod pins.
const Version = "v1.37.2"

// BinaryEnv names a kube-apiserver executable to use instead of the
// cached build.
const BinaryEnv = "SLUICE_KUBE_APISERVER"

// ErrNotBuilt is returned by Binary when kube-apiserver is not cached and
// building was not asked for.
var ErrNotBuilt = errors.New("kubetest: kube-apiserver " + Version + " is not built yet: run `go run ./internal/kubetest/prepare` once (about 14 CPU-minutes: 7 or more on 2 idle cores, 55 at load average 20-25; cached afterwards), or set CI=1 to build it on first use")

// moduleDir finds test/kube-apiserver from the working directory (a
// package directory under `go test`, the repository root under `go run`).
func moduleDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/sluice-dev/sluice\n") {
			return filepath.Join(dir, "test", "kube-apiserver"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("kubetest: not inside the sluice repository: cannot find test/kube-apiserver")
		}
		dir = parent
	}
}

// cachePath is where the build for the module in modDir is kept: keyed
// by the version and by the module's go.sum, so a changed pin rebuilds.
func cachePath(modDir string) (string, error) {
	sum, err := os.ReadFile(filepath.Join(modDir, "go.sum"))
	if err != nil {
		return "", fmt.Errorf("kubetest: reading %s: %w", filepath.Join(modDir, "go.sum"), err)
	}
	base := os.Getenv("SLUICE_CACHE_DIR")
	if base == "" {
		if base, err = os.UserCacheDir(); err != nil {
			return "", fmt.Errorf("kubetest: no cache directory (set XDG_CACHE_HOME or SLUICE_CACHE_DIR): %w", err)
		}
		base = filepath.Join(base, "sluice")
	}
	h := sha256.Sum256(sum)
	return filepath.Join(base, "kube-apiserver", Version+"-"+hex.EncodeToString(h[:6]), "kube-apiserver"), nil
}

// Binary returns the path of a kube-apiserver executable: BinaryEnv's, or
// the cached build. When none is cached it builds one if build is set
// (writing the go command's output to log) and returns ErrNotBuilt
// otherwise. Concurrent callers (test packages run in parallel) build once:
// the others wait on a lock file.
func Binary(ctx context.Context, build bool, log io.Writer) (string, error) {
	if p := os.Getenv(BinaryEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("kubetest: %s=%s: %w", BinaryEnv, p, err)
		}
		return p, nil
	}
	modDir, err := moduleDir()
	if err != nil {
		return "", err
	}
	bin, err := cachePath(modDir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if !build {
		return "", ErrNotBuilt
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(filepath.Dir(bin), "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("kubetest: locking the build: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // built by whoever held the lock
	}
	tmp := bin + ".tmp"
	fmt.Fprintf(log, "kubetest: building kube-apiserver %s in %s (first time only)\n", Version, modDir)
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", tmp, "k8s.io/kubernetes/cmd/kube-apiserver")
	cmd.Dir = modDir
	cmd.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false", "GOWORK=off")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("kubetest: building kube-apiserver %s: %w", Version, err)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	fmt.Fprintf(log, "kubetest: built %s in %s\n", bin, time.Since(start).Round(time.Second))
	return bin, nil
}

// goTool is the go command of the toolchain running this code, falling
// back to the one on PATH.
func goTool() string {
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			return p
		}
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
