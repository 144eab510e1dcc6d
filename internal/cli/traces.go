package cli

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

// newTracesCommand is `sluice traces`: while a trace object exists, its
// runtime records a trace (secret values redacted), downloadable as a zip.
// The verbs have their own flags because download uses -o for a file.
func newTracesCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "traces",
		Aliases: []string{"trace"},
		Short:   "Start, list, download and stop traces of integration runtimes",
	}
	cmd.AddCommand(newTraceStartCommand(), newTraceStopCommand(), newTraceListCommand(),
		newTraceGetCommand(), newTraceDownloadCommand())
	return cmd
}

func traceTable(tw io.Writer, ts ...client.Trace) {
	row(tw, "NAME", "RUNTIME", "TYPE", "STATE", "EVENTS", "CREATED", "CREATED BY")
	for _, t := range ts {
		row(tw, t.Metadata.Name, t.Spec.IntegrationRuntimeName, t.Spec.Type, orDash(t.Status.State),
			strconv.Itoa(t.Status.Events), when(t.Metadata.CreatedAt), orDash(t.Metadata.CreatedBy))
	}
}

func newTraceStartCommand() *cobra.Command {
	var (
		af           apiFlags
		runtime, typ string
	)
	cmd := &cobra.Command{
		Use:     "start NAME --runtime RUNTIME [--type user|service]",
		Short:   "Start tracing an integration runtime",
		Example: `  sluice traces start orders-debug --runtime orders --type user`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if runtime == "" {
				return &usageError{err: fmt.Errorf("--runtime is required: name the integration runtime to trace"), cmd: cmd.CommandPath()}
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			t, err := c.StartTrace(cmd.Context(), args[0], runtime, typ)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, t, func(tw *tabwriter.Writer) { traceTable(tw, t) })
		},
	}
	af.register(cmd, false)
	cmd.Flags().StringVar(&runtime, "runtime", "", "integration runtime to trace")
	cmd.Flags().StringVar(&typ, "type", client.TraceUser, "user (messages through the flows) or service (the engine's events)")
	return cmd
}

func newTraceStopCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "stop NAME",
		Short: "Stop a trace and delete it (download it first to keep it)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := c.StopTrace(cmd.Context(), args[0]); err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]string{"stopped": args[0]}, func(tw *tabwriter.Writer) {
				fmt.Fprintf(tw, "trace %s stopped\n", args[0])
			})
		},
	}
	af.register(cmd, false)
	return cmd
}

func newTraceListCommand() *cobra.Command {
	var (
		af      apiFlags
		runtime string
	)
	cmd := &cobra.Command{
		Use:   "list [--runtime RUNTIME]",
		Short: "List traces, of one runtime with --runtime",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			ts, err := c.ListTraces(cmd.Context(), runtime)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"traces": ts}, func(tw *tabwriter.Writer) { traceTable(tw, ts...) })
		},
	}
	af.register(cmd, false)
	cmd.Flags().StringVar(&runtime, "runtime", "", "only the traces of this integration runtime")
	return cmd
}

func newTraceGetCommand() *cobra.Command {
	var af apiFlags
	cmd := getCommand(&af, "Show a trace and whether its runtime records it now", (*client.Client).GetTrace, traceTable)
	af.register(cmd, false)
	return cmd
}

func newTraceDownloadCommand() *cobra.Command {
	var (
		af       apiFlags
		out      string
		progress bool
	)
	cmd := &cobra.Command{
		Use:   "download NAME [-o FILE]",
		Short: "Download a trace as a zip (default NAME.zip; -o - for standard output)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if out == "" {
				out = name + ".zip"
			}
			return pull(cmd, out, progress, "download "+name, "downloaded trace "+name, func(w io.Writer, p func(int64, int64)) (int64, error) {
				return c.DownloadTrace(cmd.Context(), name, w, p)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&af.profile, "profile", envOr(envProfile, "default"), "profile of the config file to use (env "+envProfile+")")
	af.output = "table"
	f.StringVarP(&out, "output", "o", "", `file to write (default NAME.zip; "-" for standard output)`)
	f.BoolVar(&progress, "progress", false, "show a progress bar on standard error even when it is not a terminal")
	return cmd
}
