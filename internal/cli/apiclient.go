package cli

// This file holds what the API verbs (login, token, api-keys, service-ids,
// credentials, users, audit) share: the profile configuration file, the
// construction of a client from a profile and the environment, and the
// -o table|json|yaml output.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/client"
)

// Environment variables the API verbs read. Each one overrides the same
// field of the selected profile, so CI jobs can work without a config file.
const (
	envConfig       = "SLUICE_CONFIG"
	envProfile      = "SLUICE_PROFILE"
	envEndpoint     = "SLUICE_ENDPOINT"
	envInstanceID   = "SLUICE_INSTANCE_ID"
	envClientID     = "SLUICE_CLIENT_ID"
	envClientSecret = "SLUICE_CLIENT_SECRET"
	envAPIKey       = "SLUICE_API_KEY"
)

// profile is one named set of credentials in the config file. The file
// necessarily holds the client secret and the API key in clear text: they
// are what gets a token, and a token expires. That is why the file is
// written with mode 0600 and refused when others can read it. The access
// token is kept apart (fileTokenCache), also 0600, until shortly before it
// expires.
type profile struct {
	Endpoint     string `yaml:"endpoint"`
	InstanceID   string `yaml:"instanceId"`
	ClientID     string `yaml:"clientId"`
	ClientSecret string `yaml:"clientSecret"`
	APIKey       string `yaml:"apiKey"`
}

// cliConfig is the whole config file.
type cliConfig struct {
	Profiles map[string]*profile `yaml:"profiles"`
}

const configHeader = `# Sluice CLI configuration, written by 'sluice login'.
# It holds credentials (client secret, API key) in clear text: keep it
# readable by its owner only (mode 0600). Sluice refuses it otherwise.
`

// configPath returns $SLUICE_CONFIG, or config.yaml under
// $XDG_CONFIG_HOME/sluice (default ~/.config/sluice).
func configPath() (string, error) {
	if p := os.Getenv(envConfig); p != "" {
		return p, nil
	}
	dir := os.Getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("cannot find the config file: set %s or HOME: %w", envConfig, err)
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "sluice", "config.yaml"), nil
}

// loadConfig reads the config file; a missing file is an empty config.
func loadConfig(path string) (*cliConfig, error) {
	cfg := &cliConfig{Profiles: map[string]*profile{}}
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return nil, err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("config file %s has mode %#o but holds credentials: make it readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := yaml.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if cfg.Profiles == nil {
		cfg.Profiles = map[string]*profile{}
	}
	return cfg, nil
}

