package apps_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// epoch is the one base every test time is relative to.
var epoch = clocktest.Epoch()

// fakeClock is a clock whose timers fire only when the test moves it
// (clocktest.Fake has no timers; the sweeper sleeps on one).
type fakeClock struct {
	mu      sync.Mutex
	t       time.Time
	waiters []waiter
	changed chan struct{} // closed and replaced whenever a timer is set
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: epoch, changed: make(chan struct{})} }

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.t
		return ch
	}
	c.waiters = append(c.waiters, waiter{at: c.t.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	keep := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.t) {
			w.ch <- c.t
		} else {
			keep = append(keep, w)
		}
	}
	c.waiters = keep
}

// waitForTimer blocks until some timer is set for exactly at (the
// sweeper went to sleep until then) and fails the test if none comes.
func (c *fakeClock) waitForTimer(t *testing.T, at time.Time) {
	t.Helper()
	deadline := time.After(20 * time.Second) // a hang guard, not a timing assertion
	for {
		c.mu.Lock()
		for _, w := range c.waiters {
			if w.at.Equal(at) {
				c.mu.Unlock()
				return
			}
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no timer was set for %s", at.Sub(epoch))
		}
	}
}

type env struct {
	st    store.Store
	clock *fakeClock
	iam   *iam.Service
	svc   *apps.Service
	admin iam.Principal
	dev   iam.Principal
	view  iam.Principal

	mu     sync.Mutex
	events []apps.Event

	kind, dsn, dir string           // where the store is, for tests that open it themselves
	mk             secret.MasterKey // opens its keyring
}

func newEnv(t *testing.T, kind string) *env {
	t.Helper()
	ctx := context.Background()
	dsn, dir := storetest.DSN(t, kind), t.TempDir()
	st, err := store.Open(ctx, dsn, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	aud := iam.NewAuditor(st)
	t.Cleanup(aud.Close)
	tokens := &iam.Tokens{Store: st, Keyring: kr, Issuer: "http://sluice.test", Audience: "sluice", Lifetime: time.Hour, Now: clk.Now}
	if err := tokens.Init(ctx); err != nil {
		t.Fatal(err)
	}
	is := &iam.Service{Store: st, Tokens: tokens, Audit: aud, Now: clk.Now}
	creds, err := is.Bootstrap(ctx)
	if err != nil || creds == nil {
		t.Fatalf("bootstrap: %v", err)
	}
	e := &env{st: st, clock: clk, iam: is, svc: &apps.Service{Store: st, IAM: is, Now: clk.Now}, kind: kind, dsn: dsn, dir: dir, mk: mk}
	p := func(name, role string) iam.Principal {
		return iam.Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: name, Role: role}
	}
	e.admin, e.dev, e.view = p("admin", iam.RoleAdmin), p("dev", iam.RoleDeveloper), p("view", iam.RoleViewer)
	e.svc.Watch(func(ev apps.Event) { e.mu.Lock(); e.events = append(e.events, ev); e.mu.Unlock() })
	return e
}

func (e *env) eventTypes() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.events {
		out = append(out, ev.Type+":"+ev.Reason)
	}
	return out
}

