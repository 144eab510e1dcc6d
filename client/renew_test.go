package client

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// TestRefusedTokenHeals plants a token the server refuses (as a revoked or
// foreign one would be) and checks that one call renews it and succeeds,
// and that the client does not loop when renewal cannot help.
func TestRefusedTokenHeals(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	c, err := New(srv.URL, Options{Credentials: Credentials{InstanceID: srv.Creds.InstanceID, ClientID: srv.Creds.ClientID,
		ClientSecret: NewSecret(srv.Creds.ClientSecret), APIKey: NewSecret(srv.Creds.APIKey)}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good, err := c.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Same shape, broken signature: the server answers 401 invalid_token.
	c.mu.Lock()
	c.tok.AccessToken = NewSecret(good.AccessToken.Reveal()[:len(good.AccessToken.Reveal())-4] + "AAAA")
	c.mu.Unlock()
	w, err := c.WhoAmI(ctx)
	if err != nil {
		t.Fatalf("whoami with a refused token: %v", err)
	}
	if w.Name != "admin" {
		t.Errorf("whoami = %+v", w)
	}
	now, _ := c.Token(ctx)
	if now.AccessToken.Reveal() == good.AccessToken.Reveal() {
		t.Error("the refused token was not replaced")
	}

	// A client id the token was not minted for is refused whatever the
	// token: exactly one renewal, then the error.
	c.creds.ClientID = "someone-else"
	c.tok, c.renAt = good, good.Expiry
	if _, err := c.WhoAmI(ctx); !IsUnauthorized(err) {
		t.Fatalf("whoami with a mismatched client id: %v", err)
	}
}
