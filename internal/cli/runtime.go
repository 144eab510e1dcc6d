package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/runtime"
	"github.com/sluice-dev/sluice/internal/tlsconf"
)

func newRuntimeCommand() *cobra.Command {
	var (
		opts      runtime.Options
		bundleURL string
		tokenFile string
		bundleDir string
		bundleCA  string
		readyFD   int
	)
	cmd := &cobra.Command{
		Use:   "runtime --bar FILE [--bar FILE…] [--config-dir DIR]",
		Short: "Run an integration runtime: serve the flows of BAR files",
		Long: `Run an integration runtime.

It loads every BAR and the configuration directory, all or nothing: a broken
BAR or configuration ends the process with an error naming the file, line and
column, before anything is served. Then it serves the HTTP flows on --listen
(opened with SO_REUSEPORT, so replicas can share the port), runs the schedules,
and answers on --admin-listen:

  GET  /healthz /readyz                              (open)
  GET  /metrics /flows                               (the rest needs the credential
  GET  /trace   POST /trace/{user|service}/start|stop  of --admin-token-file as a
  GET  /trace/{type}/stream (server-sent events)       bearer token)
  GET  /trace/{type}/download[?format=zip]
  GET  /debug/pprof/…                                (only with --admin-pprof)

SIGTERM or SIGINT drains in-flight requests, then exits. The layout of
--config-dir is documented in docs/runtime.md.`,
		Args: barExactArgs(0),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(opts.BARs) == 0 && bundleURL == "" {
				return &usageError{err: errors.New("give at least one --bar FILE (or --bundle-url)"), cmd: cmd.CommandPath()}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			go func() {
				// After the first signal, a second one kills the process
				// the default way instead of waiting for the drain.
				<-ctx.Done()
				stop()
			}()
			if bundleURL != "" {
				if tokenFile == "" || len(opts.BARs) > 0 || opts.ConfigDir != "" {
					return &usageError{err: fmt.Errorf("--bundle-url goes with --bundle-token-file, and replaces --bar and --config-dir"), cmd: cmd.CommandPath()}
				}
				var client, watchClient *http.Client
				if bundleCA != "" {
					var err error
					if client, err = tlsconf.PinnedClient(bundleCA, 0); err != nil {
						return err
					}
					watchClient = &http.Client{Transport: client.Transport, Timeout: 60 * time.Second}
				}
				bars, configDir, err := runtime.FetchBundle(ctx, client, bundleURL, tokenFile, bundleDir)
				if err != nil {
					return err
				}
				opts.BARs, opts.ConfigDir = bars, configDir
				// The gateway state comes from the same control plane, with
				// the same token: fetched once before serving (so no flow of
				// a published API is ever served open), then followed.
				gw := gateway.New(nil) // nil: the wall clock
				watch := &gateway.Watcher{URL: strings.TrimSuffix(bundleURL, "/bundle") + "/gateway", Gateway: gw, Client: watchClient,
					Log:   slog.New(slog.NewJSONHandler(cmd.ErrOrStderr(), nil)).With("component", "gateway"),
					Token: func() (string, error) { b, err := os.ReadFile(tokenFile); return strings.TrimSpace(string(b)), err }}
				if err := watch.Sync(ctx); err != nil {
					return fmt.Errorf("runtime: the gateway state: %w", err)
				}
				go watch.Run(ctx)
				opts.Gateway = gw
			}
			if readyFD > 0 {
				opts.OnReady = notifyReady(readyFD)
			}
			return runtime.Run(ctx, opts)
		},
	}
	f := cmd.Flags()
	f.StringArrayVar(&opts.BARs, "bar", nil, "BAR file to serve (repeat for several)")
	f.StringVar(&opts.ConfigDir, "config-dir", "", "configuration directory (setdbparms/, serverconf/, generic/, truststorecertificate/, policyproject/)")
	f.StringVar(&opts.Listen, "listen", ":7800", "address of the flows' HTTP listener")
	f.StringVar(&opts.AdminListen, "admin-listen", "127.0.0.1:7600", "address of the admin listener (health, metrics, flows, traces)")
	f.StringVar(&opts.PublicURL, "public-url", "", "base URL advertised for the flows' endpoints (default http://<listen address>)")
	f.StringVar(&opts.AdminTokenFile, "admin-token-file", "", "file holding the admin credential; without it the admin listener serves /healthz and /readyz only")
	f.BoolVar(&opts.AdminPprof, "admin-pprof", false, "serve Go profiles at /debug/pprof/ on the admin listener (behind the admin credential)")
	f.StringArrayVar(&opts.EgressAllow, "egress-allow", nil, "open an address, CIDR or host name (optionally :port) to the http steps; local addresses are closed by default (repeat for several)")
	f.StringArrayVar(&opts.Traces, "trace", nil, "trace type to record from the start: user or service (repeat for both)")
	f.StringVar(&bundleURL, "bundle-url", "", "fetch the BARs and configurations from the control plane at this URL instead of --bar/--config-dir")
	f.StringVar(&tokenFile, "bundle-token-file", "", "file holding the runtime's bundle token (with --bundle-url)")
	f.StringVar(&bundleDir, "bundle-dir", "bundle", "directory the fetched bundle is unpacked into (files 0600)")
	f.StringVar(&bundleCA, "bundle-ca-file", "", "PEM certificate(s) of an https control plane: the only ones trusted for --bundle-url (the host name is not compared)")
	f.IntVar(&readyFD, "ready-fd", 0, "file descriptor (inherited, e.g. a pipe) to write \"ready\\n\" to, then close, once the flows are served")
	return cmd
}

// notifyReady tells a supervisor through the inherited descriptor fd that
// the runtime serves: one line, then the descriptor is closed. A
// supervisor that is gone (a broken pipe) is no reason to stop serving.
func notifyReady(fd int) func() {
	f := os.NewFile(uintptr(fd), "ready-fd")
	return func() {
		if f == nil {
			return
		}
		_, _ = f.Write([]byte("ready\n"))
		_ = f.Close()
	}
}
