package conformance

import (
	"archive/zip"
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/server"
	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// canary is a secret value the test writes through the API. It may appear
// only in the answer of origin (the one create or token answer that hands
// it out), or nowhere when origin is nil.
type canary struct {
	what   string
	value  string
	origin *exchange
	// known names a reported bug that leaks this value; the scan then logs
	// the leak instead of failing, until the bug is fixed.
	known string
}

type canaries struct {
	t    *testing.T
	list []*canary
}

func (cs *canaries) add(what, value string, origin *exchange) string {
	cs.t.Helper()
	if value == "" {
		cs.t.Fatalf("canary %s is empty", what)
	}
	if origin != nil && !strings.Contains(string(origin.body), value) {
		cs.t.Fatalf("canary %s does not appear in the answer that should hand it out (%s)", what, origin.label)
	}
	cs.list = append(cs.list, &canary{what: what, value: value, origin: origin})
	return value
}

// needles are what a scan looks for: the whole value, and its tail, so a
// value cut short in a log line is found too. (A key's listed hint is its
// prefix and next 4 characters, which the tail never overlaps.)
func (c *canary) needles() []string {
	n := []string{c.value}
	if len(c.value) >= 28 {
		n = append(n, c.value[len(c.value)-16:])
	}
	return n
}

// scan reports every canary found in text, except in its own origin.
func (cs *canaries) scan(where string, text string, ex *exchange) {
	cs.t.Helper()
	for _, c := range cs.list {
		if ex != nil && ex == c.origin {
			continue
		}
		for _, n := range c.needles() {
			if !strings.Contains(text, n) {
				continue
			}
			if c.known != "" {
				cs.t.Logf("KNOWN LEAK, %s: %s (%q) appears in %s", c.known, c.what, n, where)
			} else {
				cs.t.Errorf("%s (%q) appears in %s", c.what, n, where)
			}
			break
		}
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// wellFormed builds a value with Sluice's secret format (prefix, 30
// base62 characters, CRC32 checksum in 6 base62 digits) so the server gets
// past its format check and looks it up; see internal/iam/credentials.go.
func wellFormed(prefix string) string {
	const alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	body := prefix + string(b)
	c := uint64(crc32.ChecksumIEEE([]byte(body)))
	sum := make([]byte, 6)
	for i := 5; i >= 0; i-- {
		sum[i] = alphabet[c%62]
		c /= 62
	}
	return body + string(sum)
}

// TestCanarySecretsStayPut writes known secret values through every
// identity and token endpoint — passwords, API keys and client secrets
// (created ones and made-up ones sent to the token endpoints), access
// tokens, bad bearer tokens, configuration data (valid and invalid) — then
// scans every answer, the audit, the server's logs and the files of its
// data dir (where the store keeps hashes and sealed data only, and where
// this test has the audit export written, rotated every 4 KiB), and proves
// each value appears only in the one answer that hands it out.
func TestCanarySecretsStayPut(t *testing.T) {
	dataDir := t.TempDir()
	export := filepath.Join(dataDir, "audit-export", "audit.jsonl")
	srv := servertest.Start(t, servertest.Options{DataDir: dataDir, Args: []string{"--audit-export", "file:" + export,
		"--audit-export-max-bytes", "4096", "--audit-export-keep", "1000", "--audit-retention", "48h"}})
	h := newHarness(t, srv)
	cs := &canaries{t: t}
	c := srv.Creds
	run := randomHex(6)
	mk := func(kind string) string { return "CANARY" + kind + run + randomHex(8) }

	// The first start's secrets belong on stdout and in
	// initial-credentials.json only.
	cs.add("initial API key", c.APIKey, nil)
	cs.add("initial client secret", c.ClientSecret, nil)
	cs.add("initial admin password", c.Password, nil)

	tokenHeaders := func(id, secret, instance string) map[string]string {
		return map[string]string{"X-IBM-Client-Id": id, "X-IBM-Client-Secret": secret, "x-ibm-instance-id": instance}
	}
	token := func(ex *exchange) string {
		return decode[struct {
			AccessToken string `json:"access_token"`
		}](t, ex).AccessToken
	}
	exchangeKey := func(label, id, secret, key string, want int) *exchange {
		return h.do(call{label: label, method: "POST", path: "/api/v1/tokens", header: tokenHeaders(id, secret, c.InstanceID),
			body: map[string]string{"apiKey": key}, want: want})
	}
	login := exchangeKey("initial exchange", c.ClientID, c.ClientSecret, c.APIKey, 200)
	admin := &servertest.Client{ClientID: c.ClientID, Token: cs.add("admin access token", token(login), login)}

	// ---- passwords ----
	user := func(label, method, path string, body any, want int) *exchange {
		return h.do(call{label: label, method: method, path: path, as: admin, body: body, want: want})
	}
	spec := func(role, password string) map[string]any {
		return map[string]any{"role": role, "password": password}
	}
	user("user with a password", "POST", "/api/v1/users",
		map[string]any{"metadata": map[string]any{"name": "u1"}, "spec": spec("developer", cs.add("password on create", mk("pw"), nil))}, 201)
	user("password change", "PUT", "/api/v1/users/u1",
		map[string]any{"spec": spec("developer", cs.add("password on replace", mk("pw"), nil))}, 200)
	user("user created by PUT with a password", "PUT", "/api/v1/users/u2",
		map[string]any{"spec": spec("viewer", cs.add("password on PUT create", mk("pw"), nil))}, 201)
	user("too short a password", "POST", "/api/v1/users",
		map[string]any{"metadata": map[string]any{"name": "u3"}, "spec": spec("viewer", cs.add("short password", "CNRY"+randomHex(3), nil))}, 400)
	user("password with a bad role", "POST", "/api/v1/users",
		map[string]any{"metadata": map[string]any{"name": "u3"}, "spec": spec("overlord", cs.add("password with a bad role", mk("pw"), nil))}, 400)
	user("password for a service ID", "POST", "/api/v1/service-ids",
		map[string]any{"metadata": map[string]any{"name": "svc"}, "spec": spec("developer", cs.add("service ID password", mk("pw"), nil))}, 400)
	user("password next to an unknown field", "POST", "/api/v1/users",
		map[string]any{"metadata": map[string]any{"name": "u3"}, "spec": map[string]any{"role": "viewer", "password": cs.add("password next to an unknown field", mk("pw"), nil), "pin": 1234}}, 400)
	user("password of the wrong type", "POST", "/api/v1/users",
		fmt.Sprintf(`{"metadata":{"name":"u3"},"spec":{"role":"viewer","password":[%q]}}`, cs.add("password in an array", mk("pw"), nil)), 400)
	h.do(call{label: "password in broken JSON", method: "POST", path: "/api/v1/users", as: admin, contentType: "application/json",
		body: fmt.Sprintf(`{"metadata":{"name":"u3"},"spec":{"password":"%s"`, cs.add("password in broken JSON", mk("pw"), nil)), want: 400})
	h.do(call{label: "password as a bare value", method: "POST", path: "/api/v1/users", as: admin, contentType: "application/json",
		body: `{"spec":{"password":` + cs.add("password as bare JSON", mk("pw"), nil) + `}}`, want: 400})
	user("service ID", "POST", "/api/v1/service-ids",
		map[string]any{"metadata": map[string]any{"name": "svc"}, "spec": map[string]any{"role": "developer"}}, 201)

	// ---- API keys, created and made up ----
	created := func(label string, body any) *exchange {
		return h.do(call{label: label, method: "POST", path: "/api/v1/api-keys", as: admin, body: body, want: 201})
	}
	k1ex := created("admin's key", map[string]any{"metadata": map[string]any{"name": "k1"}})
	k1 := decode[object](t, k1ex)
	cs.add("created API key k1", k1.Key, k1ex)
	k2ex := created("u1's key", map[string]any{"metadata": map[string]any{"name": "k2"}, "spec": map[string]any{"owner": map[string]any{"kind": "user", "name": "u1"}}})
	k2 := decode[object](t, k2ex)
	cs.add("created API key k2", k2.Key, k2ex)
	k3ex := created("service ID key with expiry", map[string]any{"metadata": map[string]any{"name": "k3"},
		"spec": map[string]any{"owner": map[string]any{"kind": "serviceId", "name": "svc"}, "expiresAt": "2099-12-31T00:00:00Z"}})
	k3 := decode[object](t, k3ex)
	cs.add("created API key k3", k3.Key, k3ex)

	t1ex := exchangeKey("exchange k1", c.ClientID, c.ClientSecret, k1.Key, 200)
	t1 := &servertest.Client{ClientID: c.ClientID, Token: cs.add("token from k1", token(t1ex), t1ex)}
	t3ex := exchangeKey("exchange k3", c.ClientID, c.ClientSecret, k3.Key, 200)
	cs.add("token from k3", token(t3ex), t3ex)
	h.do(call{label: "whoami with k1's token", method: "GET", path: "/api/v1/whoami", as: t1, want: 200})
	exchangeKey("exchange a malformed made-up key", c.ClientID, c.ClientSecret, cs.add("malformed API key", "slk_"+mk("key"), nil), 401)
	exchangeKey("exchange a well-formed made-up key", c.ClientID, c.ClientSecret, cs.add("well-formed unknown API key", wellFormed("slk_"), nil), 401)
	exchangeKey("exchange a made-up client secret", c.ClientID, cs.add("malformed client secret", mk("cs"), nil), k1.Key, 401)
	exchangeKey("exchange a well-formed made-up client secret", c.ClientID, cs.add("well-formed unknown client secret", wellFormed("slcs_"), nil), k1.Key, 401)
	exchangeKey("exchange with an unknown client id and a real key", "0123456789abcdef0123456789abcdef", c.ClientSecret, k2.Key, 401)
	h.do(call{label: "exchange with the key next to an unknown field", method: "POST", path: "/api/v1/tokens", header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID),
		body: map[string]string{"apiKey": k1.Key, "secret": cs.add("unknown token field", mk("field"), nil)}, want: 400})
	h.do(call{label: "exchange with a key in broken JSON", method: "POST", path: "/api/v1/tokens", header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID),
		contentType: "application/json", body: `{"apiKey":"` + k2.Key, want: 400})
	h.do(call{label: "exchange with a key as a bare value", method: "POST", path: "/api/v1/tokens", header: tokenHeaders(c.ClientID, c.ClientSecret, c.InstanceID),
		contentType: "application/json", body: `{"apiKey":` + cs.add("bare API key", mk("key"), nil) + `}`, want: 400})
	h.do(call{label: "lock k1", method: "POST", path: "/api/v1/api-keys/" + k1.Metadata.ID + "/lock", as: admin, want: 200})
	exchangeKey("exchange locked k1", c.ClientID, c.ClientSecret, k1.Key, 401)
	h.do(call{label: "whoami with a token of locked k1", method: "GET", path: "/api/v1/whoami", as: t1, want: 401})
	h.do(call{label: "unlock k1", method: "POST", path: "/api/v1/api-keys/" + k1.Metadata.ID + "/unlock", as: admin, want: 200})
	h.do(call{label: "delete k2", method: "DELETE", path: "/api/v1/api-keys/" + k2.Metadata.ID, as: admin, want: 204})
	exchangeKey("exchange deleted k2", c.ClientID, c.ClientSecret, k2.Key, 401)
	h.do(call{label: "list keys", method: "GET", path: "/api/v1/api-keys", as: admin, want: 200})
	h.do(call{label: "read k1", method: "GET", path: "/api/v1/api-keys/" + k1.Metadata.ID, as: admin, want: 200})

	// ---- client secrets ----
	s1ex := h.do(call{label: "instance credential", method: "POST", path: "/api/v1/credentials", as: admin, want: 201,
		body: map[string]any{"metadata": map[string]any{"name": "s1"}}})
	s1 := decode[object](t, s1ex)
	cs.add("created client secret s1", s1.ClientSecret, s1ex)
	s2ex := h.do(call{label: "application credential", method: "PUT", path: "/api/v1/credentials/s2", as: admin, want: 201,
		body: map[string]any{"spec": map[string]any{"owner": map[string]any{"kind": "serviceId", "name": "svc"}}}})
	s2 := decode[object](t, s2ex)
	cs.add("created client secret s2", s2.ClientSecret, s2ex)
	h.do(call{label: "credential update", method: "PUT", path: "/api/v1/credentials/s1", as: admin, want: 200,
		body: map[string]any{"spec": map[string]any{"description": "updated"}}})
	t2ex := exchangeKey("exchange with s1", s1.ClientID, s1.ClientSecret, k1.Key, 200)
	cs.add("token from s1", token(t2ex), t2ex)
	h.do(call{label: "list credentials", method: "GET", path: "/api/v1/credentials", as: admin, want: 200})
	h.do(call{label: "read s1", method: "GET", path: "/api/v1/credentials/s1", as: admin, want: 200})

	// ---- configuration data ----
	config := func(label, name, typ, data string, want int) {
		enc := base64.StdEncoding.EncodeToString([]byte(data))
		cs.add("base64 data of "+label, enc, nil)
		h.do(call{label: label, method: "PUT", path: "/api/v1/configurations/" + name, as: admin, want: want,
			body: map[string]any{"spec": map[string]any{"type": typ, "data": enc}}})
	}
	config("setdbparms credentials", "db", "setdbparms", "jdbc::orders app "+cs.add("setdbparms password", mk("dbpw"), nil)+"\n", 201)
	config("barauth credentials", "fetch", "barauth",
		`{"authType":"BASIC_AUTH","credentials":{"username":"ci","password":"`+cs.add("barauth password", mk("bapw"), nil)+`"}}`, 201)
	config("accounts credentials", "accts", "accounts", "crm:\n  token: "+cs.add("accounts token", mk("acct"), nil)+"\n", 201)
	config("setdbparms line without a password", "bad1", "setdbparms", "jdbc::orders "+cs.add("setdbparms user in a bad line", mk("dbusr"), nil)+"\n", 400)
	config("serverconf that is not YAML", "bad2", "serverconf", "values: ["+cs.add("serverconf value in broken YAML", mk("yaml"), nil)+"\n", 400)
	config("serverconf with a wrong type", "bad3", "serverconf", "values: "+cs.add("serverconf scalar where a mapping belongs", mk("yaml"), nil)+"\n", 400)
	config("barauth that is not JSON", "bad4", "barauth", `{"authType":"BASIC_AUTH","credentials":{"password":"`+cs.add("barauth password in broken JSON", mk("bapw"), nil), 400)
	config("barauth of an unknown kind", "bad5", "barauth", `{"authType":"`+cs.add("barauth auth type", mk("auth"), nil)+`","credentials":{}}`, 400)
	// Every type is given every malformed shape, each with a canary where
	// a parser would quote it, so each type's every error path (and the
	// paths other types' data takes) is crossed.
	types := decode[struct {
		ConfigurationTypes []struct{ Name string }
	}](t, h.do(call{label: "configuration types", method: "GET", path: "/api/v1/configuration-types", as: admin, want: 200}))
	for i, shape := range malformedConfigData(func(what string) string { return cs.add("configuration data: "+what, mk("cfg"), nil) }) {
		for _, typ := range types.ConfigurationTypes {
			enc := base64.StdEncoding.EncodeToString([]byte(shape))
			h.do(call{label: "malformed " + typ.Name, method: "PUT", path: fmt.Sprintf("/api/v1/configurations/m%d", i), as: admin,
				body: map[string]any{"spec": map[string]any{"type": typ.Name, "data": enc}}})
		}
	}
	// A PUT that changes only the type re-validates the stored data as
	// the new type; it once answered `serverconf: log level "<the data>"`.
	config("accounts data that is not serverconf", "retype", "accounts", "log:\n  level: "+cs.add("accounts value read as serverconf", mk("acct"), nil)+"\n", 201)
	for _, typ := range types.ConfigurationTypes {
		h.do(call{label: "retype to " + typ.Name, method: "PUT", path: "/api/v1/configurations/retype", as: admin,
			body: map[string]any{"spec": map[string]any{"type": typ.Name}}})
	}
	h.do(call{label: "read a configuration", method: "GET", path: "/api/v1/configurations/db", as: admin, want: 200})
	h.do(call{label: "list configurations", method: "GET", path: "/api/v1/configurations", as: admin, want: 200})

	// ---- OAuth ----
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	basic := func(id, secret string) []string {
		cs.add("Basic credentials of "+id, base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret))), nil)
		return []string{id, secret}
	}
	oauth := func(label, path string, b []string, f url.Values, want int) *exchange {
		return h.do(call{label: label, method: "POST", path: path, basic: b, body: f, want: want})
	}
	t3 := oauth("client_credentials, basic", "/oauth/token", basic(s2.ClientID, s2.ClientSecret), form("grant_type", "client_credentials"), 200)
	cs.add("client_credentials token (basic)", token(t3), t3)
	t4 := oauth("client_credentials, post", "/oauth/token", nil, form("grant_type", "client_credentials", "client_id", s2.ClientID, "client_secret", s2.ClientSecret), 200)
	cs.add("client_credentials token (post)", token(t4), t4)
	t5 := oauth("api-key grant", "/oauth/token", nil, form("grant_type", iam.GrantTypeAPIKey, "client_id", s1.ClientID, "client_secret", s1.ClientSecret, "api_key", k1.Key), 200)
	cs.add("api-key grant token", token(t5), t5)
	oauth("api-key grant, made-up key", "/oauth/token", basic(s1.ClientID, s1.ClientSecret), form("grant_type", iam.GrantTypeAPIKey, "api_key", cs.add("OAuth made-up API key", wellFormed("slk_"), nil)), 400)
	oauth("client_credentials, made-up secret (basic)", "/oauth/token", basic(s2.ClientID, cs.add("OAuth made-up secret (basic)", wellFormed("slcs_"), nil)), form("grant_type", "client_credentials"), 401)
	oauth("client_credentials, made-up secret (post)", "/oauth/token", nil, form("grant_type", "client_credentials", "client_id", s2.ClientID, "client_secret", cs.add("OAuth made-up secret (post)", mk("cs"), nil)), 401)
	oauth("both client authentication methods", "/oauth/token", basic(s2.ClientID, s2.ClientSecret), form("grant_type", "client_credentials", "client_secret", cs.add("second client secret", mk("cs"), nil)), 401)
	oauth("unsupported grant with a password", "/oauth/token", basic(s2.ClientID, s2.ClientSecret), form("grant_type", "password", "username", "u1", "password", cs.add("OAuth password grant password", mk("pw"), nil)), 400)
	oauth("introspect", "/oauth/introspect", basic(s2.ClientID, s2.ClientSecret), form("token", token(t3)), 200)
	oauth("introspect a made-up token", "/oauth/introspect", basic(s2.ClientID, s2.ClientSecret), form("token", cs.add("introspected made-up token", mk("tok"), nil)), 200)
	oauth("introspect with a made-up secret", "/oauth/introspect", basic(s2.ClientID, cs.add("introspection made-up secret", mk("cs"), nil)), form("token", token(t4)), 401)
	oauth("revoke", "/oauth/revoke", basic(s2.ClientID, s2.ClientSecret), form("token", token(t3)), 200)
	oauth("revoke a made-up token", "/oauth/revoke", basic(s2.ClientID, s2.ClientSecret), form("token", cs.add("revoked made-up token", mk("tok"), nil)), 200)
	oauth("revoke with a made-up secret", "/oauth/revoke", nil, form("token", token(t4), "client_id", s2.ClientID, "client_secret", cs.add("revocation made-up secret", mk("cs"), nil)), 401)
	h.do(call{label: "JWKS", method: "GET", path: "/oauth/jwks", want: 200})
	h.do(call{label: "metadata", method: "GET", path: "/.well-known/oauth-authorization-server", want: 200})

	// ---- bad bearer tokens ----
	bearer := func(label, tok, clientID string) {
		h.do(call{label: label, method: "GET", path: "/api/v1/whoami", want: 401,
			header: map[string]string{"Authorization": "Bearer " + tok, "X-IBM-Client-Id": clientID}})
	}
	bearer("made-up bearer", cs.add("made-up bearer token", mk("bearer"), nil), c.ClientID)
	bearer("JWT-shaped made-up bearer", cs.add("JWT-shaped bearer token", "eyJhbGciOiJFZERTQSIsInR5cCI6ImF0K2p3dCJ9."+mk("payload")+".c2ln", nil), c.ClientID)
	bearer("API key as bearer", k1.Key, c.ClientID)
	bearer("client secret as bearer", s1.ClientSecret, s1.ClientID)
	bearer("token with a wrong client id", t1.Token, s1.ClientID)
	bearer("revoked token", token(t3), s2.ClientID)
	h.do(call{label: "delete s1", method: "DELETE", path: "/api/v1/credentials/s1", as: admin, want: 204})
	exchangeKey("exchange with deleted s1", s1.ClientID, s1.ClientSecret, k1.Key, 401)
	h.do(call{label: "list users", method: "GET", path: "/api/v1/users", as: admin, want: 200})
	h.do(call{label: "read u1", method: "GET", path: "/api/v1/users/u1", as: admin, want: 200})
	h.do(call{label: "list service IDs", method: "GET", path: "/api/v1/service-ids", as: admin, want: 200})
	h.do(call{label: "read svc", method: "GET", path: "/api/v1/service-ids/svc", as: admin, want: 200})
	h.do(call{label: "replace svc", method: "PUT", path: "/api/v1/service-ids/svc", as: admin, want: 200,
		body: map[string]any{"spec": map[string]any{"role": "viewer"}}})
	h.do(call{label: "delete u2", method: "DELETE", path: "/api/v1/users/u2", as: admin, want: 204})
	h.do(call{label: "whoami", method: "GET", path: "/api/v1/whoami", as: admin, want: 200})

	// ---- the audit saw it all, and holds none of it ----
	audit := h.do(call{label: "audit", method: "GET", path: "/api/v1/audit", as: admin, want: 200})
	events := decode[struct {
		AuditEvents []struct{ ID, Action, Outcome string }
		Metadata    struct{ RetentionSeconds int64 }
	}](t, audit)
	if events.Metadata.RetentionSeconds != 48*3600 {
		t.Errorf("the audit states a retention of %d s; want 172800 (--audit-retention 48h)", events.Metadata.RetentionSeconds)
	}
	// The export holds every event the audit lists (it follows the
	// commits, so wait for it), in files of at most 4 KiB.
	exported := waitForExport(t, export, events.AuditEvents)
	counts := map[string]int{}
	for _, e := range events.AuditEvents {
		counts[e.Action+"/"+e.Outcome]++
	}
	for _, need := range []string{"token.issue/success", "token.refuse/denied", "user.create/success", "user.update/success",
		"apiKey.create/success", "apiKey.lock/success", "apiKey.delete/success", "clientCredential.create/success"} {
		if counts[need] == 0 {
			t.Errorf("the audit has no %s event; it recorded %v", need, counts)
		}
	}

	// ---- scan ----
	for _, ex := range h.log {
		cs.scan("the answer to "+ex.label, string(ex.body)+"\n"+headerText(ex.header), ex)
	}
	cs.scan("the server's log (stderr)", srv.Stderr(), nil)
	stdout := srv.Stdout()
	for _, v := range []string{c.APIKey, c.ClientSecret, c.Password} {
		stdout = strings.ReplaceAll(stdout, v, "<first-start secret>")
	}
	cs.scan("the server's standard output", stdout, nil)
	// The store holds hashes, never values: scan every file of the data
	// dir except the one that is meant to hold the first start's secrets.
	err := filepath.WalkDir(srv.DataDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == server.InitialCredentialsFile {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		cs.scan("data dir file "+d.Name(), string(b), nil)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs.list) < 30 {
		t.Fatalf("only %d canaries were written", len(cs.list))
	}
	t.Logf("%d canaries, %d answers, %d audit events (%d files exported), %d bytes of log scanned", len(cs.list), len(h.log), len(events.AuditEvents), exported, len(srv.Stderr()))
}

