package published

import (
	"context"
	"fmt"
	"strings"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/federation"
	"github.com/sluice-dev/sluice/internal/orchestrator"
	"github.com/sluice-dev/sluice/internal/secret"
)

// Remote reaches a control plane through its public API: the source of
// `sluice federation-agent` running on its own. Its credentials need the
// developer role to subscribe (a viewer's are enough to discover).
type Remote struct {
	Client *client.Client
}

var _ Source = (*Remote)(nil)

// APIs lists the published APIs.
func (s *Remote) APIs(ctx context.Context) ([]API, error) {
	as, err := s.Client.ListAPIs(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]API, 0, len(as))
	for _, a := range as {
		api := API{ID: a.Metadata.ID, Name: a.Metadata.Name, Title: a.Spec.Title, Version: a.Spec.Version, Description: a.Spec.Description,
			BasePath: a.Spec.BasePath, Runtime: a.Spec.Runtime, BARFile: a.Spec.BARFile}
		if api.BasePath == "" {
			api.BasePath = "/"
		}
		if a.Status != nil {
			api.DocumentSource = a.Status.DocumentSource
		}
		out = append(out, api)
	}
	return out, nil
}

// Plans lists the plans.
func (s *Remote) Plans(ctx context.Context) ([]Plan, error) {
	ps, err := s.Client.ListPlans(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Plan, 0, len(ps))
	for _, p := range ps {
		out = append(out, Plan{ID: p.Metadata.ID, Name: p.Metadata.Name, Title: p.Spec.Title, Description: p.Spec.Description,
			Auth: p.Spec.Auth, ClientSecret: p.Spec.ClientSecret, Approval: p.Spec.Approval, RateLimit: p.Spec.RateLimit, APIs: p.Spec.APIs})
	}
	return out, nil
}

// Runtimes lists the runtimes.
func (s *Remote) Runtimes(ctx context.Context) ([]Runtime, error) {
	rts, err := s.Client.ListRuntimes(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Runtime, 0, len(rts))
	for _, r := range rts {
		rt := Runtime{Name: r.Metadata.Name}
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

// Document downloads an API's OpenAPI document.
func (s *Remote) Document(ctx context.Context, api string) ([]byte, error) {
	doc, err := s.Client.APIDocument(ctx, api)
	return []byte(doc), err
}

func remoteConflict(err error) bool { return client.StatusCode(err) == 409 }

// Grant creates what is missing of g's objects through the API.
func (s *Remote) Grant(ctx context.Context, g Grant) (federation.Credential, error) {
	c := s.Client
	orgPath := client.AppPath{Catalog: g.Catalog, ConsumerOrg: g.ConsumerOrg}
	if _, err := c.GetConsumer(ctx, orgPath); client.IsNotFound(err) {
		_, err = c.CreateConsumerOrg(ctx, g.Catalog, client.Consumer{Metadata: client.Metadata{Name: g.ConsumerOrg},
			Spec: client.ConsumerSpec{Title: g.OrgTitle, Summary: "Gravitee application " + g.OrgTitle}})
		if err != nil && !remoteConflict(err) {
			return federation.Credential{}, err
		}
	} else if err != nil {
		return federation.Credential{}, err
	}
	appPath := client.AppPath{Catalog: g.Catalog, ConsumerOrg: g.ConsumerOrg, App: g.App}
	app, err := c.GetConsumer(ctx, appPath)
	if client.IsNotFound(err) {
		_, err = c.CreateApp(ctx, appPath, client.Consumer{Metadata: client.Metadata{Name: g.App},
			Spec: client.ConsumerSpec{Title: g.AppTitle, Summary: g.Summary}})
		if err != nil && !remoteConflict(err) {
			return federation.Credential{}, err
		}
		app, err = c.GetConsumer(ctx, appPath)
	}
	if err != nil {
		return federation.Credential{}, err
	}
	if _, err := c.PutSubscription(ctx, client.Subscription{Metadata: client.Metadata{Name: g.App},
		Spec: client.SubscriptionSpec{Plan: g.Plan, App: strings.Join([]string{g.Catalog, g.ConsumerOrg, g.App}, "/")}}); err != nil {
		return federation.Credential{}, err
	}
	existing, err := s.credential(ctx, appPath)
	if err != nil {
		return federation.Credential{}, err
	}
	if existing != "" && !g.NeedSecret {
		return credential(app.Metadata.ID, existing, secret.Value{}, false), nil
	}
	if existing != "" {
		// Its secret was shown once, to the first SUBSCRIBE.
		if err := c.DeleteAppCredential(ctx, appPath, CredentialName); err != nil && !client.IsNotFound(err) {
			return federation.Credential{}, err
		}
	}
	issued, err := c.CreateAppCredential(ctx, appPath, CredentialName, "Gravitee")
	if remoteConflict(err) && !g.NeedSecret {
		if id, err := s.credential(ctx, appPath); err == nil && id != "" {
			return credential(app.Metadata.ID, id, secret.Value{}, false), nil
		}
	}
	if err != nil {
		return federation.Credential{}, err
	}
	return credential(app.Metadata.ID, issued.ClientID, secret.New(issued.ClientSecret.Reveal()), g.NeedSecret), nil
}

// credential is the client id of the app's Gravitee credential, "" when
// it has none.
func (s *Remote) credential(ctx context.Context, app client.AppPath) (string, error) {
	cs, err := s.Client.ListAppCredentials(ctx, app, false)
	if err != nil {
		return "", err
	}
	for _, c := range cs {
		if c.Metadata.Name == CredentialName {
			return c.Status.ClientID, nil
		}
	}
	return "", nil
}

// Revoke deletes g's subscription and app through the API.
func (s *Remote) Revoke(ctx context.Context, g Grant) error {
	c := s.Client
	appPath := client.AppPath{Catalog: g.Catalog, ConsumerOrg: g.ConsumerOrg, App: g.App}
	sub, err := c.GetSubscription(ctx, g.App)
	switch {
	case err == nil:
		if p, ok := parseAppPath(sub.Spec.App); ok {
			appPath = client.AppPath{Catalog: p.Catalog, ConsumerOrg: p.ConsumerOrg, App: p.App}
		}
		if err := c.DeleteSubscription(ctx, g.App); err != nil && !client.IsNotFound(err) {
			return err
		}
	case !client.IsNotFound(err):
		return err
	}
	if err := c.DeleteConsumer(ctx, appPath, true); err != nil && !client.IsNotFound(err) {
		return err
	}
	return nil
}

// Health is a call that needs a working token.
func (s *Remote) Health(ctx context.Context) error {
	if _, err := s.Client.WhoAmI(ctx); err != nil {
		return fmt.Errorf("the Sluice API at %s does not answer: %w", s.Client.Endpoint(), err)
	}
	return nil
}
