package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/client"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// The tests below run against one real `sluice serve`, started once: each
// subtest makes the identities and keys it needs under names of its own.
func TestAgainstServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	admin := newClient(t, srv.URL, srv.Creds.ClientID, srv.Creds.ClientSecret, srv.Creds.InstanceID, srv.Creds.APIKey)
	ctx := context.Background()

	t.Run("whoami", func(t *testing.T) {
		w, err := admin.WhoAmI(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if w.Name != "admin" || w.Kind != client.OwnerUser || w.Role != client.RoleAdmin || w.InstanceID != srv.Creds.InstanceID || w.ClientID != srv.Creds.ClientID {
			t.Errorf("whoami = %+v", w)
		}
		if w.APIKeyID == "" || w.ExpiresAt.IsZero() {
			t.Errorf("whoami lacks the key id or expiry: %+v", w)
		}
	})

	t.Run("token", func(t *testing.T) {
		tok, err := admin.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok.TokenType != "bearer" || tok.ExpiresIn != 43200 || strings.Count(tok.AccessToken.Reveal(), ".") != 2 {
			t.Errorf("token = %+v (%d dots)", tok, strings.Count(tok.AccessToken.Reveal(), "."))
		}
		again, err := admin.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if again.AccessToken.Reveal() != tok.AccessToken.Reveal() {
			t.Error("a fresh token was not reused")
		}
		fresh, err := admin.Exchange(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.AccessToken.Reveal() == tok.AccessToken.Reveal() {
			t.Error("Exchange returned the held token instead of a new one")
		}
	})

	t.Run("bad credentials", func(t *testing.T) {
		bad := newClient(t, srv.URL, srv.Creds.ClientID, srv.Creds.ClientSecret, srv.Creds.InstanceID, "slk_notarealkey")
		_, err := bad.WhoAmI(ctx)
		var ae *client.Error
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v (%T), want *client.Error", err, err)
		}
		if ae.StatusCode != 401 || ae.Code != 401 || ae.Reason != "Unauthorized" || ae.Message == "" || ae.RequestID == "" {
			t.Errorf("error = %+v", ae)
		}
		if !client.IsUnauthorized(err) || strings.Contains(err.Error(), "slk_notarealkey") {
			t.Errorf("error text %q", err)
		}
	})

	t.Run("api keys", func(t *testing.T) {
		created, err := admin.CreateAPIKey(ctx, client.APIKey{Metadata: client.Metadata{Name: "ci-key"},
			Spec: client.APIKeySpec{Description: "for CI", ExpiresAt: time.Now().Add(48 * time.Hour)}})
		if err != nil {
			t.Fatal(err)
		}
		id := created.Metadata.ID
		if !strings.HasPrefix(created.Key.Reveal(), "slk_") || created.Download.Key.Reveal() != created.Key.Reveal() || created.Download.Name != "ci-key" {
			t.Fatalf("created = %+v", created)
		}
		if created.Spec.Owner == nil || created.Spec.Owner.Name != "admin" || created.Spec.ExpiresAt.IsZero() {
			t.Errorf("spec = %+v", created.Spec)
		}
		keys, err := admin.ListAPIKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !hasKey(keys, id) {
			t.Errorf("list lacks %s: %+v", id, keys)
		}
		user := newClient(t, srv.URL, srv.Creds.ClientID, srv.Creds.ClientSecret, srv.Creds.InstanceID, created.Key.Reveal())
		if _, err := user.WhoAmI(ctx); err != nil {
			t.Fatalf("the new key does not work: %v", err)
		}
		k, err := admin.LockAPIKey(ctx, id)
		if err != nil || !k.Status.Locked {
			t.Fatalf("lock: %+v, %v", k.Status, err)
		}
		if _, err := user.WhoAmI(ctx); !client.IsUnauthorized(err) {
			t.Fatalf("a locked key still works: %v", err)
		}
		if k, err = admin.UnlockAPIKey(ctx, id); err != nil || k.Status.Locked {
			t.Fatalf("unlock: %+v, %v", k.Status, err)
		}
		if k, err = admin.GetAPIKey(ctx, id); err != nil || k.Metadata.Name != "ci-key" || k.Status.LastUsedAt.IsZero() {
			t.Fatalf("get: %+v, %v", k, err)
		}
		if err := admin.DeleteAPIKey(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.GetAPIKey(ctx, id); !client.IsNotFound(err) {
			t.Errorf("get after delete: %v", err)
		}
		if _, err := user.WhoAmI(ctx); !client.IsUnauthorized(err) {
			t.Errorf("a deleted key still works: %v", err)
		}
	})

	t.Run("renewal on 401", func(t *testing.T) {
		// The token of a locked key is refused; the client drops it and
		// tries a new exchange, which the lock refuses too. After the
		// unlock the next call must exchange again rather than give up.
		created, err := admin.CreateAPIKey(ctx, client.APIKey{Metadata: client.Metadata{Name: "renew-key"}})
		if err != nil {
			t.Fatal(err)
		}
		user := newClient(t, srv.URL, srv.Creds.ClientID, srv.Creds.ClientSecret, srv.Creds.InstanceID, created.Key.Reveal())
		first, err := user.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.LockAPIKey(ctx, created.Metadata.ID); err != nil {
			t.Fatal(err)
		}
		_, err = user.WhoAmI(ctx)
		if !client.IsUnauthorized(err) || !strings.Contains(err.Error(), "token exchange") {
			t.Fatalf("whoami with a locked key: %v, want a refused token exchange", err)
		}
		if _, err := admin.UnlockAPIKey(ctx, created.Metadata.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := user.WhoAmI(ctx); err != nil {
			t.Fatalf("whoami after unlock: %v", err)
		}
		second, err := user.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if second.AccessToken.Reveal() == first.AccessToken.Reveal() {
			t.Error("the refused token was kept")
		}
	})

	t.Run("renewal before expiry", func(t *testing.T) {
		clk := &fakeClock{t: time.Now()}
		c, err := client.New(srv.URL, client.Options{Now: clk.now, Credentials: client.Credentials{
			InstanceID: srv.Creds.InstanceID, ClientID: srv.Creds.ClientID,
			ClientSecret: client.NewSecret(srv.Creds.ClientSecret), APIKey: client.NewSecret(srv.Creds.APIKey)}})
		if err != nil {
			t.Fatal(err)
		}
		first, err := c.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// 12 h tokens are renewed 5 minutes before they expire.
		clk.advance(12*time.Hour - 6*time.Minute)
		if tok, _ := c.Token(ctx); tok.AccessToken.Reveal() != first.AccessToken.Reveal() {
			t.Error("renewed more than 5 minutes before expiry")
		}
		clk.advance(2 * time.Minute)
		tok, err := c.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if tok.AccessToken.Reveal() == first.AccessToken.Reveal() {
			t.Error("not renewed within 5 minutes of expiry")
		}
	})

	t.Run("concurrent callers share one exchange", func(t *testing.T) {
		c := newClient(t, srv.URL, srv.Creds.ClientID, srv.Creds.ClientSecret, srv.Creds.InstanceID, srv.Creds.APIKey)
		var wg sync.WaitGroup
		toks := make([]string, 8)
		errs := make([]error, 8)
		for i := range toks {
			wg.Go(func() {
				tok, err := c.Token(ctx)
				toks[i], errs[i] = tok.AccessToken.Reveal(), err
			})
		}
		wg.Wait()
		for i := range toks {
			if errs[i] != nil || toks[i] != toks[0] {
				t.Fatalf("caller %d: %v, same token %v", i, errs[i], toks[i] == toks[0])
			}
		}
	})

	t.Run("users", func(t *testing.T) {
		u, err := admin.CreateUser(ctx, client.Identity{Metadata: client.Metadata{Name: "alice"},
			Spec: client.IdentitySpec{Role: client.RoleDeveloper, Description: "dev", Password: client.NewSecret("correct horse battery")}})
		if err != nil {
			t.Fatal(err)
		}
		if u.Metadata.ID == "" || u.Spec.Role != "developer" || u.Status.PasswordSet == nil || !*u.Status.PasswordSet || u.Metadata.CreatedAt.IsZero() {
			t.Errorf("created = %+v", u)
		}
		_, err = admin.CreateUser(ctx, client.Identity{Metadata: client.Metadata{Name: "alice"}, Spec: client.IdentitySpec{Role: "viewer"}})
		if client.StatusCode(err) != http.StatusConflict {
			t.Errorf("second create: %v, want 409", err)
		}
		_, err = admin.CreateUser(ctx, client.Identity{Metadata: client.Metadata{Name: "bob"}, Spec: client.IdentitySpec{Role: "root"}})
		var ae *client.Error
		if !errors.As(err, &ae) || ae.StatusCode != 400 || !strings.Contains(ae.Message, "root") {
			t.Errorf("bad role: %v", err)
		}
		if u, err = admin.PutUser(ctx, client.Identity{Metadata: client.Metadata{Name: "alice"}, Spec: client.IdentitySpec{Role: client.RoleViewer}}); err != nil || u.Spec.Role != "viewer" || !*u.Status.PasswordSet {
			t.Errorf("put: %+v, %v", u, err)
		}
		users, err := admin.ListUsers(ctx)
		if err != nil || len(users) < 2 {
			t.Fatalf("list: %v, %v", users, err)
		}
		if got, err := admin.GetUser(ctx, "alice"); err != nil || got.Spec.Description != "" {
			t.Errorf("get: %+v, %v", got, err)
		}
		if err := admin.DeleteUser(ctx, "alice"); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.GetUser(ctx, "alice"); !client.IsNotFound(err) {
			t.Errorf("get after delete: %v", err)
		}
	})

	t.Run("service ids and credentials", func(t *testing.T) {
		sid, err := admin.CreateServiceID(ctx, client.Identity{Metadata: client.Metadata{Name: "deployer"}, Spec: client.IdentitySpec{Role: client.RoleDeveloper}})
		if err != nil {
			t.Fatal(err)
		}
		if sid.Status.PasswordSet != nil {
			t.Errorf("service ID reports a password: %+v", sid.Status)
		}
		key, err := admin.CreateAPIKey(ctx, client.APIKey{Metadata: client.Metadata{Name: "deploy"},
			Spec: client.APIKeySpec{Owner: &client.Owner{Kind: client.OwnerServiceID, Name: "deployer"}}})
		if err != nil {
			t.Fatal(err)
		}
		cred, err := admin.CreateCredential(ctx, client.Credential{Metadata: client.Metadata{Name: "pipeline"}, Spec: client.CredentialSpec{Description: "CI"}})
		if err != nil {
			t.Fatal(err)
		}
		if cred.ClientID == "" || cred.ClientID != cred.Status.ClientID || !strings.HasPrefix(cred.ClientSecret.Reveal(), "slcs_") {
			t.Fatalf("credential = %+v", cred)
		}
		svc := newClient(t, srv.URL, cred.ClientID, cred.ClientSecret.Reveal(), srv.Creds.InstanceID, key.Key.Reveal())
		w, err := svc.WhoAmI(ctx)
		if err != nil || w.Kind != client.OwnerServiceID || w.Name != "deployer" || w.Role != "developer" || w.ClientID != cred.ClientID {
			t.Fatalf("whoami as the service ID: %+v, %v", w, err)
		}
		if _, err := svc.ListUsers(ctx); client.StatusCode(err) != http.StatusForbidden {
			t.Errorf("a developer listed users: %v", err)
		}
		creds, err := admin.ListCredentials(ctx)
		if err != nil || len(creds) != 2 {
			t.Errorf("credentials: %+v, %v", creds, err)
		}
		if got, err := admin.GetCredential(ctx, "pipeline"); err != nil || got.Status.ClientID != cred.ClientID || got.Status.SecretHint == "" {
			t.Errorf("get credential: %+v, %v", got, err)
		}
		if sids, err := admin.ListServiceIDs(ctx); err != nil || len(sids) != 1 || sids[0].Metadata.Name != "deployer" {
			t.Errorf("service IDs: %+v, %v", sids, err)
		}
		if err := admin.DeleteCredential(ctx, "pipeline"); err != nil {
			t.Fatal(err)
		}
		if _, err := svc.WhoAmI(ctx); !client.IsUnauthorized(err) {
			t.Errorf("a deleted credential still works: %v", err)
		}
		if err := admin.DeleteServiceID(ctx, "deployer"); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.GetServiceID(ctx, "deployer"); !client.IsNotFound(err) {
			t.Errorf("get after delete: %v", err)
		}
	})

	t.Run("audit", func(t *testing.T) {
		since := time.Now().Add(-time.Hour)
		evs, err := admin.ListAudit(ctx, client.AuditFilter{Since: since, Actor: "user:admin", Limit: 1000})
		if err != nil {
			t.Fatal(err)
		}
		issued := 0
		for _, e := range evs {
			if e.Actor != "user:admin" || e.Time.Before(since) {
				t.Errorf("filtered out event in the answer: %+v", e)
			}
			if e.Action == "token.issue" {
				issued++
			}
		}
		if issued == 0 {
			t.Errorf("no token.issue event for user:admin in %d events", len(evs))
		}
		if evs, err := admin.ListAudit(ctx, client.AuditFilter{Limit: 1}); err != nil || len(evs) != 1 {
			t.Errorf("limit 1: %d events, %v", len(evs), err)
		}
	})

	t.Run("lists page transparently", func(t *testing.T) {
		// A client asking for pages of 2 follows metadata.continue to the
		// end: its lists are what one page of a big client holds.
		counting := &countingTransport{}
		small, err := client.New(srv.URL, client.Options{PageSize: 2, HTTPClient: &http.Client{Transport: counting},
			Credentials: client.Credentials{InstanceID: srv.Creds.InstanceID, ClientID: srv.Creds.ClientID,
				ClientSecret: client.NewSecret(srv.Creds.ClientSecret), APIKey: client.NewSecret(srv.Creds.APIKey)}})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			if _, err := admin.CreateServiceID(ctx, client.Identity{Metadata: client.Metadata{Name: fmt.Sprintf("paged-%d", i)}, Spec: client.IdentitySpec{Role: client.RoleViewer}}); err != nil {
				t.Fatal(err)
			}
		}
		names := func(ids []client.Identity) (out []string) {
			for _, id := range ids {
				out = append(out, id.Metadata.Name)
			}
			return out
		}
		whole, err := admin.ListServiceIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		paged, err := small.ListServiceIDs(ctx)
		if err != nil || fmt.Sprint(names(paged)) != fmt.Sprint(names(whole)) || len(whole) < 5 {
			t.Errorf("service IDs in pages of 2: %v, %v; in one page: %v", names(paged), err, names(whole))
		}
		if want := (len(whole) + 2) / 2; counting.continued("/api/v1/service-ids") < want-1 {
			t.Errorf("%d service IDs read with %d requests following a token, want %d", len(whole), counting.continued("/api/v1/service-ids"), want-1)
		}
		// The audit: every event, or the newest few, across pages.
		all, err := admin.ListAudit(ctx, client.AuditFilter{Actor: "user:admin"})
		if err != nil {
			t.Fatal(err)
		}
		newest, err := small.ListAudit(ctx, client.AuditFilter{Actor: "user:admin", Limit: 5})
		if err != nil || len(newest) != 5 {
			t.Fatalf("the newest 5 in pages of 2: %d, %v", len(newest), err)
		}
		for i := range newest {
			if newest[i].ID != all[i].ID {
				t.Errorf("event %d of the newest 5 is %s, the whole list has %s", i, newest[i].ID, all[i].ID)
			}
		}
		if counting.continued("/api/v1/audit") != 2 {
			t.Errorf("5 events in pages of 2 took %d requests following a token, want 2", counting.continued("/api/v1/audit"))
		}
	})
}

// countingTransport counts the requests of each path that followed a
// continue token.
type countingTransport struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Query().Get("continue") != "" {
		c.mu.Lock()
		if c.n == nil {
			c.n = map[string]int{}
		}
		c.n[r.URL.Path]++
		c.mu.Unlock()
	}
	return http.DefaultTransport.RoundTrip(r)
}

