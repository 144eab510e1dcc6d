package server

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/sluice-dev/sluice/internal/iam"
)

// InitialCredentialsFile is where the first start writes the credentials
// it created, mode 0600, in the data dir.
const InitialCredentialsFile = "initial-credentials.json"

// announceInitialCredentials writes the first instance's credentials to the
// data dir (0600) and, when show is set (standard output is a terminal and
// the log is not JSON), prints them once with a curl line for the token
// exchange. Otherwise standard output may be a file or a log collector that
// keeps and ships what it gets, so only the file's path is logged. Secrets
// never go to the log.
func announceInitialCredentials(w io.Writer, log *slog.Logger, dataDir string, c iam.InitialCredentials, show bool) error {
	path := filepath.Join(dataDir, InitialCredentialsFile)
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dataDir, ".initial-credentials-*")
	if err != nil {
		return fmt.Errorf("unable to write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.Write(append(b, '\n'))
		if err == nil {
			err = tmp.Sync()
		}
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("unable to write %s: %w", path, err)
	}
	if !show {
		log.Info("first start: created an instance with an admin user, an API key and a client credential; their secrets are in the file, shown nowhere else",
			"instance_id", c.InstanceID, "path", path)
		return nil
	}
	fmt.Fprintf(w, `sluice: first start: created instance %[1]s with an admin user, an API key and a client credential.
These secrets are shown once (also saved in %[2]s, mode 0600):
  instance id:    %[1]s
  client id:      %[3]s
  client secret:  %[4]s
  API key:        %[5]s
  admin login:    %[6]s / %[7]s
Get a token:
  curl -s -X POST %[8]s/api/v1/tokens -H 'X-IBM-Client-Id: %[3]s' -H 'X-IBM-Client-Secret: %[4]s' -H 'x-ibm-instance-id: %[1]s' -H 'Content-Type: application/json' -d '{"apiKey":"%[5]s"}'
`, c.InstanceID, path, c.ClientID, c.ClientSecret, c.APIKey, c.Username, c.Password, c.Endpoint)
	return nil
}
