package cli

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

// newAppsCommand is `sluice apps`: catalogs, consumer orgs, apps, their
// credentials and leases. Every argument takes an id or a name.
func newAppsCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "apps",
		Short: "Manage consumer catalogs, consumer orgs, apps, app credentials and leases",
		Long: `Manage the consumer side of the instance: catalogs (a "sandbox" catalog always
exists), consumer orgs in a catalog, apps in a consumer org, and the apps'
credentials — permanent ones and leases that expire. Developers and admins
change them; viewers read. Every CATALOG, ORG, APP and CREDENTIAL argument
takes the object's id or its name.`,
	}
	af.register(cmd, true)
	var title, summary, state, defTTL, maxTTL string
	var force bool
	spec := func() client.ConsumerSpec {
		s := client.ConsumerSpec{Title: title, Summary: summary, State: state}
		if defTTL != "" || maxTTL != "" {
			s.CredentialPolicy = &client.CredentialPolicy{DefaultTTL: defTTL, MaxTTL: maxTTL}
		}
		return s
	}
	objFlags := func(c *cobra.Command, app bool) *cobra.Command {
		c.Flags().StringVar(&title, "title", "", "title (default: the name)")
		c.Flags().StringVar(&summary, "summary", "", "summary")
		if app {
			c.Flags().StringVar(&state, "state", "", "enabled or disabled")
			c.Flags().StringVar(&defTTL, "default-ttl", "", "credential policy: TTL of a lease that names none, e.g. 1h")
			c.Flags().StringVar(&maxTTL, "max-ttl", "", "credential policy: longest lease TTL, and how far past creation renewals may go")
		}
		return c
	}
	forceFlag := func(c *cobra.Command) *cobra.Command {
		c.Flags().BoolVar(&force, "force", false, "delete its children too")
		return c
	}
	run := func(n int, f func(cmd *cobra.Command, c *client.Client, args []string) error) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			return f(cmd, c, args)
		}
	}
	path := func(args []string) client.AppPath {
		p := client.AppPath{Catalog: args[0]}
		if len(args) > 1 {
			p.ConsumerOrg = args[1]
		}
		if len(args) > 2 {
			p.App = args[2]
		}
		return p
	}
	show := func(cmd *cobra.Command, v any, objs ...client.Consumer) error {
		return render(cmd.OutOrStdout(), af.output, v, func(tw *tabwriter.Writer) { consumerTable(tw, objs...) })
	}

	// put writes the object p names whole (PUT: created or replaced);
	// flags not given keep what the object has.
	put := func(cmd *cobra.Command, c *client.Client, p client.AppPath) (client.Consumer, error) {
		s := spec()
		cur, err := c.GetConsumer(cmd.Context(), p)
		if err == nil {
			if !cmd.Flags().Changed("title") {
				s.Title = cur.Spec.Title
			}
			if !cmd.Flags().Changed("summary") {
				s.Summary = cur.Spec.Summary
			}
		}
		return c.UpdateConsumer(cmd.Context(), p, client.Consumer{Spec: s})
	}
	get := func(use, short string, n int) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(n), RunE: run(n, func(cmd *cobra.Command, c *client.Client, args []string) error {
			o, err := c.GetConsumer(cmd.Context(), path(args))
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})}
	}
	update := func(use, short string, n int) *cobra.Command {
		return objFlags(&cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(n), RunE: run(n, func(cmd *cobra.Command, c *client.Client, args []string) error {
			o, err := put(cmd, c, path(args))
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})}, false)
	}

	catalogs := &cobra.Command{Use: "catalogs", Short: "List, show, create, update and delete catalogs"}
	catalogs.AddCommand(
		&cobra.Command{Use: "list", Short: "List the catalogs", Args: cobra.NoArgs, RunE: run(0, func(cmd *cobra.Command, c *client.Client, _ []string) error {
			cs, err := c.ListCatalogs(cmd.Context())
			if err != nil {
				return err
			}
			return show(cmd, map[string]any{"catalogs": cs}, cs...)
		})},
		objFlags(&cobra.Command{Use: "create NAME", Short: "Create a catalog", Args: cobra.ExactArgs(1), RunE: run(1, func(cmd *cobra.Command, c *client.Client, args []string) error {
			o, err := c.CreateCatalog(cmd.Context(), client.Consumer{Metadata: client.Metadata{Name: args[0]}, Spec: spec()})
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})}, false),
		get("get CATALOG", "Show a catalog", 1),
		update("update CATALOG", "Change a catalog's title or summary (creates it when the name is new)", 1),
		forceFlag(&cobra.Command{Use: "delete CATALOG", Short: "Delete a catalog (--force: with everything in it)", Args: cobra.ExactArgs(1), RunE: run(1, func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteConsumer(cmd.Context(), path(args), force); err != nil {
				return err
			}
			return renderDeleted(cmd, &af, "catalog", args[0])
		})}),
	)

	orgs := &cobra.Command{Use: "orgs", Aliases: []string{"consumer-orgs"}, Short: "List, show, create, update and delete consumer orgs"}
	orgs.AddCommand(
		&cobra.Command{Use: "list CATALOG", Short: "List a catalog's consumer orgs", Args: cobra.ExactArgs(1), RunE: run(1, func(cmd *cobra.Command, c *client.Client, args []string) error {
			os, err := c.ListConsumerOrgs(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return show(cmd, map[string]any{"consumerOrgs": os}, os...)
		})},
		objFlags(&cobra.Command{Use: "create CATALOG NAME", Short: "Create a consumer org", Args: cobra.ExactArgs(2), RunE: run(2, func(cmd *cobra.Command, c *client.Client, args []string) error {
			o, err := c.CreateConsumerOrg(cmd.Context(), args[0], client.Consumer{Metadata: client.Metadata{Name: args[1]}, Spec: spec()})
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})}, false),
		get("get CATALOG ORG", "Show a consumer org", 2),
		update("update CATALOG ORG", "Change a consumer org's title or summary (creates it when the name is new)", 2),
		forceFlag(&cobra.Command{Use: "delete CATALOG ORG", Short: "Delete a consumer org (--force: with its apps)", Args: cobra.ExactArgs(2), RunE: run(2, func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteConsumer(cmd.Context(), path(args), force); err != nil {
				return err
			}
			return renderDeleted(cmd, &af, "consumer org", args[1])
		})}),
	)

	cmd.AddCommand(catalogs, orgs,
		&cobra.Command{Use: "list CATALOG ORG", Short: "List a consumer org's apps", Args: cobra.ExactArgs(2), RunE: run(2, func(cmd *cobra.Command, c *client.Client, args []string) error {
			as, err := c.ListApps(cmd.Context(), path(args))
			if err != nil {
				return err
			}
			return show(cmd, map[string]any{"apps": as}, as...)
		})},
		&cobra.Command{Use: "get CATALOG ORG APP", Short: "Show an app", Args: cobra.ExactArgs(3), RunE: run(3, func(cmd *cobra.Command, c *client.Client, args []string) error {
			o, err := c.GetConsumer(cmd.Context(), path(args))
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})},
		objFlags(&cobra.Command{Use: "create CATALOG ORG NAME", Short: "Create an app", Args: cobra.ExactArgs(3), RunE: run(3, func(cmd *cobra.Command, c *client.Client, args []string) error {
			o, err := c.CreateApp(cmd.Context(), path(args[:2]), client.Consumer{Metadata: client.Metadata{Name: args[2]}, Spec: spec()})
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})}, true),
		objFlags(&cobra.Command{Use: "update CATALOG ORG APP", Short: "Change an app's title, summary, state or credential policy", Args: cobra.ExactArgs(3), RunE: run(3, func(cmd *cobra.Command, c *client.Client, args []string) error {
			cur, err := c.GetConsumer(cmd.Context(), path(args))
			if err != nil {
				return err
			}
			s := spec()
			if !cmd.Flags().Changed("title") {
				s.Title = cur.Spec.Title
			}
			if !cmd.Flags().Changed("summary") {
				s.Summary = cur.Spec.Summary
			}
			if s.CredentialPolicy == nil {
				s.CredentialPolicy = cur.Spec.CredentialPolicy
			}
			o, err := c.UpdateConsumer(cmd.Context(), path(args), client.Consumer{Spec: s})
			if err != nil {
				return err
			}
			return show(cmd, o, o)
		})}, true),
		forceFlag(&cobra.Command{Use: "delete CATALOG ORG APP", Short: "Delete an app (--force: with its credentials)", Args: cobra.ExactArgs(3), RunE: run(3, func(cmd *cobra.Command, c *client.Client, args []string) error {
			if err := c.DeleteConsumer(cmd.Context(), path(args), force); err != nil {
				return err
			}
			return renderDeleted(cmd, &af, "app", args[2])
		})}),
		newAppCredentialsCommand(&af, path, false),
		newAppCredentialsCommand(&af, path, true),
	)
	return cmd
}