func (e *env) audit(t *testing.T, action string) []store.AuditEvent {
	t.Helper()
	evs, err := e.st.ListAuditEvents(context.Background(), store.AuditFilter{InstanceID: e.admin.InstanceID, Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	var out []store.AuditEvent
	for _, ev := range evs {
		if ev.Action == action {
			out = append(out, ev)
		}
	}
	return out
}

// app makes catalog sandbox / consumer org acme / app shop.
func (e *env) app(t *testing.T, pol *apps.CredentialPolicy) apps.Path {
	t.Helper()
	ctx := context.Background()
	if _, err := e.svc.CreateConsumerOrg(ctx, e.dev, "sandbox", apps.Input{Name: "acme"}); err != nil {
		t.Fatal(err)
	}
	path := apps.Path{Catalog: "sandbox", ConsumerOrg: "acme", App: "shop"}
	if _, err := e.svc.CreateApp(ctx, e.dev, path, apps.AppInput{Input: apps.Input{Name: "shop", Title: "Shop"}, Policy: pol}); err != nil {
		t.Fatal(err)
	}
	return path
}

func kind(err error) iam.Kind { return iam.KindOf(err) }

func TestObjectsRolesAndCascade(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()
			cats, err := e.svc.ListCatalogs(ctx, e.view, iam.ListRequest{})
			if err != nil || len(cats.Items) != 1 || cats.Items[0].Name != "sandbox" || cats.Items[0].ID != store.SandboxCatalogID(e.admin.InstanceID) {
				t.Fatalf("catalogs at start = %+v, %v; want the sandbox", cats.Items, err)
			}
			if _, err := e.svc.CreateCatalog(ctx, e.view, apps.Input{Name: "prod"}); kind(err) != iam.KindForbidden {
				t.Errorf("viewer creating a catalog: %v, want forbidden", err)
			}
			if denied := e.audit(t, "catalog.create"); len(denied) != 1 || denied[0].Outcome != iam.OutcomeDenied {
				t.Errorf("the viewer's refused create is not audited as denied: %+v", denied)
			}
			for _, bad := range []apps.Input{{Name: "bad name!"}, {Name: strings.Repeat("x", 33)}, {}} {
				if _, err := e.svc.CreateCatalog(ctx, e.dev, bad); kind(err) != iam.KindInvalid {
					t.Errorf("catalog %+v: %v, want invalid", bad, err)
				}
			}
			prod, err := e.svc.CreateCatalog(ctx, e.dev, apps.Input{Title: "Production APIs"})
			if err != nil || prod.Name != "production-apis" || prod.Title != "Production APIs" {
				t.Fatalf("catalog from a title = %+v, %v", prod, err)
			}
			if _, err := e.svc.CreateCatalog(ctx, e.dev, apps.Input{Name: "production-apis"}); kind(err) != iam.KindConflict {
				t.Errorf("taken catalog name: %v, want conflict", err)
			}
			// By id or by name, everywhere.
			if c, err := e.svc.GetCatalog(ctx, e.view, prod.ID); err != nil || c.Name != prod.Name {
				t.Errorf("catalog by id = %+v, %v", c, err)
			}
			path := e.app(t, nil)
			r, err := e.svc.GetApp(ctx, e.view, path)
			if err != nil {
				t.Fatal(err)
			}
			byID := apps.Path{Catalog: r.Catalog.ID, ConsumerOrg: r.ConsumerOrg.ID, App: r.App.ID}
			if r2, err := e.svc.GetApp(ctx, e.view, byID); err != nil || r2.App.Name != "shop" || r2.App.State != apps.StateEnabled {
				t.Errorf("app by ids = %+v, %v", r2.App, err)
			}
			if _, err := e.svc.GetApp(ctx, e.view, apps.Path{Catalog: "sandbox", ConsumerOrg: "nobody", App: "shop"}); kind(err) != iam.KindNotFound ||
				!strings.Contains(err.Error(), "consumer org nobody") {
				t.Errorf("wrong consumer org: %v", err)
			}
			if _, err := e.svc.UpdateApp(ctx, e.dev, path, apps.AppInput{Input: apps.Input{Name: "other"}}); kind(err) != iam.KindInvalid {
				t.Errorf("renaming an app: %v, want invalid", err)
			}
			if _, err := e.svc.UpdateApp(ctx, e.dev, path, apps.AppInput{State: "paused"}); kind(err) != iam.KindInvalid {
				t.Errorf("unknown state: %v, want invalid", err)
			}
			if _, _, err := e.svc.CreateCredential(ctx, e.dev, path, apps.CredentialInput{Input: apps.Input{Title: "first"}}); err != nil {
				t.Fatal(err)
			}
			// Parents with children are refused without force…
			for name, del := range map[string]func(bool) error{
				"app":          func(f bool) error { return e.svc.DeleteApp(ctx, e.dev, path, f) },
				"consumer org": func(f bool) error { return e.svc.DeleteConsumerOrg(ctx, e.dev, path, f) },
				"catalog":      func(f bool) error { return e.svc.DeleteCatalog(ctx, e.dev, "sandbox", f) },
			} {
				if err := del(false); kind(err) != iam.KindConflict || !strings.Contains(err.Error(), "force") {
					t.Errorf("deleting the %s without force: %v, want a conflict that mentions force", name, err)
				}
			}
			if cs, _ := e.svc.ListCredentials(ctx, e.view, path, iam.ListRequest{}); len(cs.Items) != 1 {
				t.Fatalf("a refused delete changed something: %d credentials", len(cs.Items))
			}
			// …and cascade with it, telling the change feed.
			if err := e.svc.DeleteCatalog(ctx, e.view, "sandbox", true); kind(err) != iam.KindForbidden {
				t.Errorf("viewer deleting: %v", err)
			}
			if err := e.svc.DeleteCatalog(ctx, e.dev, "sandbox", true); err != nil {
				t.Fatal(err)
			}
			if _, err := e.svc.GetApp(ctx, e.view, byID); kind(err) != iam.KindNotFound {
				t.Errorf("app after its catalog went: %v", err)
			}
			if n, _ := e.st.ListAppCredentials(ctx, r.App.ID, store.AppCredentialFilter{}, store.Page{}); len(n) != 0 {
				t.Errorf("credentials survived the cascade: %d", len(n))
			}
			if got := strings.Join(e.eventTypes(), ","); got != "credential.created:,credential.deleted:cascade" {
				t.Errorf("change feed = %s", got)
			}
			ok := 0
			for _, ev := range e.audit(t, "catalog.delete") {
				if ev.Outcome == iam.OutcomeSuccess && ev.Object == "catalog/sandbox" {
					ok++
				}
			}
			if ok != 1 {
				t.Errorf("successful catalog delete audited %d times", ok)
			}
		})
	}
}

