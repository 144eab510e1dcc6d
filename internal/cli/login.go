package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newLoginCommand() *cobra.Command {
	var (
		profileName string
		fromFile    string
		apiKeyFile  string
		flags       profile
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Save the credentials of a Sluice control plane in a named profile",
		Long: `Save the credentials of a Sluice control plane (endpoint, instance id, client
id, client secret, API key) in a named profile of the CLI's config file, after
checking that they get a token.

Each credential is taken from its flag, else from --from-file, else from its
environment variable, else (client secret and API key, on a terminal) from a
prompt. --from-file reads a JSON document such as the initial-credentials.json
that 'sluice serve' writes on its first start (endpoint, instanceId, clientId,
clientSecret, apiKey) or the file 'sluice api-keys create --save' writes (key);
--api-key-file reads the API key from an apiKey.json file (IBM Cloud's shape,
which 'sluice api-keys create --file' writes).
Prefer it, the environment or the prompt to --client-secret and --api-key:
flag values are visible to other users in the process list.

The config file is $SLUICE_CONFIG, or ~/.config/sluice/config.yaml. It holds
the client secret and the API key in clear text (they are what gets a token),
so it is written with mode 0600 and refused when others can read it. Access
tokens are never stored.

Environment:
  SLUICE_ENDPOINT, SLUICE_INSTANCE_ID, SLUICE_CLIENT_ID, SLUICE_CLIENT_SECRET,
  SLUICE_API_KEY   credentials (they also override the profile in every verb)
  SLUICE_PROFILE   profile to use when --profile is not given
  SLUICE_CONFIG    config file path`,
		Example: `  sluice login --from-file sluice-data/initial-credentials.json
  SLUICE_API_KEY=slk_… sluice login --endpoint https://sluice.example.com --instance-id … --client-id … --profile prod`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := flags
			if apiKeyFile != "" && p.APIKey == "" {
				key, err := readAPIKeyFile(apiKeyFile)
				if err != nil {
					return err
				}
				p.APIKey = key
			}
			if fromFile != "" {
				fp, err := readCredentialsFile(fromFile)
				if err != nil {
					return err
				}
				overlayMissing(&p, fp)
			}
			overlayMissing(&p, profile{Endpoint: os.Getenv(envEndpoint), InstanceID: os.Getenv(envInstanceID),
				ClientID: os.Getenv(envClientID), ClientSecret: os.Getenv(envClientSecret), APIKey: os.Getenv(envAPIKey)})
			if err := promptMissing(cmd, &p); err != nil {
				return err
			}
			if missing := p.missing(); len(missing) > 0 {
				return &usageError{err: fmt.Errorf("missing %s: give flags, --from-file or environment variables", strings.Join(missing, ", ")), cmd: cmd.CommandPath()}
			}
			c, err := newAPIClient(p, nil)
			if err != nil {
				return err
			}
			who, err := c.WhoAmI(cmd.Context())
			if err != nil {
				return fmt.Errorf("login to %s failed: %w", p.Endpoint, err)
			}
			path, err := configPath()
			if err != nil {
				return err
			}
			cfg, err := loadConfig(path)
			if err != nil {
				return err
			}
			p.Endpoint = c.Endpoint()
			cfg.Profiles[profileName] = &p
			if err := cfg.save(path); err != nil {
				return fmt.Errorf("unable to save the config file: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s as %s:%s (%s) in instance %s; profile %q saved in %s\n",
				p.Endpoint, who.Kind, who.Name, who.Role, who.InstanceID, profileName, path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&profileName, "profile", envOr(envProfile, "default"), "name of the profile to save (env "+envProfile+")")
	f.StringVar(&fromFile, "from-file", "", "JSON file with the credentials, e.g. <data-dir>/initial-credentials.json")
	f.StringVar(&apiKeyFile, "api-key-file", "", "IBM Cloud style apiKey.json holding the API key (apikey, field names in any case)")
	f.StringVar(&flags.Endpoint, "endpoint", "", "URL of the control plane, e.g. http://127.0.0.1:8080 (env "+envEndpoint+")")
	f.StringVar(&flags.InstanceID, "instance-id", "", "instance id (env "+envInstanceID+")")
	f.StringVar(&flags.ClientID, "client-id", "", "client id of a public API credential (env "+envClientID+")")
	f.StringVar(&flags.ClientSecret, "client-secret", "", "client secret; visible in the process list, prefer "+envClientSecret+" or the prompt")
	f.StringVar(&flags.APIKey, "api-key", "", "API key; visible in the process list, prefer "+envAPIKey+" or the prompt")
	return cmd
}

// readCredentialsFile reads initial-credentials.json, an API key download
// document, or any JSON object with the same field names.
func readCredentialsFile(path string) (profile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return profile{}, err
	}
	var doc struct {
		Endpoint     string `json:"endpoint"`
		InstanceID   string `json:"instanceId"`
		ClientID     string `json:"clientId"`
		ClientSecret string `json:"clientSecret"`
		APIKey       string `json:"apiKey"`
		Key          string `json:"key"` // an API key download document
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return profile{}, fmt.Errorf("%s is not a JSON credentials document: %w", path, err)
	}
	if doc.APIKey == "" {
		doc.APIKey = doc.Key
	}
	return profile{Endpoint: doc.Endpoint, InstanceID: doc.InstanceID, ClientID: doc.ClientID, ClientSecret: doc.ClientSecret, APIKey: doc.APIKey}, nil
}

// readAPIKeyFile reads the key of an apiKey.json document, as
// 'sluice api-keys create --file' and IBM Cloud write it ("apikey") or
// Terraform does ("Apikey"): encoding/json matches field names without
// regard to case.
func readAPIKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	var doc struct {
		APIKey string `json:"apikey"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return "", fmt.Errorf("%s is not an apiKey.json document: %w", path, err)
	}
	if doc.APIKey == "" {
		return "", fmt.Errorf("%s has no apikey field", path)
	}
	return doc.APIKey, nil
}

// overlayMissing fills the fields of p that are still empty from q.
func overlayMissing(p *profile, q profile) {
	fill := func(dst *string, v string) {
		if *dst == "" {
			*dst = v
		}
	}
	fill(&p.Endpoint, q.Endpoint)
	fill(&p.InstanceID, q.InstanceID)
	fill(&p.ClientID, q.ClientID)
	fill(&p.ClientSecret, q.ClientSecret)
	fill(&p.APIKey, q.APIKey)
}

// promptMissing asks for the missing secrets when stdin is a terminal,
// without echoing them.
func promptMissing(cmd *cobra.Command, p *profile) error {
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return nil
	}
	for _, f := range []struct {
		label string
		dst   *string
	}{{"Client secret", &p.ClientSecret}, {"API key", &p.APIKey}} {
		if *f.dst != "" {
			continue
		}
		v, err := readHidden(cmd.ErrOrStderr(), in, f.label+": ")
		if err != nil {
			return err
		}
		*f.dst = v
	}
	return nil
}

// readHidden prompts on w and reads a line from the terminal in without
// echo.
func readHidden(w io.Writer, in *os.File, prompt string) (string, error) {
	fmt.Fprint(w, prompt)
	b, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(w)
	if err != nil {
		return "", fmt.Errorf("unable to read from the terminal: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// readLine reads the first line of r, without its line ending.
func readLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}
