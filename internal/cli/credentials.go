package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

func newCredentialsCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "credentials",
		Aliases: []string{"credential", "creds"},
		Short:   "Create, list, show and delete public API credentials (admins)",
		Long: `Manage public API credentials: the client id and client secret that, with an
API key, get a token. An instance can have several at a time, so they can be
rotated with overlap: create the new one, move the clients, delete the old.`,
	}
	af.register(cmd, true)
	cmd.AddCommand(newCredentialsCreateCommand(&af), newCredentialsListCommand(&af),
		newCredentialsGetCommand(&af), newCredentialsDeleteCommand(&af))
	return cmd
}

func credentialTable(tw io.Writer, cs ...client.Credential) {
	row(tw, "NAME", "CLIENT ID", "OWNER", "SECRET", "DESCRIPTION", "LAST USED", "CREATED")
	for _, c := range cs {
		row(tw, c.Metadata.Name, c.Status.ClientID, ownerText(c.Spec.Owner), orDash(c.Status.SecretHint),
			orDash(c.Spec.Description), when(c.Status.LastUsedAt), when(c.Metadata.CreatedAt))
	}
}

func newCredentialsCreateCommand(af *apiFlags) *cobra.Command {
	var description, owner string
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a credential and print its client secret, once",
		Long: `Create a public API credential. Its client secret is printed once and cannot
be recovered. With --owner the credential belongs to a user or service ID (an
application): the OAuth client_credentials grant alone then yields a token
with the owner's role.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ow, err := parseOwner(owner)
			if err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			cr, err := c.CreateCredential(cmd.Context(), client.Credential{Metadata: client.Metadata{Name: args[0]},
				Spec: client.CredentialSpec{Description: description, Owner: ow}})
			if err != nil {
				return err
			}
			// The create answer, secret revealed: the one time it may be
			// shown.
			out := struct {
				client.Credential
				ClientID     string `json:"clientId"`
				ClientSecret string `json:"clientSecret"`
			}{cr.Credential, cr.ClientID, cr.ClientSecret.Reveal()}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) {
				credentialTable(tw, cr.Credential)
				fmt.Fprintln(tw)
				fmt.Fprintln(tw, "Copy the client secret now: it is shown only once and cannot be recovered.")
				fmt.Fprintf(tw, "client id:     %s\nclient secret: %s\n", out.ClientID, out.ClientSecret)
			})
		},
	}
	cmd.Flags().StringVar(&description, "description", "", "what the credential is for")
	cmd.Flags().StringVar(&owner, "owner", "", "user:NAME or serviceId:NAME that owns it (an application credential)")
	return cmd
}

func newCredentialsListCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the instance's credentials",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			cs, err := c.ListCredentials(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"credentials": cs}, func(tw *tabwriter.Writer) {
				credentialTable(tw, cs...)
			})
		},
	}
}

func newCredentialsGetCommand(af *apiFlags) *cobra.Command {
	return getCommand(af, "Show one credential", (*client.Client).GetCredential, credentialTable)
}

func newCredentialsDeleteCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a credential; tokens minted for its client stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteCredential(cmd.Context(), args[0]); err != nil {
				return err
			}
			return renderDeleted(cmd, af, "credential", args[0])
		},
	}
}
