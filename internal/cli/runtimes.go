package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/client"
)

// newRuntimesCommand is `sluice runtimes`: integration runtimes on the
// control plane. (`sluice runtime`, singular, is the runtime process
// itself.)
func newRuntimesCommand() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:     "runtimes",
		Aliases: []string{"integration-runtimes", "ir"},
		Short:   "Create, replace, list, show, delete, watch integration runtimes and read their logs",
	}
	af.register(cmd, true)
	cmd.AddCommand(newRuntimePutCommand(&af, true), newRuntimePutCommand(&af, false),
		newRuntimeListCommand(&af), newRuntimeGetCommand(&af), newRuntimeDeleteCommand(&af),
		newRuntimeLogsCommand(&af), newRuntimeWatchCommand(&af))
	return cmd
}

// runtimeFlags describe a runtime on the command line instead of a file.
type runtimeFlags struct {
	file     string
	bars     []string
	configs  []string
	replicas int
	wait     bool
	timeout  time.Duration
}

func newRuntimePutCommand(af *apiFlags, create bool) *cobra.Command {
	var rf runtimeFlags
	cmd := &cobra.Command{
		Use:   "create (-f FILE | NAME --bar BAR...) [--wait]",
		Short: "Create an integration runtime (fails if the name is taken)",
		Example: `  sluice runtimes create -f orders.yaml --wait
  sluice runtimes create orders --bar orders --configuration db-creds --wait`,
		Args: cobra.MaximumNArgs(1),
	}
	if !create {
		cmd.Use = "apply (-f FILE | NAME --bar BAR...) [--wait]"
		cmd.Short = "Create or replace an integration runtime (a rolling redeploy when its spec changed)"
		cmd.Example = `  sluice runtimes get orders -o yaml > orders.yaml   # edit it, then
  sluice runtimes apply -f orders.yaml --wait`
	}
	cmd.Long = cmd.Short + `.

The runtime comes from -f FILE, YAML or JSON ("-" for standard input): an
object as 'sluice runtimes get NAME -o yaml' prints it (status and read-only
metadata are ignored), or just metadata.name and spec. Or it comes from
flags: NAME, --bar (an uploaded BAR file's name or a URL, repeatable),
--configuration (repeatable) and --replicas.

--wait watches the runtime (server-sent events, not polling) until it is
Ready (or Stopped for replicas 0), showing its progress on standard error;
it fails when the runtime fails or --timeout passes.`
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		rt, err := rf.runtime(cmd, args)
		if err != nil {
			return err
		}
		c, err := af.client(cmd)
		if err != nil {
			return err
		}
		for i, b := range rt.Spec.BarURL {
			if !strings.Contains(b, "://") {
				f, err := c.GetBARFile(cmd.Context(), b)
				if client.IsNotFound(err) {
					return fmt.Errorf("--bar %s: no BAR file is named %s (upload it with 'sluice bar push')", b, b)
				}
				if err != nil {
					return err
				}
				rt.Spec.BarURL[i] = f.URL
			}
		}
		put := c.PutRuntime
		if create {
			put = c.CreateRuntime
		}
		out, err := put(cmd.Context(), rt)
		if err != nil {
			return err
		}
		if rf.wait {
			if out, err = waitReady(cmd, c, out, rf.timeout); err != nil {
				return err
			}
		}
		return render(cmd.OutOrStdout(), af.output, out, func(tw *tabwriter.Writer) { runtimeTable(tw, out) })
	}
	f := cmd.Flags()
	f.StringVarP(&rf.file, "file", "f", "", `YAML or JSON file of the runtime ("-": standard input)`)
	f.StringArrayVar(&rf.bars, "bar", nil, "BAR file name or URL to run (repeatable)")
	f.StringArrayVar(&rf.configs, "configuration", nil, "configuration to give the runtime (repeatable)")
	f.IntVar(&rf.replicas, "replicas", 1, "number of replicas (0 stops the runtime)")
	f.BoolVar(&rf.wait, "wait", false, "wait until the runtime is Ready, showing progress")
	f.DurationVar(&rf.timeout, "timeout", 5*time.Minute, "how long --wait waits")
	return cmd
}

