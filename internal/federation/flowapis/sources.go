package flowapis

import (
	"context"
	"fmt"
	"io"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/bar"
	"github.com/sluice-dev/sluice/internal/barstore"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
)

// Services reads the control plane's own services: the source of an agent
// running inside `sluice serve`. Principal names the instance it
// federates; it only reads.
type Services struct {
	RuntimeService *orchestrator.Service
	BARService     *barstore.Service
	Principal      iam.Principal
	// Ready is the store's readiness check, for HEALTH_CHECK.
	Ready func(ctx context.Context) error
}

var _ Source = (*Services)(nil)

// Runtimes lists the instance's runtimes.
func (s *Services) Runtimes(ctx context.Context) ([]Runtime, error) {
	rts, err := s.RuntimeService.List(ctx, s.Principal)
	if err != nil {
		return nil, err
	}
	out := make([]Runtime, 0, len(rts))
	for _, r := range rts {
		bars, _ := r.Spec.Refs()
		rt := Runtime{Name: r.Name, Version: r.Spec.Version, Phase: r.Status.Phase, BARs: bars}
		for _, e := range r.Status.Endpoints {
			rt.EndpointURLs = append(rt.EndpointURLs, e.URI)
		}
		out = append(out, rt)
	}
	return out, nil
}

// BAR reads a BAR file's stored description.
func (s *Services) BAR(ctx context.Context, name string) (BAR, error) {
	f, err := s.BARService.Get(ctx, s.Principal, name)
	if err != nil {
		return BAR{}, err
	}
	return BAR{Name: f.Name, SHA256: f.SHA256, Project: f.Info.Name, Version: f.Info.Version, Description: f.Info.Description,
		Endpoints: f.Info.Endpoints}, nil
}

// OpenBAR streams a BAR file's bytes from the store.
func (s *Services) OpenBAR(ctx context.Context, name string) (io.ReadCloser, error) {
	_, rc, err := s.BARService.Open(ctx, s.Principal, name)
	return rc, err
}

// Health is the store's readiness.
func (s *Services) Health(ctx context.Context) error {
	if s.Ready == nil {
		return nil
	}
	if err := s.Ready(ctx); err != nil {
		return fmt.Errorf("the Sluice store is not ready: %w", err)
	}
	return nil
}

// API reads a control plane through its public API: the source of
// `sluice federation-agent` running on its own.
type API struct {
	Client *client.Client
}

var _ Source = (*API)(nil)

// Runtimes lists the runtimes the client's credentials see.
func (s *API) Runtimes(ctx context.Context) ([]Runtime, error) {
	rts, err := s.Client.ListRuntimes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Runtime, 0, len(rts))
	for _, r := range rts {
		rt := Runtime{Name: r.Metadata.Name, Version: r.Spec.Version, Phase: r.Status.Phase}
		for _, u := range r.Spec.BarURL {
			if ref, err := orchestrator.ParseBARURL(u); err == nil && ref.Name != "" {
				rt.BARs = append(rt.BARs, ref.Name)
			}
		}
		for _, e := range r.Status.Endpoints {
			rt.EndpointURLs = append(rt.EndpointURLs, e.URI)
		}
		out = append(out, rt)
	}
	return out, nil
}

// BAR reads a BAR file's description.
func (s *API) BAR(ctx context.Context, name string) (BAR, error) {
	f, err := s.Client.GetBARFile(ctx, name)
	if err != nil {
		return BAR{}, err
	}
	b := BAR{Name: f.Name, SHA256: f.SHA256, Project: f.Project, Version: f.Version}
	for _, e := range f.Endpoints {
		b.Endpoints = append(b.Endpoints, bar.Endpoint{Method: e.Method, Path: e.Path, Flow: e.Flow})
	}
	return b, nil
}

// OpenBAR downloads a BAR file's bytes.
func (s *API) OpenBAR(ctx context.Context, name string) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		_, err := s.Client.DownloadBARFile(ctx, name, pw, nil)
		pw.CloseWithError(err)
	}()
	return pr, nil
}

// Health is a call that needs a working token.
func (s *API) Health(ctx context.Context) error {
	if _, err := s.Client.WhoAmI(ctx); err != nil {
		return fmt.Errorf("the Sluice API at %s does not answer: %w", s.Client.Endpoint(), err)
	}
	return nil
}
