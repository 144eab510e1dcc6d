package published

import (
	"context"
	"fmt"

	"github.com/sluice-dev/sluice/internal/apis"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/federation"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
)

// Services reaches the control plane's own services: the source of an
// agent running inside `sluice serve`. Principal names the instance it
// federates and is who the audit records as having made each change.
type Services struct {
	APIService     *apis.Service
	AppService     *apps.Service
	RuntimeService *orchestrator.Service
	Principal      iam.Principal
	// Ready is the store's readiness check, for HEALTH_CHECK.
	Ready func(ctx context.Context) error
}

var _ Source = (*Services)(nil)

// APIs lists the instance's published APIs.
func (s *Services) APIs(ctx context.Context) ([]API, error) {
	as, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.API], error) {
		return s.APIService.ListAPIs(ctx, s.Principal, req)
	})
	if err != nil {
		return nil, err
	}
	out := make([]API, 0, len(as))
	for _, a := range as {
		out = append(out, API{ID: a.ID, Name: a.Name, Title: a.Spec.Title, Version: a.Spec.Version, Description: a.Spec.Description,
			BasePath: a.Spec.BasePath, Runtime: a.Spec.Runtime, BARFile: a.Spec.BARFile, DocumentSource: a.Status.DocumentSource})
	}
	return out, nil
}

// Plans lists the instance's plans.
func (s *Services) Plans(ctx context.Context) ([]Plan, error) {
	ps, err := iam.All(func(req iam.ListRequest) (iam.ListPage[apis.Plan], error) {
		return s.APIService.ListPlans(ctx, s.Principal, req)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Plan, 0, len(ps))
	for _, p := range ps {
		out = append(out, Plan{ID: p.ID, Name: p.Name, Title: p.Spec.Title, Description: p.Spec.Description, Auth: p.Spec.Auth,
			ClientSecret: p.Spec.ClientSecret, Approval: p.Spec.Approval, RateLimit: p.Spec.RateLimit, APIs: p.Spec.APIs})
	}
	return out, nil
}

// Runtimes lists the instance's runtimes.
func (s *Services) Runtimes(ctx context.Context) ([]Runtime, error) {
	rts, err := iam.All(func(req iam.ListRequest) (iam.ListPage[orchestrator.Runtime], error) {
		return s.RuntimeService.List(ctx, s.Principal, req)
	})
	if err != nil {
		return nil, err
	}
	out := make([]Runtime, 0, len(rts))
	for _, r := range rts {
		bars, _ := r.Spec.Refs()
		rt := Runtime{Name: r.Name, BARs: bars}
		for _, e := range r.Status.Endpoints {
			rt.EndpointURLs = append(rt.EndpointURLs, e.URI)
		}
		out = append(out, rt)
	}
	return out, nil
}

// Document reads an API's OpenAPI document.
func (s *Services) Document(ctx context.Context, api string) ([]byte, error) {
	_, doc, err := s.APIService.Document(ctx, s.Principal, api)
	return doc, err
}

func notFound(err error) bool { return iam.KindOf(err) == iam.KindNotFound }

func conflict(err error) bool { return iam.KindOf(err) == iam.KindConflict }

// Grant creates what is missing of g's consumer org, app, subscription
// and credential, each through its service.
func (s *Services) Grant(ctx context.Context, g Grant) (federation.Credential, error) {
	p := s.Principal
	orgPath := apps.Path{Catalog: g.Catalog, ConsumerOrg: g.ConsumerOrg}
	if _, err := s.AppService.Resolve(ctx, p, orgPath); notFound(err) {
		_, err = s.AppService.CreateConsumerOrg(ctx, p, g.Catalog, apps.Input{Name: g.ConsumerOrg, Title: g.OrgTitle,
			Summary: "Gravitee application " + g.OrgTitle})
		if err != nil && !conflict(err) {
			return federation.Credential{}, err
		}
	} else if err != nil {
		return federation.Credential{}, err
	}
	appPath := apps.Path{Catalog: g.Catalog, ConsumerOrg: g.ConsumerOrg, App: g.App}
	r, err := s.AppService.Resolve(ctx, p, appPath)
	if notFound(err) {
		_, err = s.AppService.CreateApp(ctx, p, appPath, apps.AppInput{Input: apps.Input{Name: g.App, Title: g.AppTitle, Summary: g.Summary}})
		if err != nil && !conflict(err) {
			return federation.Credential{}, err
		}
		r, err = s.AppService.Resolve(ctx, p, appPath)
	}
	if err != nil {
		return federation.Credential{}, err
	}
	// Replacing a subscription with the same plan and app keeps its state.
	if _, _, err := s.APIService.PutSubscription(ctx, p, g.App, apis.SubscriptionSpec{Plan: g.Plan, App: appPath.String()}, false); err != nil {
		return federation.Credential{}, err
	}
	_, c, err := s.AppService.GetCredential(ctx, p, appPath, CredentialName)
	switch {
	case err == nil && !g.NeedSecret:
		return credential(r.App.ID, c.ClientID, secret.Value{}, false), nil
	case err == nil:
		// Its secret was shown once, to the first SUBSCRIBE: a new one
		// replaces it.
		if err := s.AppService.DeleteCredential(ctx, p, appPath, CredentialName); err != nil && !notFound(err) {
			return federation.Credential{}, err
		}
	case !notFound(err):
		return federation.Credential{}, err
	}
	_, issued, err := s.AppService.CreateCredential(ctx, p, appPath, apps.CredentialInput{Input: apps.Input{Name: CredentialName, Title: "Gravitee"}})
	if conflict(err) && !g.NeedSecret {
		// A concurrent SUBSCRIBE of the same subscription made it.
		if _, c, err := s.AppService.GetCredential(ctx, p, appPath, CredentialName); err == nil {
			return credential(r.App.ID, c.ClientID, secret.Value{}, false), nil
		}
	}
	if err != nil {
		return federation.Credential{}, err
	}
	return credential(r.App.ID, issued.Credential.ClientID, issued.Secret, g.NeedSecret), nil
}

// Revoke deletes g's subscription and app (its credential goes with it).
// The consumer org stays: it stands for the Gravitee application, which
// may hold other subscriptions.
func (s *Services) Revoke(ctx context.Context, g Grant) error {
	p := s.Principal
	appPath := apps.Path{Catalog: g.Catalog, ConsumerOrg: g.ConsumerOrg, App: g.App}
	sub, err := s.APIService.GetSubscription(ctx, p, g.App)
	switch {
	case err == nil:
		if path, ok := parseAppPath(sub.Spec.App); ok {
			appPath = path
		}
		if err := s.APIService.DeleteSubscription(ctx, p, g.App); err != nil && !notFound(err) {
			return err
		}
	case !notFound(err):
		return err
	}
	if err := s.AppService.DeleteApp(ctx, p, appPath, true); err != nil && !notFound(err) {
		return err
	}
	return nil
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
