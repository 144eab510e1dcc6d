package cli

import (
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluice-dev/sluice/internal/federation"
	"github.com/sluice-dev/sluice/internal/federation/published"
	"github.com/sluice-dev/sluice/internal/obs"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server"
)

// Environment variables of the Gravitee federation agent.
const (
	envGraviteeController    = "SLUICE_GRAVITEE_CONTROLLER"
	envGraviteeToken         = "SLUICE_GRAVITEE_TOKEN"
	envGraviteeTokenFile     = "SLUICE_GRAVITEE_TOKEN_FILE"
	envGraviteeIntegrationID = "SLUICE_GRAVITEE_INTEGRATION_ID"
	envGraviteeProvider      = "SLUICE_GRAVITEE_PROVIDER"
)

// graviteeFlags are the agent's flags, shared by `sluice federation-agent`
// and `sluice serve` (there with a "gravitee-" prefix). The token is read
// from the environment or a file, never from a flag, so it does not show
// in process lists.
type graviteeFlags struct {
	controller    string
	tokenFile     string
	integrationID string
	provider      string
}

func (f *graviteeFlags) register(cmd *cobra.Command, prefix string) {
	fl := cmd.Flags()
	fl.StringVar(&f.controller, prefix+"controller", "",
		"Gravitee integration controller endpoint, e.g. https://apim.example/integration-controller")
	fl.StringVar(&f.tokenFile, prefix+"token-file", "", "file holding the Gravitee token (or set "+envGraviteeToken+")")
	fl.StringVar(&f.integrationID, prefix+"integration-id", "", "id of the integration created in Gravitee")
	fl.StringVar(&f.provider, prefix+"provider", federation.DefaultProviderType, "provider type HELLO names; it must match the integration's")
	bindEnv(cmd, prefix+"controller", envGraviteeController)
	bindEnv(cmd, prefix+"token-file", envGraviteeTokenFile)
	bindEnv(cmd, prefix+"integration-id", envGraviteeIntegrationID)
	bindEnv(cmd, prefix+"provider", envGraviteeProvider)
}

// token reads the Gravitee token from the file flag or the environment.
func (f *graviteeFlags) token(prefix string) (secret.Value, error) {
	if f.tokenFile != "" {
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return secret.Value{}, fmt.Errorf("--%stoken-file: %v", prefix, err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return secret.Value{}, fmt.Errorf("--%stoken-file %s is empty", prefix, f.tokenFile)
		}
		return secret.New(t), nil
	}
	if t := strings.TrimSpace(os.Getenv(envGraviteeToken)); t != "" {
		return secret.New(t), nil
	}
	return secret.Value{}, fmt.Errorf("no Gravitee token: set %s or give --%stoken-file", envGraviteeToken, prefix)
}

func newFederationAgentCommand() *cobra.Command {
	var (
		gf        graviteeFlags
		af        apiFlags
		logFormat string
		logLevel  string
	)
	cmd := &cobra.Command{
		Use:   "federation-agent",
		Short: "Federate this Sluice's APIs into Gravitee (a Gravitee federation agent)",
		Long: `Connect to a Gravitee integration controller and federate the published APIs
of a Sluice control plane into it: the agent answers Gravitee's discovery and
ingestion with the instance's published APIs, their OpenAPI documents and
their client-id and oauth plans; a Gravitee subscription becomes a consumer
app subscribed to the plan with a credential, and unsubscribing removes them.
It keeps the connection up, reconnecting with backoff.

It reaches Sluice through its public API with the credentials of a profile
('sluice login') or of SLUICE_ENDPOINT, SLUICE_INSTANCE_ID, SLUICE_CLIENT_ID,
SLUICE_CLIENT_SECRET and SLUICE_API_KEY: a developer's to serve subscriptions
(a viewer's can discover only).

To run the agent inside the control plane instead, give 'sluice serve' the
same settings as --gravitee-controller, --gravitee-integration-id, ...

Environment:
  SLUICE_GRAVITEE_TOKEN   the Gravitee token (or --token-file)`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := obs.NewLogger(os.Stderr, logFormat, logLevel)
			if err != nil {
				return err
			}
			tok, err := gf.token("")
			if err != nil {
				return err
			}
			c, err := af.client(cmd)
			if err != nil {
				return err
			}
			provider := &published.Provider{Source: &published.Remote{Client: c}}
			agent, err := federation.New(federation.Config{Endpoint: gf.controller, Token: tok, IntegrationID: gf.integrationID,
				ProviderType: gf.provider, Provider: provider, Log: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			fmt.Fprintf(cmd.OutOrStdout(), "sluice: federating %s into Gravitee at %s (integration %s)\n",
				c.Endpoint(), gf.controller, gf.integrationID)
			return agent.Run(ctx)
		},
	}
	gf.register(cmd, "")
	cmd.Flags().StringVar(&af.profile, "profile", "default", "profile of the config file to use")
	af.output = "table"
	cmd.Flags().StringVar(&logFormat, "log-format", "auto", "log format: auto, text or json")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	bindEnv(cmd, "profile", envProfile)
	bindEnv(cmd, "log-format", "SLUICE_LOG_FORMAT")
	bindEnv(cmd, "log-level", "SLUICE_LOG_LEVEL")
	return cmd
}

// serveFederation turns `sluice serve`'s --gravitee-* flags into the
// server's configuration; nil when no controller is given.
func (f *graviteeFlags) serveFederation(instance string) (*server.FederationConfig, error) {
	if f.controller == "" {
		if instance != "" {
			return nil, fmt.Errorf("--gravitee-instance is given without --gravitee-controller")
		}
		return nil, nil
	}
	tok, err := f.token("gravitee-")
	if err != nil {
		return nil, err
	}
	// Refused before the store is touched.
	if _, err := federation.CheckSettings(f.controller, tok, f.integrationID); err != nil {
		return nil, err
	}
	return &server.FederationConfig{Endpoint: f.controller, Token: tok, IntegrationID: f.integrationID, ProviderType: f.provider,
		InstanceID: instance}, nil
}