func (c *countingTransport) continued(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	for _, ep := range []string{"", "127.0.0.1:8080", "ftp://host", "http://", "http://h/?q=1", "::"} {
		if _, err := client.New(ep, client.Options{}); err == nil {
			t.Errorf("New(%q) accepted", ep)
		}
	}
	c, err := client.New("https://sluice.example.com/base/", client.Options{})
	if err != nil || c.Endpoint() != "https://sluice.example.com/base" {
		t.Errorf("New: %v, %v", c, err)
	}
}

// TestSecretsDoNotPrint renders objects that hold secrets every usual way
// and looks for the values.
func TestSecretsDoNotPrint(t *testing.T) {
	const canary = "slk_CANARY0123456789canary"
	created := client.APIKeyCreated{Key: client.NewSecret(canary), Download: client.APIKeyDownload{Name: "k", Key: client.NewSecret(canary)}}
	creds := client.Credentials{ClientID: "id", ClientSecret: client.NewSecret(canary), APIKey: client.NewSecret(canary)}
	tok := client.Token{AccessToken: client.NewSecret(canary)}
	var out bytes.Buffer
	for _, v := range []any{created, &created, creds, tok, client.NewSecret(canary)} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10.3s"} {
			fmt.Fprintf(&out, verb+"\n", v)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out.Write(b)
		slog.New(slog.NewJSONHandler(&out, nil)).Info("x", "v", v)
		slog.New(slog.NewTextHandler(&out, nil)).Info("x", "v", v)
	}
	if strings.Contains(out.String(), canary) || strings.Contains(out.String(), fmt.Sprintf("%x", canary)) {
		t.Errorf("a secret was printed:\n%s", out.String())
	}
	if !strings.Contains(out.String(), client.Redacted) {
		t.Error("no redaction printed")
	}
	doc, err := created.Download.RevealJSON()
	if err != nil || !strings.Contains(string(doc), canary) {
		t.Errorf("RevealJSON: %s, %v", doc, err)
	}
	var back client.Secret
	if err := json.Unmarshal([]byte(`"`+canary+`"`), &back); err != nil || back.Reveal() != canary {
		t.Errorf("unmarshal: %v", err)
	}
}

func newClient(t *testing.T, url, clientID, clientSecret, instanceID, apiKey string) *client.Client {
	t.Helper()
	c, err := client.New(url, client.Options{Credentials: client.Credentials{InstanceID: instanceID, ClientID: clientID,
		ClientSecret: client.NewSecret(clientSecret), APIKey: client.NewSecret(apiKey)}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func hasKey(keys []client.APIKey, id string) bool {
	for _, k := range keys {
		if k.Metadata.ID == id {
			return true
		}
	}
	return false
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
