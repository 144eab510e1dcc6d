// Package e2e runs the App Connect-style walkthrough (walkthrough.sh, curl
// and jq) against a real `sluice serve`, with an external BAR served over
// https behind basic auth by a local test server.
package e2e

import (
	"context"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

func TestAppConnectWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			// CI installs them (.ci/run) and must run this test; a
			// developer machine without them skips it, saying why.
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is needed for the walkthrough: %v", tool, err)
			}
			t.Skipf("the walkthrough needs %s (apt-get install curl jq): %v", tool, err)
		}
	}
	hello, _, err := bar.Build(context.Background(), filepath.Join("..", "..", "examples", "hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	second := filepath.Join(dir, "orders.bar")
	if _, err := bar.BuildFile(context.Background(), filepath.Join("..", "..", "examples", "orders"), second, nil); err != nil {
		t.Fatal(err)
	}
	// The external BAR repository: https with its own CA, basic auth.
	repo := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != "repo-user" || p != "repo-pass-3f9" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(hello)
	}))
	defer repo.Close()
	caPath := filepath.Join(dir, "ca.pem")
	os.WriteFile(caPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: repo.Certificate().Raw}), 0o600)

	s := servertest.Start(t, servertest.Options{})
	cmd := exec.Command("bash", "walkthrough.sh")
	cmd.Env = append(os.Environ(),
		"SLUICE="+s.URL, "CREDS="+filepath.Join(s.DataDir, "initial-credentials.json"),
		"EXT_BAR_URL="+repo.URL+"/bars/hello.bar", "EXT_USER=repo-user", "EXT_PASS=repo-pass-3f9", "EXT_CA="+caPath,
		"SECOND_BAR="+second, "TMPDIR="+dir)
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil || !strings.Contains(string(out), "walkthrough: PASS") {
		t.Fatalf("walkthrough failed: %v\nserver log:\n%s", err, tail(s.Stderr(), 60))
	}
	for _, secret := range []string{"repo-pass-3f9", "order-pass-81c", "tok-5e2"} {
		if strings.Contains(s.Stderr(), secret) || strings.Contains(string(out), secret) {
			t.Fatalf("a configuration secret reached the control plane's log or an answer")
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
