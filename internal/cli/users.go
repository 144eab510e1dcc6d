package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/sluice-dev/sluice/client"
)

// identityAPI is what the users and service-ids verbs call; the two kinds
// share every verb but the password.
type identityAPI struct {
	word    string // "user", "service ID"
	listKey string // key of the list in JSON output, as the API has it
	list    func(*client.Client, context.Context) ([]client.Identity, error)
	get     func(*client.Client, context.Context, string) (client.Identity, error)
	create  func(*client.Client, context.Context, client.Identity) (client.Identity, error)
	delete  func(*client.Client, context.Context, string) error
}

var usersAPI = identityAPI{word: "user", listKey: "users",
	list: (*client.Client).ListUsers, get: (*client.Client).GetUser,
	create: (*client.Client).CreateUser, delete: (*client.Client).DeleteUser}

func newUsersCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "users",
		Aliases: []string{"user"},
		Short:   "Create, list, show and delete users (admins)",
	}
	af.register(cmd, true)
	cmd.AddCommand(newUsersCreateCommand(&af), newIdentityListCommand(&af, usersAPI),
		newIdentityGetCommand(&af, usersAPI), newIdentityDeleteCommand(&af, usersAPI))
	return cmd
}

func newUsersCreateCommand(af *apiFlags) *cobra.Command {
	var (
		role, description     string
		passwordStdin, noPass bool
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a user",
		Long: `Create a user with a role (admin, developer or viewer). The password, which
the dashboard login needs, is read from the first line of standard input with
--password-stdin, or asked for (twice, without echo) on a terminal; it is never
taken from a flag value, which other users could see in the process list.
--no-password creates a user without one.`,
		Example: `  printf '%s\n' "$PASSWORD" | sluice users create alice --role developer --password-stdin`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if passwordStdin && noPass {
				return &usageError{err: errors.New("--password-stdin and --no-password exclude each other"), cmd: cmd.CommandPath()}
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			var pw string
			switch {
			case passwordStdin:
				if pw, err = readLine(cmd.InOrStdin()); err != nil {
					return fmt.Errorf("unable to read the password from standard input: %w", err)
				}
				if pw == "" {
					return errors.New("standard input holds no password")
				}
			case !noPass:
				if pw, err = promptNewPassword(cmd); err != nil {
					return err
				}
			}
			u, err := c.CreateUser(cmd.Context(), client.Identity{Metadata: client.Metadata{Name: args[0]},
				Spec: client.IdentitySpec{Role: role, Description: description, Password: client.NewSecret(pw)}})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, u, func(tw *tabwriter.Writer) { identityTable(tw, u) })
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", "viewer", "role: admin, developer or viewer")
	f.StringVar(&description, "description", "", "who the user is")
	f.BoolVar(&passwordStdin, "password-stdin", false, "read the password from the first line of standard input")
	f.BoolVar(&noPass, "no-password", false, "create the user without a password")
	return cmd
}

// promptNewPassword asks for a password twice on the terminal.
func promptNewPassword(cmd *cobra.Command) (string, error) {
	in, ok := cmd.InOrStdin().(*os.File)
	if !ok || !term.IsTerminal(int(in.Fd())) {
		return "", errors.New("no password: standard input is not a terminal; give --password-stdin or --no-password")
	}
	pw, err := readHidden(cmd.ErrOrStderr(), in, "Password: ")
	if err != nil {
		return "", err
	}
	again, err := readHidden(cmd.ErrOrStderr(), in, "Password again: ")
	if err != nil {
		return "", err
	}
	if pw != again {
		return "", errors.New("the passwords differ")
	}
	if pw == "" {
		return "", errors.New("empty password; give --no-password to create a user without one")
	}
	return pw, nil
}

func identityTable(tw io.Writer, ids ...client.Identity) {
	row(tw, "NAME", "ID", "ROLE", "PASSWORD", "DESCRIPTION", "CREATED", "CREATED BY")
	for _, id := range ids {
		pw := "-"
		if id.Status.PasswordSet != nil {
			pw = map[bool]string{true: "set", false: "none"}[*id.Status.PasswordSet]
		}
		row(tw, id.Metadata.Name, id.Metadata.ID, id.Spec.Role, pw, orDash(id.Spec.Description),
			when(id.Metadata.CreatedAt), orDash(id.Metadata.CreatedBy))
	}
}

func newIdentityListCommand(af *apiFlags, api identityAPI) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List " + api.word + "s",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			ids, err := api.list(c, cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{api.listKey: ids}, func(tw *tabwriter.Writer) {
				identityTable(tw, ids...)
			})
		},
	}
}

func newIdentityGetCommand(af *apiFlags, api identityAPI) *cobra.Command {
	return getCommand(af, "Show one "+api.word, api.get, identityTable)
}

func newIdentityDeleteCommand(af *apiFlags, api identityAPI) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a " + api.word + " with its API keys; tokens minted from them stop working at once",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := api.delete(c, cmd.Context(), args[0]); err != nil {
				return err
			}
			return renderDeleted(cmd, af, api.word, args[0])
		},
	}
}
