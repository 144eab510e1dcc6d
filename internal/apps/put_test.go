package apps_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the driver the SQLite store uses, to reach its file directly

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// PUT creates what is not there (created true) and replaces what is; bad
// input to either changes nothing.
func TestPutCreatesOrReplaces(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()

			c, created, err := e.svc.PutCatalog(ctx, e.dev, "prod", apps.Input{Title: "Production"})
			if err != nil || !created || c.Name != "prod" || c.Title != "Production" {
				t.Fatalf("PUT of a new catalog = %+v, created %v, %v; want it created", c, created, err)
			}
			c2, created, err := e.svc.PutCatalog(ctx, e.dev, c.ID, apps.Input{Summary: "live"})
			if err != nil || created || c2.ID != c.ID || c2.Title != "prod" || c2.Summary != "live" {
				t.Fatalf("PUT of an existing catalog by id = %+v, created %v, %v; want it replaced (title back to the name)", c2, created, err)
			}
			for name, bad := range map[string]struct {
				ref string
				in  apps.Input
			}{
				"a new name breaking the name rule": {"Bad Name", apps.Input{}},
				"a body name not the path's":        {"other", apps.Input{Name: "else"}},
				"a rename of an existing one":       {"prod", apps.Input{Name: "renamed"}},
				"a title too long":                  {"prod", apps.Input{Title: strings.Repeat("t", 200)}},
			} {
				if _, _, err := e.svc.PutCatalog(ctx, e.dev, bad.ref, bad.in); kind(err) != iam.KindInvalid {
					t.Errorf("PUT with %s: %v, want invalid", name, err)
				}
			}
			if _, _, err := e.svc.PutCatalog(ctx, e.view, "viewers", apps.Input{}); kind(err) != iam.KindForbidden {
				t.Errorf("viewer PUT of a new catalog: %v, want forbidden", err)
			}
			cats, _ := e.svc.ListCatalogs(ctx, e.view, iam.ListRequest{})
			if len(cats.Items) != 2 {
				t.Errorf("refused PUTs changed the catalogs: %+v", cats.Items)
			}
			if got, _ := e.svc.GetCatalog(ctx, e.view, "prod"); got.Summary != "live" || got.Title != "prod" {
				t.Errorf("a refused PUT changed the catalog: %+v", got)
			}

			r, created, err := e.svc.PutConsumerOrg(ctx, e.dev, apps.Path{Catalog: "prod", ConsumerOrg: "acme"}, apps.Input{Title: "ACME"})
			if err != nil || !created || r.ConsumerOrg.Name != "acme" || r.Catalog.ID != c.ID {
				t.Fatalf("PUT of a new consumer org = %+v, created %v, %v", r.ConsumerOrg, created, err)
			}
			if r, created, err = e.svc.PutConsumerOrg(ctx, e.dev, apps.Path{Catalog: "prod", ConsumerOrg: "acme"}, apps.Input{Title: "ACME Corp"}); err != nil || created || r.ConsumerOrg.Title != "ACME Corp" {
				t.Fatalf("PUT of an existing consumer org = %+v, created %v, %v", r.ConsumerOrg, created, err)
			}
			if _, _, err := e.svc.PutConsumerOrg(ctx, e.dev, apps.Path{Catalog: "nowhere", ConsumerOrg: "acme"}, apps.Input{}); kind(err) != iam.KindNotFound {
				t.Errorf("PUT of a consumer org in a missing catalog: %v, want not found (no catalog made)", err)
			}

			shop := apps.Path{Catalog: "prod", ConsumerOrg: "acme", App: "shop"}
			pol := &apps.CredentialPolicy{DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour}
			ra, created, err := e.svc.PutApp(ctx, e.dev, shop, apps.AppInput{Input: apps.Input{Title: "Shop"}, Policy: pol})
			if err != nil || !created || ra.App.Name != "shop" || ra.App.State != apps.StateEnabled || ra.App.MaxTTL != 2*time.Hour {
				t.Fatalf("PUT of a new app = %+v, created %v, %v", ra.App, created, err)
			}
			if _, _, err := e.svc.PutApp(ctx, e.dev, shop, apps.AppInput{State: apps.StateDisabled, Policy: pol}); err != nil {
				t.Fatal(err)
			}
			ra, created, err = e.svc.PutApp(ctx, e.dev, apps.Path{Catalog: c.ID, ConsumerOrg: r.ConsumerOrg.ID, App: ra.App.ID}, apps.AppInput{Input: apps.Input{Title: "Shop 2"}})
			if err != nil || created || ra.App.Title != "Shop 2" || ra.App.State != apps.StateDisabled || ra.App.MaxTTL != 2*time.Hour {
				t.Fatalf("PUT replacing an app by ids = %+v, created %v, %v; want the title replaced, the state and policy kept", ra.App, created, err)
			}
			if ra, _, err = e.svc.PutApp(ctx, e.dev, shop, apps.AppInput{Policy: &apps.CredentialPolicy{}}); err != nil || ra.App.MaxTTL != 0 || ra.App.Title != "shop" {
				t.Fatalf("PUT with an empty policy = %+v, %v; want the policy removed, the title back to the name", ra.App, err)
			}
			if _, _, err := e.svc.PutApp(ctx, e.dev, apps.Path{Catalog: "prod", ConsumerOrg: "acme", App: "cart"},
				apps.AppInput{Policy: &apps.CredentialPolicy{DefaultTTL: 3 * time.Hour, MaxTTL: time.Hour}}); kind(err) != iam.KindInvalid {
				t.Errorf("PUT of a new app with a bad policy: %v, want invalid", err)
			}
			if as, _ := e.svc.ListApps(ctx, e.view, apps.Path{Catalog: "prod", ConsumerOrg: "acme"}, iam.ListRequest{}); len(as.Items) != 1 {
				t.Errorf("a refused PUT created an app: %+v", as.Items)
			}
			if n := len(e.audit(t, "app.create")); n != 1 {
				t.Errorf("app.create audited %d times, want 1", n)
			}
		})
	}
}

