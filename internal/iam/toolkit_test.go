package iam

import (
	"context"
	"testing"

	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// The toolkit client belongs to every instance, so a password grant with
// it must say which instance it means: the realm names it
// (provider/<instance id or name>), or the user name is in one instance
// only. A name in several instances is refused as ambiguous (400), never
// answered with whichever instance came first.
func TestToolkitPasswordGrantNamesItsInstance(t *testing.T) {
	ctx := context.Background()
	svc, _, first := newTestService(t)
	second, err := svc.CreateInstance(ctx, "second")
	if err != nil {
		t.Fatal(err)
	}
	// carol is a user of the second instance only.
	admin2 := Principal{InstanceID: second.InstanceID, SubjectKind: store.KindUser, SubjectName: "admin", Role: RoleAdmin}
	if _, _, err := svc.PutIdentity(ctx, admin2, IdentityInput{Kind: store.KindUser, Name: "carol", Role: RoleViewer,
		Password: secret.New("carol-long-password")}, true); err != nil {
		t.Fatal(err)
	}
	grant := func(user, password, realm string) (PlatformToken, error) {
		return svc.PlatformExchange(ctx, PlatformRequest{GrantType: "password", ClientID: ToolkitClientID, ClientSecret: secret.New(ToolkitClientSecret),
			Username: user, Password: secret.New(password), Realm: realm})
	}
	instanceOf := func(tok PlatformToken) string {
		t.Helper()
		c, err := svc.Tokens.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		return c.InstanceID
	}

	if _, err := grant("admin", first.Password, "provider/default-idp-2"); KindOf(err) != KindInvalid {
		t.Fatalf("admin, in both instances, with a realm naming neither: %v, want invalid (ambiguous)", err)
	}
	for _, c := range []struct{ realm, password, want string }{
		{"provider/" + first.InstanceID, first.Password, first.InstanceID},
		{"provider/default", first.Password, first.InstanceID},
		{"provider/second", second.Password, second.InstanceID},
		{"admin/" + second.InstanceID, second.Password, second.InstanceID},
	} {
		tok, err := grant("admin", c.password, c.realm)
		if err != nil {
			t.Fatalf("admin with realm %s: %v", c.realm, err)
		}
		if got := instanceOf(tok); got != c.want {
			t.Errorf("admin with realm %s got a token of instance %s, want %s", c.realm, got, c.want)
		}
	}
	if _, err := grant("admin", first.Password, "provider/second"); err != ErrBadCredentials {
		t.Errorf("the first admin's password in the second instance: %v, want bad credentials", err)
	}
	if _, err := grant("carol", "carol-long-password", "provider/default"); err != ErrBadCredentials {
		t.Errorf("carol in the instance that does not have her: %v, want bad credentials", err)
	}
	tok, err := grant("carol", "carol-long-password", "provider/default-idp-2")
	if err != nil || instanceOf(tok) != second.InstanceID {
		t.Fatalf("carol, in one instance only, with the default realm: %v", err)
	}
	if _, err := grant("nobody", "whatever-password", ""); err != ErrBadCredentials {
		t.Errorf("an unknown user: %v, want bad credentials", err)
	}
}
