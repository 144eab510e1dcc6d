package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

func newAuditCommand() *cobra.Command {
	var (
		af           apiFlags
		since, until string
		actor        string
		action, obj  string
		limit        int
	)
	cmd := &cobra.Command{
		Use:   "audit",
		Short: "List audit events: every mutation and every token issued or refused (admins)",
		Long: `List the instance's audit events, newest first as the server orders them: every
event the filters select (read a page at a time), or the newest --limit.
--since and --until take an RFC 3339 time or a duration back from now (1h, 30m).
--actor takes KIND:NAME, e.g. user:admin or serviceId:deployer.`,
		Example: `  sluice audit --since 1h --actor user:admin
  sluice audit --limit 20 -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			now := time.Now()
			var f client.AuditFilter
			var err error
			if f.Since, err = parseSince("--since", since, now); err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			if f.Until, err = parseSince("--until", until, now); err != nil {
				return &usageError{err: err, cmd: cmd.CommandPath()}
			}
			if limit < 0 {
				return &usageError{err: fmt.Errorf("--limit %d is not a number of events: give 1 or more, or leave it out for every event", limit), cmd: cmd.CommandPath()}
			}
			f.Actor, f.Action, f.Object, f.Limit = actor, action, obj, limit
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			evs, err := c.ListAudit(cmd.Context(), f)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"auditEvents": evs}, func(tw *tabwriter.Writer) {
				row(tw, "TIME", "ACTOR", "ACTION", "OBJECT", "OUTCOME", "SOURCE", "REQUEST ID", "DETAIL")
				for _, e := range evs {
					row(tw, when(e.Time), e.Actor, e.Action, e.Object, e.Outcome, orDash(e.Source), orDash(e.RequestID), orDash(e.Detail))
				}
			})
		},
	}
	af.register(cmd, false)
	f := cmd.Flags()
	f.StringVar(&since, "since", "", "only events at or after this time (RFC 3339, or a duration back from now)")
	f.StringVar(&until, "until", "", "only events before this time (RFC 3339, or a duration back from now)")
	f.StringVar(&actor, "actor", "", "only events of this actor, KIND:NAME")
	f.StringVar(&action, "action", "", "only events of this action, e.g. token.issue")
	f.StringVar(&obj, "object", "", "only events about this object, e.g. apiKey/<id>")
	f.IntVar(&limit, "limit", 0, "at most this many events, the newest (default: every event the filters select, read a page at a time)")
	return cmd
}

// parseSince reads an RFC 3339 time or a duration back from now.
func parseSince(flag, s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%s %q is neither an RFC 3339 time such as 2026-11-22T10:00:00Z nor a positive duration such as 1h", flag, s)
}
