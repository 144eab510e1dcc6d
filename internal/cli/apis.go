package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

// newAPIsCommand is `sluice apis`: published APIs (flows with a name,
// version, base path and OpenAPI document).
func newAPIsCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "apis",
		Aliases: []string{"api"},
		Short:   "Publish flows as APIs; list, show, download the OpenAPI document of, and delete them",
	}
	af.register(cmd, true)
	var spec client.APISpec
	apply := &cobra.Command{
		Use:   "apply NAME --version V (--bar-file BAR | --runtime RUNTIME) [--base-path /P] [--flow F]...",
		Short: "Publish or replace an API (its OpenAPI document is the BAR's own or generated from the flows)",
		Example: `  sluice apis apply orders --version 1.2.0 --bar-file orders --base-path /orders
  sluice apis apply hello --version 1.0.0 --runtime hello --flow hello`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			out, err := c.PutAPI(cmd.Context(), client.PublishedAPI{Metadata: client.Metadata{Name: args[0]}, Spec: spec})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { apiTable(tw, out) })
		},
	}
	f := apply.Flags()
	f.StringVar(&spec.Version, "version", "", "the API's version")
	f.StringVar(&spec.Title, "title", "", "the API's title")
	f.StringVar(&spec.Description, "description", "", "what the API is for")
	f.StringVar(&spec.BasePath, "base-path", "", "the path every flow of the API is under (default /)")
	f.StringVar(&spec.BARFile, "bar-file", "", "publish flows of this BAR file, wherever it runs")
	f.StringVar(&spec.Runtime, "runtime", "", "publish flows of this integration runtime")
	f.StringSliceVar(&spec.Flows, "flow", nil, "an HTTP flow of the API (repeat; none: every HTTP flow)")
	f.StringVar(&spec.Document, "document", "", "the OpenAPI file under openapi/ when the BAR has several")

	var outFile string
	document := &cobra.Command{
		Use:   "document NAME [--file FILE]",
		Short: "Download an API's OpenAPI document (JSON)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			doc, err := c.APIDocument(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if outFile == "" || outFile == "-" {
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", doc)
				return err
			}
			return os.WriteFile(outFile, append(doc, '\n'), 0o644)
		},
	}
	document.Flags().StringVarP(&outFile, "file", "f", "", "write the document here (default: standard output)")
	cmd.AddCommand(apply, document,
		listCommand(&af, "List published APIs", "apis", (*client.Client).ListAPIs, apiTable),
		getCommand(&af, "Show one published API (by name or id)", (*client.Client).GetAPI, apiTable),
		deleteCommand(&af, "API", func(c *client.Client, cmd *cobra.Command, name string, _ bool) error {
			return c.DeleteAPI(cmd.Context(), name)
		}, false))
	return cmd
}

func apiTable(tw io.Writer, as ...client.PublishedAPI) {
	row(tw, "NAME", "VERSION", "BASE PATH", "FROM", "FLOWS", "DOCUMENT")
	for _, a := range as {
		from := "bar-file " + a.Spec.BARFile
		if a.Spec.Runtime != "" {
			from = "runtime " + a.Spec.Runtime
		}
		var flows []string
		doc := "-"
		if a.Status != nil {
			for _, f := range a.Status.Flows {
				flows = append(flows, f.Name)
			}
			doc = a.Status.DocumentSource
		}
		row(tw, a.Metadata.Name, a.Spec.Version, orDash(a.Spec.BasePath), from, orDash(strings.Join(flows, ",")), doc)
	}
}