func TestCredentialsAreShownOnceAndHashed(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	path := e.app(t, nil)
	_, is, err := e.svc.CreateCredential(ctx, e.dev, path, apps.CredentialInput{Input: apps.Input{Title: "infisical-1764583200000"}})
	if err != nil {
		t.Fatal(err)
	}
	sec := is.Secret.Reveal()
	if !iam.SecretPattern.MatchString(sec) || !strings.HasPrefix(sec, iam.AppSecretPrefix) || is.Credential.Name != "infisical-1764583200000" {
		t.Fatalf("issued %q named %q", sec, is.Credential.Name)
	}
	if !apps.IsAppClientID(is.Credential.ClientID) {
		t.Errorf("client id %q is not an app client id", is.Credential.ClientID)
	}
	row, err := e.st.AppCredentialByClientID(ctx, is.Credential.ClientID)
	if err != nil || row.SecretHash == "" || strings.Contains(row.SecretHash, sec[5:]) || !strings.HasSuffix(row.SecretHint, "…") {
		t.Fatalf("stored row = %+v, %v", row, err)
	}
	if _, _, err := e.svc.AuthenticateClient(ctx, is.Credential.ClientID, is.Secret); err != nil {
		t.Errorf("the issued credential does not authenticate: %v", err)
	}
	wrong, _, _ := iam.IssueSecret(iam.AppSecretPrefix)
	if _, why, err := e.svc.AuthenticateClient(ctx, is.Credential.ClientID, wrong); !errors.Is(err, iam.ErrBadCredentials) || why != "wrong client secret" {
		t.Errorf("wrong secret: %v (%s)", err, why)
	}
	// Disabling the app stops its credentials at once.
	if _, err := e.svc.UpdateApp(ctx, e.dev, path, apps.AppInput{State: apps.StateDisabled}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.AuthenticateClient(ctx, is.Credential.ClientID, is.Secret); !errors.Is(err, iam.ErrBadCredentials) {
		t.Errorf("disabled app's credential: %v", err)
	}
	for _, ev := range e.audit(t, "appCredential.create") {
		if strings.Contains(ev.Detail+ev.Object, sec) {
			t.Errorf("the secret reached the audit: %+v", ev)
		}
	}
}

func TestAppTokens(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	path := e.app(t, nil)
	r, is, err := e.svc.CreateCredential(ctx, e.dev, path, apps.CredentialInput{})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.svc.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: is.Credential.ClientID, ClientSecret: is.Secret})
	if err != nil || tok.AccessToken == "" || tok.Scope != apps.AppScope || tok.ExpiresIn != 3600 {
		t.Fatalf("token = %+v, %v", tok, err)
	}
	au, claims, err := e.svc.AuthenticateToken(ctx, tok.AccessToken)
	if err != nil || claims.Subject != r.App.ID || claims.ConsumerOrgID != r.ConsumerOrg.ID || claims.CatalogID != r.Catalog.ID || au.App.Name != "shop" {
		t.Fatalf("token claims = %+v, %v", claims, err)
	}
	wrong, _, _ := iam.IssueSecret(iam.AppSecretPrefix)
	if _, err := e.svc.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: is.Credential.ClientID, ClientSecret: wrong}); !errors.Is(err, iam.ErrBadCredentials) {
		t.Errorf("grant with a wrong secret: %v", err)
	}
	// It grants nothing on the management API, whatever client id is sent.
	for _, id := range []string{is.Credential.ClientID, ""} {
		if _, err := e.iam.Authenticate(ctx, tok.AccessToken, id); !errors.Is(err, iam.ErrInvalidToken) {
			t.Errorf("management API accepted an app token (client id %q): %v", id, err)
		}
	}
	// Deleting the credential ends its tokens.
	if err := e.svc.DeleteCredential(ctx, e.dev, path, is.Credential.ID); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.AuthenticateToken(ctx, tok.AccessToken); !errors.Is(err, iam.ErrInvalidToken) {
		t.Errorf("token of a deleted credential: %v", err)
	}
	if _, err := e.svc.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: is.Credential.ClientID, ClientSecret: is.Secret}); !errors.Is(err, iam.ErrBadCredentials) {
		t.Errorf("grant for a deleted credential: %v", err)
	}
	if len(e.audit(t, "token.refuse")) != 1 || len(e.audit(t, "token.issue")) != 1 {
		t.Errorf("token audit: %d refused, %d issued", len(e.audit(t, "token.refuse")), len(e.audit(t, "token.issue")))
	}
}

