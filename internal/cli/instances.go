package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server"
)

// newInstancesCommand is the operator's tenant management. It works on the
// store directly (like master-key rotate), not through the API: creating a
// tenant is above any one tenant's admin.
func newInstancesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "instances",
		Short: "Manage instances (tenants) of a control plane's store",
	}
	var (
		sf       storeFlags
		output   string
		endpoint string
	)
	create := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an instance with an admin user, an API key and a client credential",
		Long: `Create an instance (a tenant: nothing crosses instances) in the store of a
control plane, with an admin user, an API key for it and a public API
credential, and print their secrets. They are shown this once and stored
only as hashes.

It may run while 'sluice serve' is serving the same --data-dir/--store.
The store must have been started once by 'sluice serve'. Give the same
SLUICE_MASTER_KEY as the control plane when it uses one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "table", "json", "yaml":
			default:
				return &usageError{err: fmt.Errorf("-o %q is not one of table, json, yaml", output), cmd: cmd.CommandPath()}
			}
			// Log lines go to stderr so that -o json output stays parseable.
			log, err := obs.NewLogger(os.Stderr, "auto", "warn")
			if err != nil {
				return err
			}
			creds, err := server.CreateInstance(context.Background(), sf.store, sf.dataDir,
				secret.New(os.Getenv("SLUICE_MASTER_KEY")), args[0], log)
			if err != nil {
				return err
			}
			if endpoint == "" {
				endpoint = firstEndpoint(sf.dataDir)
			}
			creds.Endpoint = endpoint
			return printInstanceCredentials(cmd.OutOrStdout(), output, args[0], creds)
		},
	}
	sf.register(create)
	create.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	create.Flags().StringVar(&endpoint, "endpoint", envOr("SLUICE_PUBLIC_URL", ""), "URL of the control plane, for the printed token request (env SLUICE_PUBLIC_URL)")
	cmd.AddCommand(create, newInstancesListCommand(), newInstancesDeleteCommand())
	return cmd
}

// instanceOut is an instance as `instances list -o json` prints it.
type instanceOut struct {
	ID        string   `json:"id" yaml:"id"`
	Name      string   `json:"name" yaml:"name"`
	CreatedAt string   `json:"createdAt" yaml:"createdAt"`
	Contents  contents `json:"contents" yaml:"contents"`
}

type contents struct {
	Users          int      `json:"users" yaml:"users"`
	ServiceIDs     int      `json:"serviceIds" yaml:"serviceIds"`
	APIKeys        int      `json:"apiKeys" yaml:"apiKeys"`
	Credentials    int      `json:"credentials" yaml:"credentials"`
	Configurations int      `json:"configurations" yaml:"configurations"`
	BARFiles       int      `json:"barFiles" yaml:"barFiles"`
	Runtimes       []string `json:"integrationRuntimes" yaml:"integrationRuntimes"`
	Traces         int      `json:"traces" yaml:"traces"`
}

func toInstanceOut(s server.InstanceSummary) instanceOut {
	c := s.Contents
	rts := c.Runtimes
	if rts == nil {
		rts = []string{}
	}
	return instanceOut{ID: s.ID, Name: s.Name, CreatedAt: s.CreatedAt.UTC().Format("2006-01-02T15:04:05Z"),
		Contents: contents{Users: c.Users, ServiceIDs: c.ServiceIDs, APIKeys: c.APIKeys, Credentials: c.Credentials,
			Configurations: c.Configurations, BARFiles: c.BARFiles, Runtimes: rts, Traces: c.Traces}}
}

// describe says what an instance holds, for people.
func (c contents) describe() string {
	n := func(k int, one, many string) string {
		if k == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", k, many)
	}
	return strings.Join([]string{n(c.Users, "user", "users"), n(c.ServiceIDs, "service ID", "service IDs"),
		n(c.APIKeys, "API key", "API keys"), n(c.Credentials, "credential", "credentials"),
		n(c.Configurations, "configuration", "configurations"), n(c.BARFiles, "BAR file", "BAR files"),
		n(len(c.Runtimes), "integration runtime", "integration runtimes"), n(c.Traces, "trace", "traces")}, ", ")
}

func checkOutput(cmd *cobra.Command, output string) error {
	switch output {
	case "table", "json", "yaml":
		return nil
	}
	return &usageError{err: fmt.Errorf("-o %q is not one of table, json, yaml", output), cmd: cmd.CommandPath()}
}

func printStructured(w io.Writer, format string, v any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newInstancesListCommand() *cobra.Command {
	var (
		sf     storeFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the instances of a control plane's store, with what each holds",
		Long: `List the instances (tenants) of a control plane's store, with the number of
