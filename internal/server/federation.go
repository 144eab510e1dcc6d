package server

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/federation"
	"github.com/sluice-dev/sluice/internal/federation/published"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// FederationConfig runs the Gravitee federation agent inside the control
// plane (`sluice serve --gravitee-controller …`).
type FederationConfig struct {
	Endpoint      string       // the controller's endpoint (https://apim/integration-controller)
	Token         secret.Value // Gravitee token
	IntegrationID string
	ProviderType  string // "" for federation.DefaultProviderType
	InstanceID    string // the instance federated; "" when the store holds exactly one
}

// startFederation builds the agent; it is started by the caller. A bad
// configuration fails the start of `sluice serve` with a message saying
// what to fix.
func startFederation(ctx context.Context, fc FederationConfig, st store.Store, runtimes *orchestrator.Service,
	publishedAPIs *apis.Service, consumers *apps.Service, log *slog.Logger) (*federation.Agent, error) {
	instanceID := fc.InstanceID
	if instanceID == "" {
		insts, err := st.ListInstances(ctx)
		if err != nil {
			return nil, err
		}
		if len(insts) != 1 {
			return nil, fmt.Errorf("--gravitee-instance is needed: the store holds %d instances; name the one to federate", len(insts))
		}
		instanceID = insts[0].ID
	} else if _, err := st.GetInstance(ctx, instanceID); err != nil {
		return nil, fmt.Errorf("--gravitee-instance %q: no such instance", instanceID)
	}
	// Gravitee's subscriptions create consumer apps, their subscriptions
	// and credentials: the agent acts as a developer of the instance and
	// is named as itself wherever an actor is recorded.
	p := iam.Principal{InstanceID: instanceID, SubjectKind: "system", SubjectName: "federation-agent", Role: iam.RoleDeveloper}
	provider := &published.Provider{Source: &published.Services{APIService: publishedAPIs, AppService: consumers,
		RuntimeService: runtimes, Principal: p, Ready: st.Ready}}
	a, err := federation.New(federation.Config{Endpoint: fc.Endpoint, Token: fc.Token, IntegrationID: fc.IntegrationID,
		ProviderType: fc.ProviderType, Provider: provider, Log: log})
	if err != nil {
		return nil, err
	}
	return a, nil
}