// A leased credential's tokens end with the lease, so a gateway that checks
// only the signature and exp never accepts one past it.
func TestLeaseTokensEndWithTheLease(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	path := e.app(t, &apps.CredentialPolicy{DefaultTTL: 10 * time.Minute, MaxTTL: 2 * time.Hour})
	_, is, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.svc.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: is.Credential.ClientID, ClientSecret: is.Secret})
	if err != nil || tok.ExpiresIn != 600 {
		t.Fatalf("token of a 10-minute lease = %+v, %v; want expires_in 600", tok, err)
	}
	e.clock.Advance(4 * time.Minute)
	tok, err = e.svc.ClientCredentialsGrant(ctx, iam.TokenRequest{ClientID: is.Credential.ClientID, ClientSecret: is.Secret})
	if err != nil || tok.ExpiresIn != 360 {
		t.Fatalf("token 4 minutes into a 10-minute lease = %+v, %v; want expires_in 360", tok, err)
	}
	e.clock.Advance(6 * time.Minute)
	if _, err := e.iam.Tokens.Verify(ctx, tok.AccessToken); err == nil {
		t.Fatal("a lease's token verified after the lease ended")
	}
}

func TestLeases(t *testing.T) {
	e := newEnv(t, "sqlite")
	ctx := context.Background()
	path := e.app(t, &apps.CredentialPolicy{DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour})
	if _, _, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 3*time.Hour); kind(err) != iam.KindInvalid ||
		!strings.Contains(err.Error(), "maxTtl") {
		t.Errorf("ttl above maxTtl: %v", err)
	}
	_, l, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 0)
	if err != nil || !l.Credential.ExpiresAt.Equal(epoch.Add(time.Hour)) || !l.Credential.MaxExpiresAt.Equal(epoch.Add(2*time.Hour)) {
		t.Fatalf("lease with the default ttl = %+v, %v", l.Credential, err)
	}
	e.clock.Advance(30 * time.Minute)
	if _, _, err := e.svc.RenewLease(ctx, e.dev, path, l.Credential.ID, 3*time.Hour); kind(err) != iam.KindInvalid {
		t.Errorf("increment above maxTtl: %v", err)
	}
	_, rn, err := e.svc.RenewLease(ctx, e.dev, path, l.Credential.ID, time.Hour)
	if err != nil || rn.Capped || !rn.Credential.ExpiresAt.Equal(epoch.Add(90*time.Minute)) {
		t.Fatalf("renew within the cap = %+v, %v", rn, err)
	}
	e.clock.Advance(50 * time.Minute) // t = 1h20: 40 min left before the cap
	_, rn, err = e.svc.RenewLease(ctx, e.dev, path, l.Credential.Name, time.Hour)
	if err != nil || !rn.Capped || !rn.Credential.ExpiresAt.Equal(epoch.Add(2*time.Hour)) {
		t.Fatalf("renew past the cap = %+v, %v; want capped at creation + maxTtl", rn, err)
	}
	if _, _, err := e.svc.RenewLease(ctx, e.dev, path, l.Credential.ID, time.Minute); kind(err) != iam.KindInvalid {
		t.Errorf("renewing a lease at its cap: %v", err)
	}
	// Expired: never authenticates, although no sweeper runs here.
	e.clock.Advance(40*time.Minute - time.Millisecond)
	if _, _, err := e.svc.AuthenticateClient(ctx, l.Credential.ClientID, l.Secret); err != nil {
		t.Errorf("a millisecond before expiry: %v", err)
	}
	e.clock.Advance(time.Millisecond)
	if _, why, err := e.svc.AuthenticateClient(ctx, l.Credential.ClientID, l.Secret); !errors.Is(err, iam.ErrBadCredentials) || !strings.Contains(why, "expired") {
		t.Errorf("at expiry: %v (%s)", err, why)
	}
	if ls, _ := e.svc.ListLeases(ctx, e.view, path, iam.ListRequest{}); len(ls.Items) != 0 {
		t.Errorf("an expired lease is still listed")
	}
	if _, _, err := e.svc.RenewLease(ctx, e.dev, path, l.Credential.ID, time.Minute); kind(err) != iam.KindNotFound {
		t.Errorf("renewing an expired lease: %v", err)
	}
	// Revoke one, revoke all; permanent credentials stay.
	if _, _, err := e.svc.CreateCredential(ctx, e.dev, path, apps.CredentialInput{Input: apps.Input{Name: "permanent"}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 3; i++ {
		_, l, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, l.Credential.ID)
	}
	if err := e.svc.RevokeLease(ctx, e.dev, path, "permanent"); kind(err) != iam.KindNotFound {
		t.Errorf("revoking a permanent credential as a lease: %v", err)
	}
	if err := e.svc.RevokeLease(ctx, e.dev, path, ids[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := e.svc.RevokeLeases(ctx, e.dev, path); err != nil || n != 3 { // two live, one expired but unswept
		t.Errorf("revoke all = %d, %v", n, err)
	}
	if cs, _ := e.svc.ListCredentials(ctx, e.view, path, iam.ListRequest{}); len(cs.Items) != 1 || cs.Items[0].Name != "permanent" {
		t.Errorf("after revoke all: %+v", cs)
	}
	for _, action := range []string{"lease.create", "lease.renew", "lease.revoke", "lease.revokeAll"} {
		if len(e.audit(t, action)) == 0 {
			t.Errorf("no %s audit record", action)
		}
	}
}

func TestSweeperDeletesAtExpiryAndAfterRestart(t *testing.T) {
	for _, k := range storetest.Kinds() {
		t.Run(k, func(t *testing.T) {
			e := newEnv(t, k)
			ctx := context.Background()
			path := e.app(t, nil)
			start := func() context.CancelFunc {
				sctx, cancel := context.WithCancel(ctx)
				w := &apps.Sweeper{Apps: e.svc, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), After: e.clock.After, MaxWait: time.Hour}
				done := make(chan struct{})
				go func() { defer close(done); w.Run(sctx) }()
				return func() { cancel(); <-done }
			}
			stop := start()
			_, l1, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			// The sweeper sleeps until exactly the expiry, woken by the create.
			e.clock.waitForTimer(t, epoch.Add(10*time.Second))
			_, l2, err := e.svc.CreateLease(ctx, e.dev, path, apps.CredentialInput{}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			e.clock.waitForTimer(t, epoch.Add(5*time.Second))
			e.clock.Advance(5 * time.Second)
			e.waitGone(t, l2.Credential.ClientID)
			if _, err := e.st.AppCredentialByClientID(ctx, l1.Credential.ClientID); err != nil {
				t.Fatalf("the later lease went early: %v", err)
			}
			e.clock.waitForTimer(t, epoch.Add(10*time.Second))
			// A restart while a lease expires: the new sweeper deletes it at once.
			stop()
			e.clock.Advance(time.Minute)
			stop = start()
			defer stop()
			e.waitGone(t, l1.Credential.ClientID)
			if n := len(e.audit(t, "lease.expire")); n != 2 {
				t.Errorf("%d lease.expire audit records, want 2", n)
			}
			expired := 0
			for _, ev := range e.eventTypes() {
				if ev == "credential.deleted:expired" {
					expired++
				}
			}
			if expired != 2 {
				t.Errorf("change feed: %v", e.eventTypes())
			}
		})
	}
}

// waitGone waits until the sweeper has deleted a credential, audited it
// and told the change feed (which it does last).
func (e *env) waitGone(t *testing.T, clientID string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second) // a hang guard, not a timing assertion
	for {
		e.mu.Lock()
		for _, ev := range e.events {
			if ev.Type == apps.EventCredentialDeleted && ev.Reason == "expired" && ev.Credential.ClientID == clientID {
				e.mu.Unlock()
				if _, err := e.st.AppCredentialByClientID(context.Background(), clientID); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("lease %s reported expired but still stored (%v)", clientID, err)
				}
				return
			}
		}
		e.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("lease %s was never swept", clientID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