// newPlansCommand is `sluice plans`.
func newPlansCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "plans",
		Aliases: []string{"plan"},
		Short:   "Create, replace, list, show and delete plans (how callers of APIs authenticate, per-app rate limits)",
	}
	af.register(cmd, true)
	var spec client.PlanSpec
	apply := &cobra.Command{
		Use:     "apply NAME --api API... --auth client-id|oauth|none [--client-secret] [--rate-limit N/DURATION] [--approval]",
		Short:   "Create or replace a plan",
		Example: `  sluice plans apply gold --api orders --auth client-id --client-secret --rate-limit 100/1m`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			out, err := c.PutPlan(cmd.Context(), client.Plan{Metadata: client.Metadata{Name: args[0]}, Spec: spec})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { planTable(tw, out) })
		},
	}
	f := apply.Flags()
	f.StringSliceVar(&spec.APIs, "api", nil, "an API of the plan (repeat: several make a product)")
	f.StringVar(&spec.Auth, "auth", "", "client-id, oauth or none")
	f.BoolVar(&spec.ClientSecret, "client-secret", false, "client-id plans: require X-IBM-Client-Secret too")
	f.StringVar(&spec.RateLimit, "rate-limit", "", "calls per app, such as 100/1m")
	f.BoolVar(&spec.Approval, "approval", false, "subscriptions wait for an approval")
	f.StringVar(&spec.Title, "title", "", "the plan's title")
	cmd.AddCommand(apply,
		listCommand(&af, "List plans", "plans", (*client.Client).ListPlans, planTable),
		getCommand(&af, "Show one plan", (*client.Client).GetPlan, planTable),
		deleteCommand(&af, "plan", func(c *client.Client, cmd *cobra.Command, name string, force bool) error {
			return c.DeletePlan(cmd.Context(), name, force)
		}, true))
	return cmd
}

func planTable(tw io.Writer, ps ...client.Plan) {
	row(tw, "NAME", "APIS", "AUTH", "RATE LIMIT", "APPROVAL")
	for _, p := range ps {
		auth := p.Spec.Auth
		if p.Spec.ClientSecret {
			auth += "+secret"
		}
		row(tw, p.Metadata.Name, strings.Join(p.Spec.APIs, ","), auth, orDash(p.Spec.RateLimit), fmt.Sprint(p.Spec.Approval))
	}
}

// newSubscriptionsCommand is `sluice subscriptions`.
func newSubscriptionsCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "subscriptions",
		Aliases: []string{"subscription", "subs"},
		Short:   "Subscribe consumer apps to plans; approve, list, show and delete subscriptions",
	}
	af.register(cmd, true)
	var spec client.SubscriptionSpec
	apply := &cobra.Command{
		Use:     "apply NAME --plan PLAN --app CATALOG/CONSUMER-ORG/APP",
		Short:   "Subscribe an app to a plan (pending until approved when the plan says so)",
		Example: `  sluice subscriptions apply shop-gold --plan gold --app sandbox/acme/shop`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			out, err := c.PutSubscription(cmd.Context(), client.Subscription{Metadata: client.Metadata{Name: args[0]}, Spec: spec})
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { subscriptionTable(tw, out) })
		},
	}
	apply.Flags().StringVar(&spec.Plan, "plan", "", "the plan")
	apply.Flags().StringVar(&spec.App, "app", "", "the app, as catalog/consumer-org/app")
	approve := &cobra.Command{
		Use:   "approve NAME",
		Short: "Approve a pending subscription",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			out, err := c.ApproveSubscription(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { subscriptionTable(tw, out) })
		},
	}
	cmd.AddCommand(apply, approve,
		listCommand(&af, "List subscriptions", "subscriptions", (*client.Client).ListSubscriptions, subscriptionTable),
		getCommand(&af, "Show one subscription", (*client.Client).GetSubscription, subscriptionTable),
		deleteCommand(&af, "subscription", func(c *client.Client, cmd *cobra.Command, name string, _ bool) error {
			return c.DeleteSubscription(cmd.Context(), name)
		}, false))
	return cmd
}

func subscriptionTable(tw io.Writer, ss ...client.Subscription) {
	row(tw, "NAME", "PLAN", "APP", "STATE")
	for _, s := range ss {
		row(tw, s.Metadata.Name, s.Spec.Plan, s.Spec.App, s.Status.State)
	}
}

// listCommand is a `list` verb over a client list call.
func listCommand[T any](af *apiFlags, short, key string, list func(*client.Client, context.Context) ([]T, error), table func(io.Writer, ...T)) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: short,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			xs, err := list(c, cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{key: xs}, func(tw *tabwriter.Writer) { table(tw, xs...) })
		},
	}
}

// deleteCommand is a `delete NAME` verb, with --force when withForce.
func deleteCommand(af *apiFlags, what string, del func(c *client.Client, cmd *cobra.Command, name string, force bool) error, withForce bool) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete a " + what,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := del(c, cmd, args[0], force); err != nil {
				return err
			}
			return renderDeleted(cmd, af, what, args[0])
		},
	}
	if withForce {
		cmd.Flags().BoolVar(&force, "force", false, "delete what depends on it too")
	}
	return cmd
}
