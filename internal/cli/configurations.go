package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/client"
)

// newConfigurationsCommand is `sluice configurations`: configurations are
// credentials, settings and certificates runtimes are given. Their data
// is secret: these verbs send it and never print it.
func newConfigurationsCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "configurations",
		Aliases: []string{"configuration", "config", "configs"},
		Short:   "Create, replace, list, show and delete configurations (credentials, settings, certificates)",
	}
	af.register(cmd, true)
	cmd.AddCommand(newConfigurationPutCommand(&af, true), newConfigurationPutCommand(&af, false),
		newConfigurationListCommand(&af), newConfigurationGetCommand(&af), newConfigurationDeleteCommand(&af),
		newConfigurationTypesCommand(&af))
	return cmd
}

func newConfigurationPutCommand(af *apiFlags, create bool) *cobra.Command {
	var (
		typ, description, file string
		keepData               bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME --type TYPE [--file FILE]",
		Short: "Create a configuration from a file or standard input (fails if the name is taken)",
		Long: `Create a configuration. Its data is read from --file, or from standard input
when --file is not given (or is "-"); the CLI base64-encodes it. The server
checks the data against the type ('sluice configurations types' lists them)
and seals it; it is never shown again.`,
		Example: `  sluice configurations create db-creds --type setdbparms --file setdbparms.txt
  printf 'orders-db app %s\n' "$DB_PASSWORD" | sluice configurations create db-creds --type setdbparms`,
		Args: cobra.ExactArgs(1),
	}
	if !create {
		cmd.Use = "apply NAME [--type TYPE] [--file FILE | --keep-data]"
		cmd.Short = "Create or replace a configuration (runtimes using it pick up the change)"
		cmd.Long = `Create a configuration or replace it (PUT). The data is read as for create;
--keep-data changes only the type or description and keeps the current data.
Without --type, a replaced configuration keeps its type (and, without
--description, its description).`
		cmd.Example = `  sluice configurations apply db-creds --file setdbparms.txt`
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if keepData && file != "" {
			return &usageError{err: errors.New("--keep-data and --file exclude each other"), cmd: cmd.CommandPath()}
		}
		if create && typ == "" {
			return &usageError{err: errors.New("--type is required (see 'sluice configurations types')"), cmd: cmd.CommandPath()}
		}
		c, err := af.client(cmd)
		if err != nil {
			return err
		}
		cfg := client.Configuration{Metadata: client.Metadata{Name: args[0]},
			Spec: client.ConfigurationSpec{Type: typ, Description: description}}
		if !create && typ == "" {
			cur, err := c.GetConfiguration(cmd.Context(), args[0])
			if client.IsNotFound(err) {
				return &usageError{err: fmt.Errorf("configuration %s does not exist yet: give its --type", args[0]), cmd: cmd.CommandPath()}
			}
			if err != nil {
				return err
			}
			cfg.Spec.Type = cur.Spec.Type
			if !cmd.Flags().Changed("description") {
				cfg.Spec.Description = cur.Spec.Description
			}
		}
		if !keepData {
			if cfg.Spec.Data, err = readData(cmd, file); err != nil {
				return err
			}
		}
		put := c.PutConfiguration
		if create {
			put = c.CreateConfiguration
		}
		out, err := put(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { configurationTable(tw, out) })
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "configuration type, e.g. setdbparms, serverconf, barauth, generic")
	f.StringVar(&description, "description", "", "what the configuration is for")
	f.StringVarP(&file, "file", "f", "", `file holding the data ("-" or none: standard input)`)
	if !create {
		f.BoolVar(&keepData, "keep-data", false, "keep the current data; change only type or description")
	}
	return cmd
}

// readData reads a configuration's data from file, or from standard input
// when file is "" or "-". A terminal on standard input is refused rather
// than waited on.
func readData(cmd *cobra.Command, file string) ([]byte, error) {
	if file != "" && file != "-" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("unable to read the data: %w", err)
		}
		return b, nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return nil, &usageError{err: errors.New("no data: give --file FILE or pipe the data on standard input"), cmd: cmd.CommandPath()}
	}
	b, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("unable to read the data from standard input: %w", err)
	}
	return b, nil
}

func configurationTable(tw io.Writer, cs ...client.Configuration) {
	row(tw, "NAME", "TYPE", "SIZE", "DESCRIPTION", "UPDATED", "UPDATED BY")
	for _, c := range cs {
		by := c.Status.UpdatedBy
		if by == "" {
			by = c.Metadata.CreatedBy
		}
		updated := c.Metadata.UpdatedAt
		if updated.IsZero() {
			updated = c.Metadata.CreatedAt
		}
		row(tw, c.Metadata.Name, c.Spec.Type, strconv.FormatInt(c.Status.Size, 10), orDash(c.Spec.Description), when(updated), orDash(by))
	}
}

func newConfigurationListCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List configurations (never their data)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			cs, err := c.ListConfigurations(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"configurations": cs}, func(tw *tabwriter.Writer) {
				configurationTable(tw, cs...)
			})
		},
	}
}

func newConfigurationGetCommand(af *apiFlags) *cobra.Command {
	return getCommand(af, "Show one configuration (never its data)", (*client.Client).GetConfiguration, configurationTable)
}

func newConfigurationDeleteCommand(af *apiFlags) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME [--force]",
		Short: "Delete a configuration; one that runtimes use needs --force",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteConfiguration(cmd.Context(), args[0], force); err != nil {
				return withFlagNames(err, map[string]string{"?force=true": "--force"})
			}
			return renderDeleted(cmd, af, "configuration", args[0])
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete even if integration runtimes use it")
	return cmd
}

func newConfigurationTypesCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "types",
		Short: "List the configuration types: what each holds and what a runtime does with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			ts, err := c.ListConfigurationTypes(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"configurationTypes": ts}, func(tw *tabwriter.Writer) {
				row(tw, "TYPE", "SECRET", "HOLDS")
				for _, t := range ts {
					row(tw, t.Name, strconv.FormatBool(t.Secret), t.Holds)
				}
			})
		},
	}
}