// runtime builds the runtime to send from the file or the flags.
func (rf *runtimeFlags) runtime(cmd *cobra.Command, args []string) (client.IntegrationRuntime, error) {
	usage := func(format string, a ...any) error {
		return &usageError{err: fmt.Errorf(format, a...), cmd: cmd.CommandPath()}
	}
	var rt client.IntegrationRuntime
	if rf.file == "" {
		if len(args) == 0 {
			return rt, usage("give -f FILE, or NAME with --bar")
		}
		if len(rf.bars) == 0 {
			return rt, usage("give at least one --bar (or -f FILE)")
		}
		if rf.replicas < 0 {
			return rt, usage("--replicas must not be negative")
		}
		rt.Metadata.Name = args[0]
		rt.Spec.BarURL = append([]string{}, rf.bars...)
		rt.Spec.Configurations = append([]string{}, rf.configs...)
		n := rf.replicas
		rt.Spec.Replicas = &n
		return rt, nil
	}
	for _, fl := range []string{"bar", "configuration", "replicas"} {
		if cmd.Flags().Changed(fl) {
			return rt, usage("--%s and -f exclude each other: put it in the file", fl)
		}
	}
	var b []byte
	var err error
	if rf.file == "-" {
		b, err = io.ReadAll(cmd.InOrStdin())
	} else {
		b, err = os.ReadFile(rf.file)
	}
	if err != nil {
		return rt, fmt.Errorf("unable to read the runtime: %w", err)
	}
	if rt, err = parseRuntime(b); err != nil {
		return rt, fmt.Errorf("%s: %w", rf.file, err)
	}
	if len(args) == 1 {
		if rt.Metadata.Name != "" && rt.Metadata.Name != args[0] {
			return rt, usage("NAME %s differs from metadata.name %s in %s", args[0], rt.Metadata.Name, rf.file)
		}
		rt.Metadata.Name = args[0]
	}
	if rt.Metadata.Name == "" {
		return rt, usage("%s has no metadata.name and no NAME was given", rf.file)
	}
	return rt, nil
}

// parseRuntime reads a runtime from YAML or JSON (JSON is YAML). Unknown
// fields are refused, as the server refuses them, so a misspelt field is
// caught rather than dropped.
func parseRuntime(b []byte) (client.IntegrationRuntime, error) {
	var rt client.IntegrationRuntime
	var doc any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return rt, errors.New("the file is empty")
		}
		return rt, err
	}
	var more any
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return rt, errors.New("the file holds more than one document: give one runtime per file")
	}
	if _, ok := doc.(map[string]any); !ok {
		return rt, errors.New("the file is not a runtime object (metadata, spec)")
	}
	j, err := json.Marshal(doc)
	if err != nil {
		return rt, err
	}
	jd := json.NewDecoder(bytes.NewReader(j))
	jd.DisallowUnknownFields()
	if err := jd.Decode(&rt); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return rt, fmt.Errorf("%s must be %s, not %s", te.Field, te.Type, te.Value)
		}
		return rt, errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return rt, nil
}

// waitReady watches rt until it serves its current spec and returns it
// then. Each change of phase or progress is shown on standard error.
func waitReady(cmd *cobra.Command, c *client.Client, rt client.IntegrationRuntime, timeout time.Duration) (client.IntegrationRuntime, error) {
	ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
	defer cancel()
	gen := rt.Metadata.Generation
	wantStopped := rt.Spec.Replicas != nil && *rt.Spec.Replicas == 0
	start := time.Now()
	w := cmd.ErrOrStderr()
	lastLine := ""
	show := func(rt client.IntegrationRuntime) {
		line := runtimeProgress(rt)
		if line != lastLine {
			lastLine = line
			fmt.Fprintf(w, "[%5.1fs] %s\n", time.Since(start).Seconds(), line)
		}
	}
	done := func(cur client.IntegrationRuntime) (bool, error) {
		if cur.Metadata.Generation < gen || cur.Status.ObservedGeneration < gen {
			return false, nil
		}
		switch cur.Status.Phase {
		case client.PhaseReady:
			return !wantStopped, nil
		case client.PhaseStopped:
			return wantStopped, nil
		case client.PhaseFailed:
			return true, fmt.Errorf("integration runtime %s failed: %s", cur.Metadata.Name, readyMessage(cur))
		}
		return false, nil
	}
	out, err := c.WaitRuntime(ctx, rt.Metadata.Name, done, show)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			state := "no status yet"
			if out.Metadata.Name != "" {
				state = runtimeProgress(out)
			}
			return out, fmt.Errorf("integration runtime %s is not ready after %s: %s", rt.Metadata.Name, timeout, state)
		}
		return out, err
	}
	fmt.Fprintf(w, "[%5.1fs] integration runtime %s is %s\n", time.Since(start).Seconds(), out.Metadata.Name, out.Status.Phase)
	return out, nil
}

// runtimeProgress says where a runtime stands in one line.
func runtimeProgress(rt client.IntegrationRuntime) string {
	s := fmt.Sprintf("%s: %s, %d/%d replicas available", rt.Metadata.Name, orDash(rt.Status.Phase),
		rt.Status.AvailableReplicas, wantReplicas(rt))
	if m := readyMessage(rt); m != "" {
		s += " — " + m
	}
	if c, ok := rt.Status.Condition("Progressing"); ok && c.Status == "True" && c.Message != "" {
		s += " (rolling out: " + c.Message + ")"
	}
	return s
}

func wantReplicas(rt client.IntegrationRuntime) int {
	if rt.Spec.Replicas != nil {
		return *rt.Spec.Replicas
	}
	return 1
}

