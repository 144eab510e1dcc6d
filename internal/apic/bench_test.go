package apic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/apic"
	"github.com/sluice-dev/sluice/internal/apps"
	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// BenchmarkCredentialCreateDelete is one app-credential create + delete
// round trip over HTTP (API Connect's wire, as Infisical drives it, token
// excluded) through the real stack — authentication, the apps service,
// SQLite on disk, the audit, the remembered answer — next to a bare
// net/http handler that only issues a secret and keeps it in a map. Both
// run in this process, so the ratio of their ns/op is the price of what
// the stack adds.
//
//	go test ./internal/apic/ -run '^$' -bench CredentialCreateDelete -benchtime 3s
func BenchmarkCredentialCreateDelete(b *testing.B) {
	b.Run("bare", func(b *testing.B) {
		srv := httptest.NewServer(bareHandler())
		defer srv.Close()
		roundTrips(b, srv.URL+"/credentials", "")
	})
	b.Run("sluice", func(b *testing.B) {
		url, tok := sluiceStack(b)
		roundTrips(b, url, tok)
	})
}

func roundTrips(b *testing.B, url, tok string) {
	c := &http.Client{}
	do := func(method, u, body string) []byte {
		req, _ := http.NewRequest(method, u, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			b.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, out)
		}
		return out
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var cr struct {
			ID           string `json:"id"`
			ClientSecret string `json:"client_secret"`
		}
		if err := json.Unmarshal(do("POST", url, fmt.Sprintf(`{"title":"infisical-%d"}`, i)), &cr); err != nil || cr.ClientSecret == "" {
			b.Fatalf("create: %v", err)
		}
		do("DELETE", url+"/"+cr.ID, "")
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "roundtrips/s")
}

// bareHandler is the baseline: decode the body, issue a secret, keep its
// hash in memory, answer JSON; delete from the map.
func bareHandler() http.Handler {
	var mu sync.Mutex
	creds := map[string]string{}
	n := 0
	mux := http.NewServeMux()
	mux.HandleFunc("POST /credentials", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Title string `json:"title"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		v, hash, _ := iam.IssueSecret(iam.AppSecretPrefix)
		mu.Lock()
		n++
		id := fmt.Sprintf("c%d", n)
		creds[id] = hash
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(201)
		_ = json.NewEncoder(w).Encode(map[string]string{"id": id, "name": body.Title, "client_secret": v.Reveal()})
	})
	mux.HandleFunc("DELETE /credentials/{id}", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		delete(creds, r.PathValue("id"))
		mu.Unlock()
		w.WriteHeader(204)
	})
	return mux
}

// sluiceStack assembles the control plane's API Connect surface on a
// SQLite store on disk and returns a credentials URL and a token for it.
func sluiceStack(b *testing.B) (string, string) {
	ctx := context.Background()
	st, err := store.Open(ctx, "", b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	mk, _ := secret.NewMasterKey()
	kr, err := secret.OpenKeyring(ctx, st, mk)
	if err != nil {
		b.Fatal(err)
	}
	aud := iam.NewAuditor(st)
	b.Cleanup(aud.Close)
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	tokens := &iam.Tokens{Store: st, Keyring: kr, Issuer: base, Audience: "sluice", Lifetime: time.Hour}
	if err := tokens.Init(ctx); err != nil {
		b.Fatal(err)
	}
	is := &iam.Service{Store: st, Tokens: tokens, Audit: aud}
	creds, err := is.Bootstrap(ctx)
	if err != nil {
		b.Fatal(err)
	}
	svc := &apps.Service{Store: st, IAM: is}
	dev := iam.Principal{InstanceID: creds.InstanceID, SubjectKind: store.KindUser, SubjectName: "admin", Role: iam.RoleAdmin}
	if _, err := svc.CreateConsumerOrg(ctx, dev, "sandbox", apps.Input{Name: "acme"}); err != nil {
		b.Fatal(err)
	}
	if _, err := svc.CreateApp(ctx, dev, apps.Path{Catalog: "sandbox", ConsumerOrg: "acme"}, apps.AppInput{Input: apps.Input{Name: "shop"}}); err != nil {
		b.Fatal(err)
	}
	ad := &apic.Adapter{IAM: is, Apps: svc, Store: st, Keyring: kr, PublicURL: base, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	srv.Config.Handler = ad.Handler()
	srv.Start()
	b.Cleanup(srv.Close)
	tok, err := is.PlatformExchange(ctx, iam.PlatformRequest{GrantType: "api_key", ClientID: creds.ClientID,
		ClientSecret: secret.New(creds.ClientSecret), APIKey: secret.New(creds.APIKey)})
	if err != nil {
		b.Fatal(err)
	}
	return base + "/api/apps/" + creds.InstanceID + "/sandbox/acme/shop/credentials", tok.AccessToken
}
