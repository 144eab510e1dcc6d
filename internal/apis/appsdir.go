package apis

import (
	"context"
	"strings"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/gateway"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
)

// AppsDirectory answers subscriptions and the gateway from package apps:
// which app a subscription names, and the subscribed apps' credentials.
type AppsDirectory struct {
	Apps *apps.Service
}

var (
	_ AppResolver = AppsDirectory{}
	_ Credentials = AppsDirectory{}
)

// ResolveApp reads the app "catalog/consumer-org/app" names (ids or names).
func (d AppsDirectory) ResolveApp(ctx context.Context, p iam.Principal, path string) (App, error) {
	parts := strings.Split(path, "/")
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return App{}, iam.Invalidf("spec.app %q is not catalog/consumer-org/app", path)
	}
	r, err := d.Apps.Resolve(ctx, p, apps.Path{Catalog: parts[0], ConsumerOrg: parts[1], App: parts[2]})
	if err != nil {
		if iam.KindOf(err) == iam.KindNotFound {
			return App{}, iam.Invalidf("spec.app: %v", err)
		}
		return App{}, err
	}
	return appOf(r.Catalog, r.ConsumerOrg, r.App), nil
}

func appOf(c store.Catalog, o store.ConsumerOrg, a store.App) App {
	return App{ID: a.ID, Name: a.Name, ConsumerOrgID: o.ID, ConsumerOrgName: o.Name, CatalogID: c.ID, CatalogName: c.Name,
		Enabled: a.State == apps.StateEnabled}
}

// GatewayApps returns every app of instanceID with its credentials
// (client ids and secret hashes): apps without a subscription are there
// too, so that the gateway answers them 403 (known, not subscribed)
// rather than 401.
func (d AppsDirectory) GatewayApps(ctx context.Context, instanceID string) ([]App, []gateway.Credential, error) {
	st := d.Apps.Store
	var out []App
	var creds []gateway.Credential
	cats, err := st.ListCatalogs(ctx, instanceID, store.Page{})
	if err != nil {
		return nil, nil, err
	}
	for _, c := range cats {
		orgs, err := st.ListConsumerOrgs(ctx, c.ID, store.Page{})
		if err != nil {
			return nil, nil, err
		}
		byID := make(map[string]store.ConsumerOrg, len(orgs))
		for _, o := range orgs {
			byID[o.ID] = o
		}
		as, err := st.ListApps(ctx, c.ID, "", store.Page{})
		if err != nil {
			return nil, nil, err
		}
		for _, a := range as {
			o, ok := byID[a.ConsumerOrgID]
			if !ok {
				continue // its consumer org went since the list was read
			}
			out = append(out, appOf(c, o, a))
			cs, err := st.ListAppCredentials(ctx, a.ID, store.AppCredentialFilter{}, store.Page{})
			if err != nil {
				return nil, nil, err
			}
			for _, cr := range cs {
				creds = append(creds, gateway.Credential{ClientID: cr.ClientID, SecretHash: cr.SecretHash, AppID: a.ID, ExpiresAt: cr.ExpiresAt})
			}
		}
	}
	return out, creds, nil
}