// readyMessage is the reason and message of the Ready condition, or the
// last error.
func readyMessage(rt client.IntegrationRuntime) string {
	if c, ok := rt.Status.Condition("Ready"); ok && c.Message != "" {
		return c.Reason + ": " + c.Message
	}
	return rt.Status.LastError
}

func runtimeTable(tw io.Writer, rts ...client.IntegrationRuntime) {
	row(tw, "NAME", "PHASE", "READY", "GEN", "RESTARTS", "BARS", "CONFIGURATIONS", "ENDPOINTS", "MESSAGE")
	for _, rt := range rts {
		var eps []string
		for _, e := range rt.Status.Endpoints {
			eps = append(eps, e.URI)
		}
		msg := ""
		if rt.Status.Phase != client.PhaseReady {
			msg = readyMessage(rt)
		}
		row(tw, rt.Metadata.Name, orDash(rt.Status.Phase),
			fmt.Sprintf("%d/%d", rt.Status.AvailableReplicas, wantReplicas(rt)),
			fmt.Sprintf("%d/%d", rt.Status.ObservedGeneration, rt.Metadata.Generation),
			strconv.Itoa(rt.Status.Restarts), strconv.Itoa(len(rt.Spec.BarURL)),
			orDash(strings.Join(rt.Spec.Configurations, ",")), orDash(strings.Join(eps, " ")), orDash(msg))
	}
}

func newRuntimeListCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List integration runtimes with their phase",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			rts, err := c.ListRuntimes(cmd.Context())
			if err != nil {
				return err
			}
			return render(cmd.OutOrStdout(), af.output, map[string]any{"integrationRuntimes": rts}, func(tw *tabwriter.Writer) {
				runtimeTable(tw, rts...)
			})
		},
	}
}

func newRuntimeGetCommand(af *apiFlags) *cobra.Command {
	return getCommand(af, "Show an integration runtime with its status (-o yaml gives a file apply -f takes back)",
		(*client.Client).GetRuntime, runtimeTable)
}

func newRuntimeDeleteCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete an integration runtime: it stops and its materialised configurations are removed",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			if err := c.DeleteRuntime(cmd.Context(), args[0]); err != nil {
				return err
			}
			return renderDeleted(cmd, af, "integration runtime", args[0])
		},
	}
}

func newRuntimeLogsCommand(af *apiFlags) *cobra.Command {
	var (
		tail   int
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs NAME [--tail N] [--follow]",
		Short: "Print a runtime's log lines; --follow keeps printing new ones",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail < 0 || tail > 10000 {
				return &usageError{err: errors.New("--tail must be from 0 to 10000"), cmd: cmd.CommandPath()}
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			rc, err := c.RuntimeLogs(cmd.Context(), args[0], client.LogOptions{Tail: tail, Follow: follow})
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(cmd.OutOrStdout(), rc)
			return err
		},
	}
	cmd.Flags().IntVar(&tail, "tail", 100, "how many of the latest lines to print first (0 to 10000)")
	cmd.Flags().BoolVarP(&follow, "follow", "F", false, "keep printing lines as the runtime writes them")
	return cmd
}

func newRuntimeWatchCommand(af *apiFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "watch [NAME]",
		Short: "Print runtimes' changes as they happen (server-sent events)",
		Long: `Watch the instance's integration runtimes, or one, and print a line for each
change until interrupted: first every runtime as it is, then each update
and deletion. -o json prints one JSON object per event and line
({"type":"update"|"deleted","object":{…}}); -o yaml one document per event.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			w, err := c.WatchRuntimes(cmd.Context(), name)
			if err != nil {
				return err
			}
			defer w.Close()
			out := cmd.OutOrStdout()
			const format = "%-20s  %-7s  %-20s  %-8s  %-5s  %s\n"
			if af.output == "table" {
				fmt.Fprintf(out, format, "TIME", "EVENT", "NAME", "PHASE", "READY", "MESSAGE")
			}
			for {
				ev, err := w.Next()
				if errors.Is(err, io.EOF) {
					return errors.New("the server ended the watch")
				}
				if err != nil {
					return err
				}
				rt := ev.Runtime
				switch af.output {
				case "json":
					b, err := json.Marshal(ev)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "%s\n", b)
				case "yaml":
					b, err := toYAML(ev)
					if err != nil {
						return err
					}
					fmt.Fprintf(out, "---\n%s", b)
				default:
					ready, phase, msg := "-", "-", "-"
					if ev.Type == client.EventUpdate {
						ready = fmt.Sprintf("%d/%d", rt.Status.AvailableReplicas, wantReplicas(rt))
						phase, msg = orDash(rt.Status.Phase), orDash(readyMessage(rt))
					}
					fmt.Fprintf(out, format, time.Now().UTC().Format(time.RFC3339), ev.Type, rt.Metadata.Name, phase, ready, msg)
				}
			}
		},
	}
}
