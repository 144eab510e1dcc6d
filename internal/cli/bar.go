package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/internal/bar"
)

// newBarCommand is the parent of the BAR verbs: build and inspect work on
// local files, the others (barfiles.go) talk to the control plane.
func newBarCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bar",
		Short: "Build, inspect, push, pull and manage BAR files (integration project archives)",
	}
	cmd.AddCommand(newBarBuildCommand(), newBarInspectCommand())
	cmd.AddCommand(barAPICommands()...)
	return cmd
}

func newBarBuildCommand() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "build DIR -o FILE.bar",
		Short: "Validate the project in DIR and package it as a BAR",
		Long: `Validate the integration project in DIR and package it as a BAR file.

The project is loaded exactly as a runtime loads it (every flow parsed, every
jq program and schema compiled, every reference resolved); any problem is
reported with file, line and column and no file is written. Hidden files,
*.bar files and the tests/ fixtures are left out. Building the same project
twice gives byte-identical archives.`,
		Args: barExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if out == "" {
				out = filepath.Base(filepath.Clean(dir)) + ".bar"
				if abs, err := filepath.Abs(dir); err == nil {
					out = filepath.Base(abs) + ".bar"
				}
			}
			info, err := bar.BuildFile(cmd.Context(), dir, out, nil)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "built %s: project %s %s, %d flow(s), %d file(s), %d bytes\n",
				out, info.Name, info.Version, len(info.Flows), len(info.Files), info.Size)
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "BAR file to write (default <dir name>.bar)")
	return cmd
}

func newBarInspectCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "inspect FILE.bar",
		Short: "Validate a BAR and show its project, flows, triggers and endpoints",
		Args:  barExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := bar.InspectFile(cmd.Context(), args[0], nil)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			printInfo(cmd.OutOrStdout(), info)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the description as JSON")
	return cmd
}

// barExactArgs is cobra.ExactArgs as a usage mistake (exit code 2).
func barExactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return &usageError{err: err, cmd: cmd.CommandPath()}
		}
		return nil
	}
}

func printInfo(w io.Writer, info *bar.Info) {
	fmt.Fprintf(w, "project:     %s\n", info.Name)
	if info.Version != "" {
		fmt.Fprintf(w, "version:     %s\n", info.Version)
	}
	if info.Description != "" {
		fmt.Fprintf(w, "description: %s\n", info.Description)
	}
	fmt.Fprintf(w, "size:        %d bytes (%d uncompressed, %d files)\n\n", info.Size, info.UncompressedSize, len(info.Files))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FLOW\tTRIGGER\tFILE\tTIMEOUT")
	for _, f := range info.Flows {
		timeout := f.Timeout
		if timeout == "" {
			timeout = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Name, f.Trigger, f.File, timeout)
	}
	tw.Flush()
	if len(info.Endpoints) > 0 {
		fmt.Fprintln(w, "\nendpoints:")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, e := range info.Endpoints {
			fmt.Fprintf(tw, "  %s\t%s\t→ %s\n", e.Method, e.Path, e.Flow)
		}
		tw.Flush()
	}
	var other []string
	for _, f := range info.Files {
		if !strings.HasPrefix(f, "flows/") {
			other = append(other, f)
		}
	}
	if len(other) > 0 {
		fmt.Fprintln(w, "\nother files:")
		for _, f := range other {
			fmt.Fprintf(w, "  %s\n", f)
		}
	}
}