// save writes the config with mode 0600 through a temporary file renamed
// into place, so a crash never leaves half a file and the credentials are
// never readable by others, not even for a moment.
func (cfg *cliConfig) save(path string) error {
	var body bytes.Buffer
	enc := yaml.NewEncoder(&body)
	enc.SetIndent(2)
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".config-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.WriteString(configHeader + body.String()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// apiFlags are the flags every API verb has.
type apiFlags struct {
	profile string
	output  string
}

func (f *apiFlags) register(cmd *cobra.Command, persistent bool) {
	set := cmd.Flags()
	if persistent {
		set = cmd.PersistentFlags()
	}
	set.StringVar(&f.profile, "profile", envOr(envProfile, "default"), "profile of the config file to use (env "+envProfile+")")
	set.StringVarP(&f.output, "output", "o", "table", "output format: table, json or yaml")
}

// checkOutput refuses an unknown -o value before anything is done.
func (f *apiFlags) checkOutput(cmd *cobra.Command) error {
	switch f.output {
	case "table", "json", "yaml":
		return nil
	}
	return &usageError{err: fmt.Errorf("-o %q is not one of table, json, yaml", f.output), cmd: cmd.CommandPath()}
}

// client builds a client from the selected profile, with every field the
// environment sets overriding the profile's.
func (f *apiFlags) client(cmd *cobra.Command) (*client.Client, error) {
	if err := f.checkOutput(cmd); err != nil {
		return nil, err
	}
	path, err := configPath()
	if err != nil {
		return nil, err
	}
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	p := profile{}
	if cp, ok := cfg.Profiles[f.profile]; ok {
		p = *cp
	}
	overlay(&p.Endpoint, os.Getenv(envEndpoint))
	overlay(&p.InstanceID, os.Getenv(envInstanceID))
	overlay(&p.ClientID, os.Getenv(envClientID))
	overlay(&p.ClientSecret, os.Getenv(envClientSecret))
	overlay(&p.APIKey, os.Getenv(envAPIKey))
	if missing := p.missing(); len(missing) > 0 {
		if _, ok := cfg.Profiles[f.profile]; !ok {
			return nil, fmt.Errorf("not logged in: no profile %q in %s; run 'sluice login' or set %s, %s, %s, %s and %s",
				f.profile, path, envEndpoint, envInstanceID, envClientID, envClientSecret, envAPIKey)
		}
		return nil, fmt.Errorf("profile %q in %s lacks %s; run 'sluice login' again", f.profile, path, strings.Join(missing, ", "))
	}
	return newAPIClient(p, tokenCacheFor(path, p))
}

// newAPIClient returns a client of p's credentials; cache, when not nil,
// keeps its token between runs.
func newAPIClient(p profile, cache client.TokenCache) (*client.Client, error) {
	opts := client.Options{
		UserAgent: "sluice-cli",
		Credentials: client.Credentials{InstanceID: p.InstanceID, ClientID: p.ClientID,
			ClientSecret: client.NewSecret(p.ClientSecret), APIKey: client.NewSecret(p.APIKey)},
	}
	if cache != nil {
		opts.Cache = cache
	}
	return client.New(p.Endpoint, opts)
}

func overlay(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// missing names the fields a profile lacks.
func (p profile) missing() []string {
	var m []string
	for _, f := range []struct{ name, v string }{{"endpoint", p.Endpoint}, {"instance id", p.InstanceID},
		{"client id", p.ClientID}, {"client secret", p.ClientSecret}, {"API key", p.APIKey}} {
		if f.v == "" {
			m = append(m, f.name)
		}
	}
	return m
}

// ---- output ----

// getCommand is a `get NAME` verb over a client get call: the object is
// printed as -o asks, its table view by table.
func getCommand[T any](af *apiFlags, short string, get func(*client.Client, context.Context, string) (T, error), table func(io.Writer, ...T)) *cobra.Command {
	return &cobra.Command{
		Use:   "get NAME",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			x, err := get(c, cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, x, func(tw *tabwriter.Writer) { table(tw, x) })
		},
	}
}

// render writes v as JSON or YAML, or calls table for the table format.
// JSON and YAML carry the API's own field names: YAML is made from the
// JSON, so the two never disagree.
func render(w io.Writer, format string, v any, table func(tw *tabwriter.Writer)) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case "yaml":
		b, err := toYAML(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// toYAML converts v to YAML through its JSON encoding. JSON is YAML, so
// decoding it into a yaml.Node keeps the field order; clearing the flow
// and quoting styles makes the encoder write ordinary block YAML (it still
// quotes strings that would otherwise read as numbers or booleans).
func toYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(j, &n); err != nil {
		return nil, err
	}
	var clear func(*yaml.Node)
	clear = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			clear(c)
		}
	}
	clear(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}

// row writes one tab-separated table row.
func row(tw io.Writer, cols ...string) {
	fmt.Fprintln(tw, strings.Join(cols, "\t"))
}

// when formats a time for tables: UTC, whole seconds; "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ownerText(o *client.Owner) string {
	if o == nil {
		return "-"
	}
	return o.Kind + ":" + o.Name
}

// parseOwner reads "user:NAME" or "serviceId:NAME" (also "service-id:NAME").
func parseOwner(s string) (*client.Owner, error) {
	if s == "" {
		return nil, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return nil, fmt.Errorf("owner %q must be user:NAME or serviceId:NAME", s)
	}
	switch strings.ToLower(kind) {
	case "user":
		kind = client.OwnerUser
	case "serviceid", "service-id", "sid":
		kind = client.OwnerServiceID
	default:
		return nil, fmt.Errorf("owner kind %q is not one of user, serviceId", kind)
	}
	return &client.Owner{Kind: kind, Name: name}, nil
}

// writeSecretFile writes a file holding a secret with mode 0600, refusing
// to overwrite an existing file.
func writeSecretFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// withFlagNames rewrites the API query parameters a server message names
// into the CLI flags that send them (e.g. "?force=true" into "--force"),
// so a CLI user is told what to type, not what goes over the wire.
func withFlagNames(err error, flags map[string]string) error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		return err
	}
	out := *ce
	for param, flag := range flags {
		out.Message = strings.ReplaceAll(out.Message, param, flag)
	}
	return &out
}