// waitForExport waits until the export files (path and its rotated
// copies) hold a line for each event, and says how many files there are.
func waitForExport(t *testing.T, path string, events []struct{ ID, Action, Outcome string }) int {
	t.Helper()
	for tries := 0; ; tries++ {
		files, _ := filepath.Glob(path + "*")
		var all strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > 4096 {
				t.Fatalf("export file %s holds %d bytes; --audit-export-max-bytes is 4096", f, len(b))
			}
			all.Write(b)
		}
		missing := ""
		for _, e := range events {
			if !strings.Contains(all.String(), `"id":"`+e.ID+`"`) {
				missing = e.ID + " (" + e.Action + ")"
				break
			}
		}
		if missing == "" {
			if len(files) < 2 {
				t.Fatalf("the export was never rotated: %v", files)
			}
			return len(files)
		}
		if tries == 3000 {
			t.Fatalf("the audit export (%d files) lacks event %s", len(files), missing)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// malformedConfigData is configuration data of every shape the validators
// refuse, each holding a secret (from canary) where a parser would quote
// it: an unknown key, a value of the wrong type or an unknown choice, an
// anchor, a tag, broken syntax, a misplaced password, a duplicate
// resource, a certificate that does not parse, and zips whose files are
// broken the same ways.
func malformedConfigData(canary func(what string) string) []string {
	pem := func(typ, body string) string {
		return "-----BEGIN " + typ + "-----\n" + base64.StdEncoding.EncodeToString([]byte(body)) + "\n-----END " + typ + "-----\n"
	}
	zipped := func(name, data string) string {
		var buf bytes.Buffer
		zw := zip.NewWriter(&buf)
		w, _ := zw.Create(name)
		w.Write([]byte(data))
		zw.Close()
		return buf.String()
	}
	c := canary
	return []string{
		"log:\n  level: " + c("YAML log level") + "\n",
		"log:\n  format: " + c("YAML log format") + "\n",
		c("YAML unknown key") + ": 1\n",
		"http:\n  " + c("YAML unknown nested key") + ": 1\n",
		"http:\n  readTimeout: " + c("YAML duration") + "\n",
		"flows:\n  maxInFlight: " + c("YAML integer") + "\n",
		"a: *" + c("YAML anchor") + "\n",
		"log:\n  level: !" + c("YAML tag") + " x\n",
		"values: [" + c("YAML in a broken list") + "\n",
		"values: {a: '" + c("YAML in a broken quote") + "\n",
		c("YAML scalar document") + "\n",
		"values:\n  ? [" + c("YAML non-string key") + "]\n  : 1\n",
		`{"` + c("JSON unknown field") + `":1}`,
		`{"authType":"BASIC_AUTH","credentials":{"` + c("JSON unknown nested field") + `":"x"}}`,
		`{"authType":"` + c("JSON auth type") + `","credentials":{}}`,
		`{"authType":"BASIC_AUTH","credentials":{"username":1,"password":"` + c("JSON beside a wrong type") + `"}}`,
		`{"authType":"BASIC_AUTH","credentials":{"username":"u","password":"p","insecureSsl":"` + c("JSON insecureSsl") + `"}}`,
		`{"authType":"BASIC_AUTH","credentials":{"password":"` + c("JSON broken"),
		`{"authType":"BEARER_TOKEN","credentials":{"token":"t"}} ` + c("JSON trailing data"),
		"jdbc " + c("setdbparms short line") + "\n",
		"mqsisetdbparms -n res -u user " + c("setdbparms misplaced password") + "\n",
		"mqsisetdbparms -" + c("setdbparms unknown option") + " x -n res -u user -p pw\n",
		func() string { r := c("setdbparms duplicate resource"); return r + " u p\n" + r + " u p\n" }(),
		"[" + c("INI section") + "\n",
		pem("CERTIFICATE", c("certificate body")),
		pem(c("PEM block type"), "x"),
		zipped("p/db.yaml", "url: ["+c("policy in broken YAML")+"\n"),
		zipped("p/db.yaml", "? ["+c("policy non-string key")+"]\n: 1\n"),
		"PK\x03\x04" + c("not a zip"),
	}
}
