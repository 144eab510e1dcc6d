package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

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
	cmd.AddCommand(create)
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
