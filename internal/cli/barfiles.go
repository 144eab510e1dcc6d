package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/client"
)

// barAPICommands are the `sluice bar` verbs that talk to the control
// plane. Each has its own flags rather than persistent ones on `bar`,
// because build and pull use -o for a file, not a format.
func barAPICommands() []*cobra.Command {
	return []*cobra.Command{newBarPushCommand(), newBarListCommand(), newBarGetCommand(),
		newBarPullCommand(), newBarDeleteCommand()}
}

func newBarPushCommand() *cobra.Command {
	var (
		af       apiFlags
		name     string
		progress bool
	)
	cmd := &cobra.Command{
		Use:   "push FILE.bar [--name NAME]",
		Short: "Upload a BAR file to the control plane (validated there before it is stored)",
		Long: `Upload a BAR file, streamed. The control plane validates it exactly as a runtime
loads it before storing it; an invalid BAR is refused with its file and line
errors and the previous content of that name stays. The answer's url is what
an integration runtime's spec.barURL names. NAME defaults to the file's name
without .bar. A progress bar shows on standard error for large files on a
terminal, or always with --progress.`,
		Example: `  sluice bar push orders.bar
  sluice bar push build/orders-1.2.bar --name orders -o json | jq -r .url`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if name == "" {
				name = strings.TrimSuffix(filepath.Base(args[0]), ".bar")
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			f, err := os.Open(args[0])
			if err != nil {
				return err
			}
			defer f.Close()
			fi, err := f.Stat()
			if err != nil {
				return err
			}
			if !fi.Mode().IsRegular() {
				return fmt.Errorf("%s is not a regular file", args[0])
			}
			bar := newProgressBar(cmd, progress, "push "+name, fi.Size())
			if bar != nil {
				bar.after = "validating…"
			}
			out, err := c.PutBARFile(cmd.Context(), name, f, fi.Size(), bar.update())
			bar.finish(err == nil)
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { barDetail(tw, out) })
		},
	}
	af.register(cmd, false)
	cmd.Flags().StringVar(&name, "name", "", "name of the BAR file on the control plane (default: FILE without .bar)")
	cmd.Flags().BoolVar(&progress, "progress", false, "show a progress bar on standard error even when it is not a terminal")
	return cmd
}

func newBarListCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the uploaded BAR files",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			fs, err := c.ListBARFiles(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"barFiles": fs}, func(tw *tabwriter.Writer) {
				row(tw, "NAME", "PROJECT", "VERSION", "SIZE", "FLOWS", "UPLOADED", "URL")
				for _, f := range fs {
					row(tw, f.Name, orDash(f.Project), orDash(f.Version), strconv.FormatInt(f.Size, 10),
						strconv.Itoa(len(f.Flows)), when(f.UploadedAt), f.URL)
				}
			})
		},
	}
	af.register(cmd, false)
	return cmd
}

func newBarGetCommand() *cobra.Command {
	var af apiFlags
	cmd := getCommand(&af, "Show an uploaded BAR file: url, checksum, flows and endpoints", (*client.Client).GetBARFile,
		func(tw io.Writer, fs ...client.BARFile) { barDetail(tw, fs[0]) })
	af.register(cmd, false)
	return cmd
}

// barDetail is the table view of one BAR file.
func barDetail(tw io.Writer, f client.BARFile) {
	row(tw, "name:", f.Name)
	row(tw, "url:", f.URL)
	row(tw, "project:", orDash(f.Project))
	if f.Version != "" {
		row(tw, "version:", f.Version)
	}
	row(tw, "size:", strconv.FormatInt(f.Size, 10)+" bytes")
	row(tw, "sha256:", f.SHA256)
	row(tw, "uploaded:", when(f.UploadedAt)+" by "+orDash(f.UploadedBy))
	for i, fl := range f.Flows {
		label := ""
		if i == 0 {
			label = "flows:"
		}
		row(tw, label, fl.Name+"  ("+fl.Trigger.String()+")")
	}
	for i, e := range f.Endpoints {
		label := ""
		if i == 0 {
			label = "endpoints:"
		}
		row(tw, label, e.Method+" "+e.Path+"  → "+e.Flow)
	}
}

func newBarPullCommand() *cobra.Command {
	var (
		af       apiFlags
		out      string
		progress bool
	)
	cmd := &cobra.Command{
		Use:   "pull NAME [-o FILE]",
		Short: "Download an uploaded BAR file",
		Long: `Download an uploaded BAR file, streamed, to FILE (default NAME.bar; "-" for
standard output). The bytes are checked against the control plane's SHA-256
as they arrive, and FILE is only replaced once the whole file arrived
intact. A progress bar shows as for push.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if out == "" {
				out = name + ".bar"
			}
			return pull(cmd, out, progress, "pull "+name, "pulled BAR file "+name, func(w io.Writer, p func(int64, int64)) (int64, error) {
				return c.DownloadBARFile(cmd.Context(), name, w, p)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&af.profile, "profile", envOr(envProfile, "default"), "profile of the config file to use (env "+envProfile+")")
	af.output = "table"
	f.StringVarP(&out, "output", "o", "", `file to write (default NAME.bar; "-" for standard output)`)
	f.BoolVar(&progress, "progress", false, "show a progress bar on standard error even when it is not a terminal")
	return cmd
}

// pull streams a download to out ("-" for standard output) with a
// progress bar, replacing out only once the whole download arrived.
func pull(cmd *cobra.Command, out string, progress bool, label, done string, fetch func(io.Writer, func(int64, int64)) (int64, error)) error {
	bar := &lazyProgress{cmd: cmd, force: progress, label: label}
	if out == "-" {
		_, err := fetch(cmd.OutOrStdout(), bar.update)
		bar.finish(err == nil)
		return err
	}
	n, err := downloadToFile(out, func(w io.Writer) (int64, error) { return fetch(w, bar.update) })
	bar.finish(err == nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(cmd.OutOrStdout(), "%s to %s (%d bytes)\n", done, out, n)
	return nil
}

// downloadToFile runs fetch into a temporary file next to path and renames
// it to path only when fetch succeeded, so a failed download never leaves a
// partial file or clobbers a good one.
func downloadToFile(path string, fetch func(io.Writer) (int64, error)) (int64, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return 0, fmt.Errorf("%s is a directory", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.part")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	n, err := fetch(tmp)
	if err != nil {
		tmp.Close()
		return n, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, err
	}
	return n, os.Rename(tmp.Name(), path)
}

func newBarDeleteCommand() *cobra.Command {
	var (
		af    apiFlags
		force bool
	)
	cmd := &cobra.Command{
		Use:   "delete NAME [--force]",
		Short: "Delete an uploaded BAR file; one that runtimes use needs --force",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteBARFile(cmd.Context(), args[0], force); err != nil {
				return withFlagNames(err, map[string]string{"?force=true": "--force"})
			}
			return renderDeleted(cmd, &af, "BAR file", args[0])
		},
	}
	af.register(cmd, false)
	cmd.Flags().BoolVar(&force, "force", false, "delete even if integration runtimes use it")
	return cmd
}
