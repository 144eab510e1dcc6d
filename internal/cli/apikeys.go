package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

func newAPIKeysCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "api-keys",
		Aliases: []string{"api-key", "apikeys"},
		Short:   "Create, list, lock, unlock and delete API keys",
		Long: `Manage API keys. Everyone manages their own keys; admins manage every key of
the instance and create keys for other users and service IDs. A key is named
by its id (ak-…) or, when that is unambiguous, by its name.`,
	}
	af.register(cmd, true)
	cmd.AddCommand(newAPIKeysCreateCommand(&af), newAPIKeysListCommand(&af), newAPIKeysGetCommand(&af),
		newAPIKeysSetLockedCommand(&af, true), newAPIKeysSetLockedCommand(&af, false), newAPIKeysDeleteCommand(&af))
	return cmd
}

func apiKeyTable(tw io.Writer, keys ...client.APIKey) {
	row(tw, "ID", "NAME", "OWNER", "STATE", "HINT", "EXPIRES", "LAST USED", "CREATED")
	for _, k := range keys {
		state := "active"
		switch {
		case k.Status.Locked:
			state = "locked"
		case k.Status.Expired:
			state = "expired"
		}
		row(tw, k.Metadata.ID, k.Metadata.Name, ownerText(k.Spec.Owner), state, orDash(k.Status.Hint),
			when(k.Spec.ExpiresAt), when(k.Status.LastUsedAt), when(k.Metadata.CreatedAt))
	}
}

func newAPIKeysCreateCommand(af *apiFlags) *cobra.Command {
	var (
		description string
		owner       string
		expires     string
		save        string
		file        string
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create an API key and print its value, once",
		Long: `Create an API key. Its value is printed once and cannot be recovered: copy it,
or give --save FILE to write the download document (name, description,
created, key) to a new file with mode 0600, or --file apiKey.json to write it
in IBM Cloud's apiKey.json shape (name, description, createdAt, apikey),
which 'sluice login --api-key-file' and IBM's tools read.`,
		Example: `  sluice api-keys create ci --description "pipeline" --expires 720h --save ci-key.json
  sluice api-keys create deploy --owner serviceId:deployer -o json
  sluice api-keys create ibm --file apiKey.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ow, err := parseOwner(owner)
			if err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			exp, err := parseExpiry(expires, time.Now())
			if err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			k, err := c.CreateAPIKey(cmd.Context(), client.APIKey{Metadata: client.Metadata{Name: args[0]},
				Spec: client.APIKeySpec{Description: description, Owner: ow, ExpiresAt: exp}})
			if err != nil {
				return err
			}
			// The key exists now; failing to save it must still show it,
			// or it is lost.
			var saved []string
			for _, out := range []struct {
				path string
				doc  func() ([]byte, error)
			}{{save, k.Download.RevealJSON}, {file, k.APIKeyJSON.RevealJSON}} {
				if out.path == "" {
					continue
				}
				doc, err := out.doc()
				if err == nil {
					err = writeSecretFile(out.path, append(doc, '\n'))
				}
				if err != nil {
					fmt.Fprintf(cmd.ErrOrStderr(), "sluice: unable to save the key to %s: %v; the key is printed below\n", out.path, err)
					continue
				}
				saved = append(saved, out.path)
			}
			// The answer of the create call, key revealed: the one time
			// it may be shown.
			type download struct {
				Name        string `json:"name"`
				Description string `json:"description"`
				Created     string `json:"created"`
				Key         string `json:"key"`
			}
			out := struct {
				client.APIKey
				Key      string   `json:"key"`
				Download download `json:"download"`
			}{k.APIKey, k.Key.Reveal(), download{k.Download.Name, k.Download.Description, k.Download.Created, k.Download.Key.Reveal()}}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) {
				apiKeyTable(tw, k.APIKey)
				fmt.Fprintln(tw)
				if len(saved) > 0 {
					fmt.Fprintf(tw, "The key was saved to %s (mode 0600). It is shown only once:\n", strings.Join(saved, " and "))
				} else {
					fmt.Fprintln(tw, "Copy the key now: it is shown only once and cannot be recovered.")
				}
				fmt.Fprintln(tw, out.Key)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&description, "description", "", "what the key is for")
	f.StringVar(&owner, "owner", "", "user:NAME or serviceId:NAME to own the key (admins; default yourself)")
	f.StringVar(&expires, "expires", "", "expiry: an RFC 3339 time (2027-01-31T00:00:00Z) or a duration from now (720h); default never")
	f.StringVar(&save, "save", "", "write the download document (with the key) to this new file, mode 0600")
	f.StringVar(&file, "file", "", "write the key in IBM Cloud's apiKey.json shape to this new file, mode 0600")
	return cmd
}

// parseExpiry reads an RFC 3339 time or a duration from now.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d).Truncate(time.Second), nil
	}
	return time.Time{}, fmt.Errorf("--expires %q is neither an RFC 3339 time such as 2027-01-31T00:00:00Z nor a positive duration such as 720h", s)
}

func newAPIKeysListCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List your API keys (every key of the instance for admins)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			keys, err := c.ListAPIKeys(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"apiKeys": keys}, func(tw *tabwriter.Writer) {
				apiKeyTable(tw, keys...)
			})
		},
	}
}

func newAPIKeysGetCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID|NAME",
		Short: "Show one API key",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			id, err := resolveAPIKey(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			k, err := c.GetAPIKey(cmd.Context(), id)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, k, func(tw *tabwriter.Writer) { apiKeyTable(tw, k) })
		},
	}
}

func newAPIKeysSetLockedCommand(af *apiFlags, lock bool) *cobra.Command {
	use, short := "unlock ID|NAME", "Unlock an API key"
	if lock {
		use, short = "lock ID|NAME", "Lock an API key: it and every token minted from it stop working at once"
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			id, err := resolveAPIKey(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			var k client.APIKey
			if lock {
				k, err = c.LockAPIKey(cmd.Context(), id)
			} else {
				k, err = c.UnlockAPIKey(cmd.Context(), id)
			}
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, k, func(tw *tabwriter.Writer) { apiKeyTable(tw, k) })
		},
	}
}

func newAPIKeysDeleteCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID|NAME",
		Short: "Delete an API key: it and every token minted from it stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			id, err := resolveAPIKey(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if err := c.DeleteAPIKey(cmd.Context(), id); err != nil {
				return err
			}
			return renderDeleted(cmd, af, "API key", id)
		},
	}
}

// resolveAPIKey turns a name into a key id when the argument is not an id
// already. Names are unique per owner only, so a name that admins see on
// several owners' keys must be given as an id.
func resolveAPIKey(ctx context.Context, c *client.Client, arg string) (string, error) {
	if strings.HasPrefix(arg, "ak-") {
		return arg, nil
	}
	keys, err := c.ListAPIKeys(ctx)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, k := range keys {
		if k.Metadata.Name == arg {
			ids = append(ids, k.Metadata.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("no API key is named %q", arg)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("%d API keys are named %q: give the id (%s)", len(ids), arg, strings.Join(ids, ", "))
}

// renderDeleted reports a deletion: a sentence in a table, an object in
// JSON and YAML so scripts can parse every answer.
func renderDeleted(cmd *cobra.Command, af *apiFlags, what, name string) error {
	return render(cmd.OutOrStdout(), af.output, map[string]string{"deleted": name}, func(tw *tabwriter.Writer) {
		fmt.Fprintf(tw, "%s %s deleted\n", what, name)
	})
}
