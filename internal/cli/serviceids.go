package cli

import (
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

var serviceIDsAPI = identityAPI{word: "service ID", listKey: "serviceIds",
	list: (*client.Client).ListServiceIDs, get: (*client.Client).GetServiceID,
	create: (*client.Client).CreateServiceID, delete: (*client.Client).DeleteServiceID}

func newServiceIDsCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "service-ids",
		Aliases: []string{"service-id", "serviceids"},
		Short:   "Create, list, show and delete service IDs (admins)",
		Long: `Manage service IDs: non-human identities with a role, for pipelines and other
programs. Give one an API key with 'sluice api-keys create NAME --owner
serviceId:ID-NAME'.`,
	}
	af.register(cmd, true)
	cmd.AddCommand(newServiceIDsCreateCommand(&af), newIdentityListCommand(&af, serviceIDsAPI),
		newIdentityGetCommand(&af, serviceIDsAPI), newIdentityDeleteCommand(&af, serviceIDsAPI))
	return cmd
}

func newServiceIDsCreateCommand(af *apiFlags) *cobra.Command {
	var role, description string
	cmd := &cobra.Command{
		Use:     "create NAME",
		Short:   "Create a service ID",
		Example: `  sluice service-ids create deployer --role developer --description "CD pipeline"`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			s, err := serviceIDsAPI.create(c, cmd.Context(), client.Identity{Metadata: client.Metadata{Name: args[0]},
				Spec: client.IdentitySpec{Role: role, Description: description}})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, s, func(tw *tabwriter.Writer) { identityTable(tw, s) })
		},
	}
	cmd.Flags().StringVar(&role, "role", "viewer", "role: admin, developer or viewer")
	cmd.Flags().StringVar(&description, "description", "", "what the service ID is for")
	return cmd
}
