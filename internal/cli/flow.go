package cli

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/internal/flow"
)

// newFlowCommand groups the offline tools for integration projects.
func newFlowCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "flow",
		Short: "Check and test the flows of an integration project",
	}
	cmd.AddCommand(newFlowTestCommand(), newFlowValidateCommand())
	return cmd
}

func newFlowTestCommand() *cobra.Command {
	var verbose bool
	var run string
	cmd := &cobra.Command{
		Use:   "test DIR",
		Short: "Run the flows of a project against its fixtures (tests/*.yaml), offline",
		Long: `Loads the project in DIR and runs every case of its tests/*.yaml: each case
sends a request (or starts a flow by name), answers the flow's outbound HTTP
requests from fixtures, and compares the answer with the expected one.
Exits with 1 when a case fails. See docs/flows.md.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			start := time.Now()
			results, err := flow.RunTests(cmd.Context(), os.DirFS(args[0]), flow.TestOptions{Out: out, Verbose: verbose, Run: run})
			if err != nil {
				return &ExitError{Code: 1, Err: describeLoadError(args[0], err)}
			}
			failed := 0
			for _, r := range results {
				if !r.Passed() {
					failed++
				}
			}
			if len(results) == 0 {
				fmt.Fprintf(out, "warning: no test cases matched --run %q\n", run)
			}
			elapsed := time.Since(start).Seconds()
			if failed > 0 {
				fmt.Fprintf(out, "FAIL\t%s\t%d of %d cases failed (%.3fs)\n", args[0], failed, len(results), elapsed)
				return &ExitError{Code: 1, Err: errors.New("flow tests failed")}
			}
			fmt.Fprintf(out, "ok  \t%s\t%d cases passed (%.3fs)\n", args[0], len(results), elapsed)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "print every case and the flows' log output")
	cmd.Flags().StringVar(&run, "run", "", "run only the cases whose file/name contains this text")
	return cmd
}

func newFlowValidateCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "validate DIR",
		Short: "Load and check every flow, schema and jq program of a project",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := flow.Load(cmd.Context(), os.DirFS(args[0]), nil)
			if err != nil {
				return &ExitError{Code: 1, Err: describeLoadError(args[0], err)}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %d flows OK\n", p.Name, p.Version, len(p.Flows))
			return nil
		},
	}
}

// describeLoadError puts each problem of a project on its own line,
// prefixed with the project directory, like a compiler's output.
func describeLoadError(dir string, err error) error {
	var list interface{ Unwrap() []error }
	if !errors.As(err, &list) {
		return prefixLoadError(dir, err)
	}
	msg := "project has errors:"
	for _, e := range list.Unwrap() {
		msg += "\n  " + prefixLoadError(dir, e).Error()
	}
	return errors.New(msg)
}

func prefixLoadError(dir string, err error) error {
	var le *flow.LoadError
	if errors.As(err, &le) && le.File != "" {
		c := *le
		c.File = dir + "/" + le.File
		return &c
	}
	return err
}