// refuseAudit makes every audit insert fail, in the store's own database,
// as a full disk or a broken audit table would.
func refuseAudit(t *testing.T, e *env) {
	t.Helper()
	driver, dsn, stmts := "sqlite", filepath.Join(e.dir, store.DefaultSQLiteFile), []string{
		`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events BEGIN SELECT RAISE(ABORT, 'audit refused by the test'); END`}
	if e.kind == "postgres" {
		driver, dsn, stmts = "pgx", e.dsn, []string{
			`CREATE FUNCTION refuse_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit refused by the test'; END $$ LANGUAGE plpgsql`,
			`CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_audit()`}
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A change whose audit record cannot be written is not made: the caller
// is never told "failed" about something that was committed (API
// Connect's clients retry a failed POST, which would mint a duplicate).
func TestNoChangeWithoutItsAudit(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()
			path := e.app(t, &apps.CredentialPolicy{DefaultTTL: time.Hour})
			refuseAudit(t, e)
			if _, err := e.svc.CreateCatalog(ctx, e.dev, apps.Input{Name: "prod"}); err == nil {
				t.Fatal("a catalog create whose audit failed was acknowledged")
			}
			if _, err := e.svc.GetCatalog(ctx, e.view, "prod"); kind(err) != iam.KindNotFound {
				t.Errorf("the catalog whose create failed exists: %v", err)
			}
			if _, _, err := e.svc.CreateCredential(ctx, e.dev, path, apps.CredentialInput{Input: apps.Input{Title: "mobile"}}); err == nil {
				t.Fatal("a credential create whose audit failed was acknowledged")
			}
			if _, _, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 0); err == nil {
				t.Fatal("a lease create whose audit failed was acknowledged")
			}
			if _, _, err := e.svc.PutApp(ctx, e.dev, apps.Path{Catalog: "sandbox", ConsumerOrg: "acme", App: "cart"}, apps.AppInput{}); err == nil {
				t.Fatal("a PUT whose audit failed was acknowledged")
			}
			if err := e.svc.DeleteApp(ctx, e.dev, path, true); err == nil {
				t.Fatal("a delete whose audit failed was acknowledged")
			}
			r, err := e.svc.GetApp(ctx, e.view, path)
			if err != nil {
				t.Fatalf("the app whose delete failed is gone: %v", err)
			}
			if cs, _ := e.st.ListAppCredentials(ctx, r.App.ID, store.AppCredentialFilter{}, store.Page{}); len(cs) != 0 {
				t.Errorf("credentials whose create failed exist: %+v", cs)
			}
			if as, _ := e.svc.ListApps(ctx, e.view, apps.Path{Catalog: "sandbox", ConsumerOrg: "acme"}, iam.ListRequest{}); len(as.Items) != 1 {
				t.Errorf("apps = %d, want only shop", len(as.Items))
			}
			if got := e.eventTypes(); len(got) != 0 {
				t.Errorf("the change feed told of changes that were not made: %v", got)
			}
		})
	}
}