func consumerTable(tw io.Writer, os ...client.Consumer) {
	row(tw, "NAME", "ID", "TITLE", "STATE", "POLICY", "CREATED")
	for _, o := range os {
		pol := "-"
		if p := o.Spec.CredentialPolicy; p != nil {
			pol = fmt.Sprintf("default %s, max %s", orDash(p.DefaultTTL), orDash(p.MaxTTL))
		}
		row(tw, o.Metadata.Name, o.Metadata.ID, orDash(o.Spec.Title), orDash(o.Spec.State), pol, when(o.Metadata.CreatedAt))
	}
}

func appCredentialTable(tw io.Writer, cs ...client.AppCredential) {
	row(tw, "NAME", "ID", "CLIENT ID", "SECRET", "EXPIRES", "MAX EXPIRY")
	for _, c := range cs {
		row(tw, c.Metadata.Name, c.Metadata.ID, c.Status.ClientID, c.Status.SecretHint, orDash(c.Status.ExpiresAt), orDash(c.Status.MaxExpiresAt))
	}
}

// newAppCredentialsCommand is `sluice apps credentials` or, with leases,
// `sluice apps leases`.
func newAppCredentialsCommand(af *apiFlags, path func([]string) client.AppPath, leases bool) *cobra.Command {
	use, short := "credentials", "List, create and delete an app's permanent credentials"
	if leases {
		use, short = "leases", "List, create, renew and revoke an app's leases (credentials that expire)"
	}
	cmd := &cobra.Command{Use: use, Short: short}
	var ttl, title string
	client3 := func(cmd *cobra.Command) (*client.Client, error) { return af.client(cmd) }
	created := func(cmd *cobra.Command, cr client.AppCredentialCreated) error {
		out := struct {
			client.AppCredential
			ClientID     string `json:"clientId"`
			ClientSecret string `json:"clientSecret"`
		}{cr.AppCredential, cr.ClientID, cr.ClientSecret.Reveal()}
		return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) {
			appCredentialTable(tw, cr.AppCredential)
			fmt.Fprintln(tw)
			fmt.Fprintln(tw, "Copy the client secret now: it is shown only once and cannot be recovered.")
			fmt.Fprintf(tw, "client id:     %s\nclient secret: %s\n", out.ClientID, out.ClientSecret)
		})
	}
	list := &cobra.Command{Use: "list CATALOG ORG APP", Short: "List them", Args: cobra.ExactArgs(3), RunE: func(cmd *cobra.Command, args []string) error {
		c, err := client3(cmd)
		if err != nil {
			return err
		}
		cs, err := c.ListAppCredentials(cmd.Context(), path(args), leases)
		if err != nil {
			return err
		}
		return render(cmd.OutOrStdout(), af.output, map[string]any{use: cs}, func(tw *tabwriter.Writer) { appCredentialTable(tw, cs...) })
	}}
	create := &cobra.Command{Use: "create CATALOG ORG APP [NAME]", Short: "Create one and print its client secret, once", Args: cobra.RangeArgs(3, 4),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client3(cmd)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 4 {
				name = args[3]
			}
			var cr client.AppCredentialCreated
			if leases {
				cr, err = c.CreateLease(cmd.Context(), path(args[:3]), name, ttl)
			} else {
				cr, err = c.CreateAppCredential(cmd.Context(), path(args[:3]), name, title)
			}
			if err != nil {
				return err
			}
			return created(cmd, cr)
		}}
	del := &cobra.Command{Use: "delete CATALOG ORG APP CREDENTIAL", Aliases: []string{"revoke"}, Short: "Delete (revoke) one at once", Args: cobra.ExactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client3(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteAppCredential(cmd.Context(), path(args[:3]), args[3]); err != nil {
				return err
			}
			return renderDeleted(cmd, af, "credential", args[3])
		}}
	cmd.AddCommand(list, create, del)
	if !leases {
		create.Flags().StringVar(&title, "title", "", "title (default: the name)")
		return cmd
	}
	create.Flags().StringVar(&ttl, "ttl", "", "how long it lives, e.g. 1h (default: the app's defaultTtl)")
	var inc string
	renew := &cobra.Command{Use: "renew CATALOG ORG APP LEASE", Short: "Extend a lease to now + increment, never past creation + maxTtl", Args: cobra.ExactArgs(4),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client3(cmd)
			if err != nil {
				return err
			}
			rn, err := c.RenewLease(cmd.Context(), path(args[:3]), args[3], inc)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, rn, func(tw *tabwriter.Writer) {
				appCredentialTable(tw, rn.AppCredential)
				if rn.Capped {
					fmt.Fprintln(tw, "\nCapped: the lease cannot live past its creation + the app's maxTtl.")
				}
			})
		}}
	renew.Flags().StringVar(&inc, "increment", "", "new lifetime from now, e.g. 30m (default: the app's defaultTtl)")
	revokeAll := &cobra.Command{Use: "revoke-all CATALOG ORG APP", Short: "Revoke every lease of an app", Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := client3(cmd)
			if err != nil {
				return err
			}
			n, err := c.RevokeLeases(cmd.Context(), path(args))
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]int{"revoked": n}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "%d leases revoked\n", n)
			})
		}}
	cmd.AddCommand(renew, revokeAll)
	return cmd
}
