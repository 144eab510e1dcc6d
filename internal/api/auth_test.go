package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Every 401 of /api/v1 says what is wrong, so a caller knows whether to
// fix a header, get a new token, or ask an admin about their key.
func TestUnauthorizedSaysWhatIsWrong(t *testing.T) {
	e := newEnv(t, envOpts{})
	admin := e.admin()

	refused := func(why, want string, header http.Header) {
		t.Helper()
		req := mustReq("GET", e.url+"/api/v1/whoami", nil)
		for k, v := range header {
			req.Header[k] = v
		}
		r := e.do(req)
		var body struct {
			Error, Reason, Message string
			Code                   int
		}
		json.Unmarshal(r.body, &body)
		if r.code != 401 || body.Code != 401 || body.Error != "Internal error" || body.Reason != "Unauthorized" || !strings.Contains(body.Message, want) {
			t.Errorf("%s: %d %s; want 401 saying %q", why, r.code, r.body, want)
		}
		if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="sluice"`) {
			t.Errorf("%s: WWW-Authenticate %q", why, r.header.Get("WWW-Authenticate"))
		}
	}
	with := func(token, clientID string) http.Header {
		h := http.Header{}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		if clientID != "" {
			h.Set("X-IBM-Client-Id", clientID)
		}
		return h
	}

	refused("no Authorization", "the Authorization header is missing", with("", e.creds.ClientID))
	refused("Basic scheme", "the Authorization header is not of the Bearer scheme", http.Header{"Authorization": {"Basic YTpi"}, "X-Ibm-Client-Id": {e.creds.ClientID}})
	refused("Bearer without token", "has no token after Bearer", http.Header{"Authorization": {"Bearer  "}})
	refused("garbage token", "the token is not valid", with("not-a-jwt", e.creds.ClientID))
	// A real token with its last signature character changed.
	tampered := admin.token[:len(admin.token)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(admin.token, "AA")]
	refused("altered token", "the token is not valid", with(tampered, e.creds.ClientID))
	// The token names its client: the bearer token alone is enough (issue
	// 14); a header naming another client is still refused.
	if r := (caller{e, admin.token, ""}).call("GET", "/api/v1/whoami", nil); r.code != 200 {
		t.Errorf("bearer token alone: %d %s; want 200", r.code, r.body)
	}
	refused("another client id", "X-IBM-Client-Id is not the client id the token was issued to", with(admin.token, "cid-of-someone-else"))

	// Revoked (RFC 7009) by the client it was issued to.
	revoked := e.admin()
	if r := form(e, "/oauth/revoke", url.Values{"token": {revoked.token}}, e.creds.ClientID, e.creds.ClientSecret); r.code != 200 {
		t.Fatalf("revoke: %d %s", r.code, r.body)
	}
	refused("revoked token", "the token was revoked", with(revoked.token, e.creds.ClientID))

	// What the token came from: an API key locked, then deleted; its user
	// deleted; the client credential deleted.
	if r := admin.call("PUT", "/api/v1/users/dev", obj("dev", map[string]any{"role": "developer"})); r.code != 201 {
		t.Fatalf("create user: %d %s", r.code, r.body)
	}
	keyID, key := admin.createKey("k1", "user", "dev", nil)
	dev := e.login(e.creds.ClientID, e.creds.ClientSecret, key)
	admin.call("POST", "/api/v1/api-keys/"+keyID+"/lock", nil)
	refused("locked key", "the API key the token was issued for is locked", with(dev.token, dev.clientID))
	admin.call("POST", "/api/v1/api-keys/"+keyID+"/unlock", nil)
	// Unlocking does not bring back tokens minted before the lock; a new
	// exchange with the unlocked key works.
	refused("token from before a lock", "the token was minted before its API key was last locked", with(dev.token, dev.clientID))
	dev = e.login(e.creds.ClientID, e.creds.ClientSecret, key)
	if r := dev.call("GET", "/api/v1/whoami", nil); r.code != 200 {
		t.Fatalf("a new token after unlock: %d %s", r.code, r.body)
	}
	_, key2 := admin.createKey("k2", "user", "dev", nil)
	dev2 := e.login(e.creds.ClientID, e.creds.ClientSecret, key2)
	if r := admin.call("DELETE", "/api/v1/api-keys/"+keyID, nil); r.code != 204 {
		t.Fatalf("delete key: %d", r.code)
	}
	refused("deleted key", "the API key the token was issued for was deleted", with(dev.token, dev.clientID))
	if r := admin.call("DELETE", "/api/v1/users/dev", nil); r.code != 204 {
		t.Fatalf("delete user: %d %s", r.code, r.body)
	}
	refused("deleted user", "the user or service ID the token was issued to no longer exists", with(dev2.token, dev2.clientID))

	cr := admin.call("POST", "/api/v1/credentials", obj("second", nil))
	var cred struct{ ClientID, ClientSecret string }
	cr.json(t, &cred)
	viaSecond := e.login(cred.ClientID, cred.ClientSecret, e.creds.APIKey)
	admin.call("DELETE", "/api/v1/credentials/second", nil)
	refused("deleted credential", "the client credential the token was issued to no longer exists", with(viaSecond.token, viaSecond.clientID))

	// Expired: the message gives the token's own exp, read by the test clock.
	exp := time.Unix(int64(claimsOf(t, admin.token)["exp"].(float64)), 0).UTC().Format(time.RFC3339)
	e.clock.Add(12*time.Hour + time.Second)
	refused("expired token", "the token expired at "+exp+": get a new one from POST /api/v1/tokens", with(admin.token, e.creds.ClientID))
}