users, service IDs, API keys, credentials, configurations, BAR files,
integration runtimes and traces in each. It reads the store directly, as
'instances create' does, and may run while 'sluice serve' serves it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(cmd, output); err != nil {
				return err
			}
			list, err := server.ListInstances(cmd.Context(), sf.store, sf.dataDir)
			if err != nil {
				return err
			}
			out := make([]instanceOut, 0, len(list))
			for _, s := range list {
				out = append(out, toInstanceOut(s))
			}
			if output != "table" {
				return printStructured(cmd.OutOrStdout(), output, map[string]any{"instances": out})
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tCREATED\tUSERS\tKEYS\tCONFIGURATIONS\tBAR FILES\tRUNTIMES")
			for _, o := range out {
				c := o.Contents
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\n", o.ID, o.Name, o.CreatedAt, c.Users, c.APIKeys, c.Configurations, c.BARFiles, len(c.Runtimes))
			}
			return tw.Flush()
		},
	}
	sf.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func newInstancesDeleteCommand() *cobra.Command {
	var (
		sf     storeFlags
		force  bool
		output string
	)
	cmd := &cobra.Command{
		Use:   "delete ID|NAME [--force]",
		Short: "Delete an instance and everything in it; one with integration runtimes needs --force",
		Long: `Delete an instance (a tenant) from a control plane's store, with everything
it holds: its users and service IDs, their API keys, its public API
credentials (tokens issued with them stop working at once), its
configurations, BAR files, integration runtimes and traces. Its audit
trail is kept. It says what it removed.

An instance that still has integration runtimes is refused unless --force
is given; then a control plane serving the store stops their processes
within a moment (or at its next start) and removes their files. The
store's only instance is never deleted. Give the same SLUICE_MASTER_KEY
as the control plane when it uses one.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(cmd, output); err != nil {
				return err
			}
			log, err := obs.NewLogger(os.Stderr, "auto", "warn")
			if err != nil {
				return err
			}
			gone, err := server.DeleteInstance(cmd.Context(), sf.store, sf.dataDir, secret.New(os.Getenv("SLUICE_MASTER_KEY")), args[0], force, log)
			var busy *server.InstanceHasRuntimes
			if errors.As(err, &busy) {
				return fmt.Errorf("%v: delete them first, or give --force to delete them with the instance", busy)
			}
			if err != nil {
				return err
			}
			o := toInstanceOut(gone)
			if output != "table" {
				return printStructured(cmd.OutOrStdout(), output, map[string]any{"deleted": o})
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "deleted instance %s (%s) with %s; its audit trail is kept\n", o.ID, o.Name, o.Contents.describe())
			return err
		},
	}
	sf.register(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "delete the instance's integration runtimes with it")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table, json or yaml")
	return cmd
}

func printInstanceCredentials(w io.Writer, format, name string, c iam.InitialCredentials) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	case "yaml":
		// A node keeps the keys in the order of the JSON form.
		doc := &yaml.Node{Kind: yaml.MappingNode}
		for _, kv := range [][2]string{{"endpoint", c.Endpoint}, {"instanceId", c.InstanceID}, {"clientId", c.ClientID},
			{"clientSecret", c.ClientSecret}, {"apiKey", c.APIKey}, {"username", c.Username}, {"password", c.Password}} {
			doc.Content = append(doc.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: kv[0]},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: kv[1]})
		}
		b, err := yaml.Marshal(doc)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	endpoint := c.Endpoint
	if endpoint == "" {
		endpoint = "<endpoint>"
	}
	_, err := fmt.Fprintf(w, `created instance %[1]s (%[2]s) with an admin user, an API key and a client credential.
These secrets are shown once:
  instance id:    %[1]s
  client id:      %[3]s
  client secret:  %[4]s
  API key:        %[5]s
  admin login:    %[6]s / %[7]s
Get a token:
  curl -s -X POST %[8]s/api/v1/tokens -H 'X-IBM-Client-Id: %[3]s' -H 'X-IBM-Client-Secret: %[4]s' -H 'x-ibm-instance-id: %[1]s' -H 'Content-Type: application/json' -d '{"apiKey":"%[5]s"}'
`, c.InstanceID, name, c.ClientID, c.ClientSecret, c.APIKey, c.Username, c.Password, endpoint)
	return err
}

// firstEndpoint reads the endpoint the first start recorded in the data
// dir, so the printed curl line is ready to paste; "" when there is none.
func firstEndpoint(dataDir string) string {
	b, err := os.ReadFile(filepath.Join(dataDir, server.InitialCredentialsFile))
	if err != nil {
		return ""
	}
	var c iam.InitialCredentials
	if json.Unmarshal(b, &c) != nil {
		return ""
	}
	return c.Endpoint
}
