package ibmiam_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/IBM/go-sdk-core/v5/core"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestIBMGoSDK points IBM's own Go SDK core at a real Sluice server: its
// IamAuthenticator, written by IBM against IBM Cloud IAM, gets a token for
// an API key, calls /api/v1/whoami with it (sending the bearer token alone,
// as IBM's SDKs do), fetches another, and refreshes with a refresh token,
// which then cannot be used again. Nothing here is a stand-in: the SDK
// builds the requests and parses the answers.
func TestIBMGoSDK(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c := srv.Creds

	auth, err := core.NewIamAuthenticatorBuilder().SetApiKey(c.APIKey).SetURL(srv.URL).Build()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := core.NewBaseService(&core.ServiceOptions{URL: srv.URL, Authenticator: auth})
	if err != nil {
		t.Fatal(err)
	}
	who := whoami(t, svc, srv.URL)
	if who["name"] != "admin" || who["role"] != "admin" || who["clientId"] != "" || who["apiKeyId"] == "" {
		t.Errorf("whoami through the SDK = %v; want admin, from the API key, without a client", who)
	}

	// A fresh exchange: a new token, expiration absolute and consistent.
	first, err := auth.GetToken()
	if err != nil {
		t.Fatal(err)
	}
	again, err := auth.RequestToken()
	if err != nil {
		t.Fatal(err)
	}
	if again.AccessToken == first || again.TokenType != "Bearer" || again.ExpiresIn != 3600 || again.Expiration < again.ExpiresIn ||
		!strings.HasPrefix(again.RefreshToken, "slrf_") {
		t.Errorf("second exchange = %+v", again)
	}

	// Refresh-token mode, with client authentication as the SDK requires
	// of it: the refresh token must come from an exchange by that client.
	withClient, err := core.NewIamAuthenticatorBuilder().SetApiKey(c.APIKey).SetClientIDSecret(c.ClientID, c.ClientSecret).SetURL(srv.URL).Build()
	if err != nil {
		t.Fatal(err)
	}
	issued, err := withClient.RequestToken()
	if err != nil {
		t.Fatal(err)
	}
	refresher, err := core.NewIamAuthenticatorBuilder().SetRefreshToken(issued.RefreshToken).SetClientIDSecret(c.ClientID, c.ClientSecret).SetURL(srv.URL).Build()
	if err != nil {
		t.Fatal(err)
	}
	rsvc, err := core.NewBaseService(&core.ServiceOptions{URL: srv.URL, Authenticator: refresher})
	if err != nil {
		t.Fatal(err)
	}
	if who := whoami(t, rsvc, srv.URL); who["name"] != "admin" || who["clientId"] != c.ClientID {
		t.Errorf("whoami with a refreshed token = %v", who)
	}
	if refresher.RefreshToken == issued.RefreshToken || !strings.HasPrefix(refresher.RefreshToken, "slrf_") {
		t.Error("the SDK did not pick up a new refresh token from the refresh")
	}

	// The refresh token it used is spent.
	reuse, err := core.NewIamAuthenticatorBuilder().SetRefreshToken(issued.RefreshToken).SetClientIDSecret(c.ClientID, c.ClientSecret).SetURL(srv.URL).Build()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reuse.GetToken(); err == nil || !strings.Contains(err.Error(), "refresh token is not valid") {
		t.Errorf("reusing a refresh token: %v", err)
	}
	bad, _ := core.NewIamAuthenticatorBuilder().SetApiKey("slk_000000000000000000000000000000000000").SetURL(srv.URL).Build()
	if _, err := bad.GetToken(); err == nil || !strings.Contains(err.Error(), "API key could not be found") {
		t.Errorf("an unknown API key: %v", err)
	}
}

func whoami(t *testing.T, svc *core.BaseService, url string) map[string]any {
	t.Helper()
	b := core.NewRequestBuilder(core.GET)
	if _, err := b.ResolveRequestURL(url, "/api/v1/whoami", nil); err != nil {
		t.Fatal(err)
	}
	b.AddHeader("Accept", "application/json")
	req, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var who map[string]any
	resp, err := svc.Request(req, &who)
	if err != nil {
		t.Fatalf("whoami through the SDK: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("whoami: %d", resp.StatusCode)
	}
	return who
}
