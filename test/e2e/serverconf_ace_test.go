package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// An App Connect server.conf.yaml given as a serverconf configuration
// through the API: the runtime starts, its flows see UserVariables as
// .config, and its status lists the keys that have no effect.
func TestACEServerconfThroughTheAPI(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)

	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "flows"), 0o755)
	os.WriteFile(filepath.Join(dir, "sluice.yaml"), []byte("name: region\nversion: 1.0.0\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "flows", "region.yaml"), []byte(
		"flow: region\ntrigger:\n  http:\n    method: GET\n    path: /region\nsteps:\n  - map: '{region: .config.region}'\n"), 0o644)
	content, _, err := bar.Build(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := putBAR(t, admin, "region", content)

	conf := "Defaults:\n  policyProject: 'JDBCPolicies'\nUserVariables:\n  region: 'eu-de'\nRestAdminListener:\n  port: 7600\nLog:\n  consoleLog: true\n  outputFormat: 'idText'\n"
	if code, body := admin.Do("PUT", "/api/v1/configurations/ace-server-conf", map[string]any{
		"metadata": map[string]string{"name": "ace-server-conf"},
		"spec":     map[string]any{"type": "serverconf", "data": base64.StdEncoding.EncodeToString([]byte(conf))},
	}); code != 201 {
		t.Fatalf("serverconf: %d %s", code, body)
	}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/region", map[string]any{
		"metadata": map[string]string{"name": "region"},
		"spec":     map[string]any{"barURL": []string{url}, "configurations": []string{"ace-server-conf"}},
	}); code != 201 {
		t.Fatalf("runtime: %d %s", code, body)
	}
	st := waitReady(t, admin, "region", 1)
	resp, err := http.Get(st.Status.Endpoints[0].URI)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"region":"eu-de"`) {
		t.Fatalf("flow answered %d %s; want UserVariables.region as .config.region", resp.StatusCode, body)
	}

	const want = "serverconf keys ace-server-conf: Log.consoleLog, ace-server-conf: RestAdminListener.port have no effect in Sluice"
	var cond struct{ Type, Status, Reason, Message string }
	for i := 0; i < 120 && cond.Message != want; i++ {
		_, raw := admin.Do("GET", "/api/v1/integration-runtimes/region", nil)
		var rt struct {
			Status struct {
				Conditions []struct{ Type, Status, Reason, Message string }
			}
		}
		json.Unmarshal(raw, &rt)
		for _, c := range rt.Status.Conditions {
			if c.Type == "ConfigurationIgnored" {
				cond = c
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if cond.Status != "True" || cond.Reason != "KeysIgnored" || cond.Message != want {
		t.Fatalf("ConfigurationIgnored condition %+v; want True KeysIgnored %q", cond, want)
	}
}
