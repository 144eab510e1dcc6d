package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Gravitee federation setting that cannot work stops the command before
// anything is started or written, with a message naming what to fix.
func TestFederationSettingsRefused(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty-token")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	serve := []string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1:0", "--runtime-backend", "none"}
	cases := []struct {
		name  string
		env   string // SLUICE_GRAVITEE_TOKEN
		args  []string
		wants string
	}{
		{"serve without a token", "", append(serve, "--gravitee-controller", "https://apim.example/integration-controller", "--gravitee-integration-id", "i"),
			"no Gravitee token: set SLUICE_GRAVITEE_TOKEN or give --gravitee-token-file"},
		{"serve with an empty token file", "", append(serve, "--gravitee-controller", "https://apim.example/integration-controller", "--gravitee-integration-id", "i",
			"--gravitee-token-file", empty), "is empty"},
		{"serve without an integration id", "tok", append(serve, "--gravitee-controller", "https://apim.example/integration-controller"),
			"the integration id is empty"},
		{"serve with a bad controller URL", "tok", append(serve, "--gravitee-controller", "ftp://apim.example", "--gravitee-integration-id", "i"),
			`scheme "ftp"`},
		{"serve with an instance and no controller", "tok", append(serve, "--gravitee-instance", "x"),
			"--gravitee-instance is given without --gravitee-controller"},
		{"agent without a token", "", []string{"federation-agent", "--controller", "https://apim.example/integration-controller", "--integration-id", "i"},
			"no Gravitee token: set SLUICE_GRAVITEE_TOKEN or give --token-file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("SLUICE_GRAVITEE_TOKEN", c.env)
			root := newRootCommand()
			root.SetArgs(c.args)
			_, err := root.ExecuteC()
			if err == nil || !strings.Contains(err.Error(), c.wants) {
				t.Fatalf("err %v, want it to contain %q", err, c.wants)
			}
			if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
				t.Fatalf("the data dir was created: %v", err)
			}
		})
	}
}
