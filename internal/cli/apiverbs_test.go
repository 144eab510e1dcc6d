package cli_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/sluice-dev/sluice/internal/server/servertest"
)

// sluiceCLI runs the built binary with a config file of the test's own and
// none of the caller's SLUICE_* variables.
type sluiceCLI struct {
	t      *testing.T
	config string
	env    []string
}

func newCLI(t *testing.T) *sluiceCLI {
	home := t.TempDir()
	env := []string{"HOME=" + home, "SLUICE_CONFIG=" + filepath.Join(home, "conf", "config.yaml")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") && !strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "XDG_CONFIG_HOME=") {
			env = append(env, kv)
		}
	}
	return &sluiceCLI{t: t, config: filepath.Join(home, "conf", "config.yaml"), env: env}
}

type result struct {
	code           int
	stdout, stderr string
}

// run runs sluice with args; stdin, when not empty, is its standard input.
func (c *sluiceCLI) run(stdin string, extraEnv []string, args ...string) result {
	c.t.Helper()
	cmd := exec.Command(servertest.Binary(c.t), args...)
	cmd.Env = append(append([]string{}, c.env...), extraEnv...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("sluice %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// ok runs sluice and fails the test unless it exits 0.
func (c *sluiceCLI) ok(args ...string) string {
	c.t.Helper()
	r := c.run("", nil, args...)
	if r.code != 0 {
		c.t.Fatalf("sluice %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// okJSON runs sluice with -o json and decodes its output.
func (c *sluiceCLI) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("sluice %s -o json: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// failsWith runs sluice and checks its exit code and that stderr is one
// line holding want.
func (c *sluiceCLI) failsWith(code int, want string, stdin string, env []string, args ...string) {
	c.t.Helper()
	r := c.run(stdin, env, args...)
	if r.code != code || !strings.Contains(r.stderr, want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		c.t.Errorf("sluice %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(args, " "), r.code, r.stderr, code, want)
	}
}

type apiKeyOut struct {
	Metadata struct {
		Name string `json:"name"`
		ID   string `json:"id"`
	} `json:"metadata"`
	Status struct {
		Locked bool `json:"locked"`
	} `json:"status"`
	Key      string `json:"key"`
	Download struct {
		Name string `json:"name"`
		Key  string `json:"key"`
	} `json:"download"`
}

func TestAPIVerbsAgainstServer(t *testing.T) {
	srv := servertest.Start(t, servertest.Options{})
	cli := newCLI(t)
	creds := filepath.Join(srv.DataDir, "initial-credentials.json")

	// Not logged in yet: a clear error, not a crash.
	cli.failsWith(1, "not logged in", "", nil, "api-keys", "list")

	out := cli.ok("login", "--from-file", creds)
	if !strings.Contains(out, "as user:admin (admin)") || !strings.Contains(out, cli.config) {
		t.Errorf("login said %q", out)
	}
	checkConfig(t, cli.config, srv.Creds.ClientSecret, srv.Creds.APIKey, srv.Creds.Password)

	// A second profile with a wrong key is refused and not saved.
	cli.failsWith(1, "the credentials are not valid", "", []string{"SLUICE_API_KEY=slk_wrong"},
		"login", "--endpoint", srv.URL, "--instance-id", srv.Creds.InstanceID, "--client-id", srv.Creds.ClientID,
		"--client-secret", srv.Creds.ClientSecret, "--profile", "broken")
	if b, _ := os.ReadFile(cli.config); strings.Contains(string(b), "broken") {
		t.Error("a refused login was saved")
	}

	t.Run("apiKey.json", func(t *testing.T) {
		dir := t.TempDir()
		file := filepath.Join(dir, "apiKey.json")
		var created apiKeyOut
		cli.okJSON(&created, "api-keys", "create", "ibm", "--description", "for IBM tools", "--file", file)
		fi, err := os.Stat(file)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("apiKey.json: %v, %v", fi, err)
		}
		var doc map[string]string
		if b, _ := os.ReadFile(file); json.Unmarshal(b, &doc) != nil || doc["apikey"] != created.Key || doc["name"] != "ibm" ||
			doc["description"] != "for IBM tools" || doc["createdAt"] == "" || len(doc) != 4 {
			t.Fatalf("apiKey.json holds %v", doc)
		}
		// Terraform writes Go field names; the login reads either.
		tf := filepath.Join(dir, "terraform.json")
		if err := os.WriteFile(tf, []byte("{\n\t\"Name\": \"ibm\",\n\t\"Apikey\": \""+created.Key+"\",\n\t\"Locked\": false\n}"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{file, tf} {
			out := cli.ok("login", "--endpoint", srv.URL, "--instance-id", srv.Creds.InstanceID, "--client-id", srv.Creds.ClientID,
				"--client-secret", srv.Creds.ClientSecret, "--api-key-file", f, "--profile", "ibm")
			if !strings.Contains(out, "as user:admin (admin)") {
				t.Errorf("login --api-key-file %s said %q", f, out)
			}
		}
		empty := filepath.Join(dir, "empty.json")
		_ = os.WriteFile(empty, []byte(`{"name":"x"}`), 0o600)
		cli.failsWith(1, "has no apikey field", "", nil, "login", "--endpoint", srv.URL, "--instance-id", srv.Creds.InstanceID,
			"--client-id", srv.Creds.ClientID, "--client-secret", srv.Creds.ClientSecret, "--api-key-file", empty, "--profile", "ibm2")
		// --file never overwrites a file either.
		cli.failsWith(0, "unable to save the key", "", nil, "api-keys", "create", "ibm2", "--file", file)
		cli.ok("api-keys", "delete", "ibm")
		cli.ok("api-keys", "delete", "ibm2")
	})

	t.Run("api keys", func(t *testing.T) {
		save := filepath.Join(t.TempDir(), "ci-key.json")
		var created apiKeyOut
		cli.okJSON(&created, "api-keys", "create", "ci", "--description", "for CI", "--expires", "720h", "--save", save)
		if !strings.HasPrefix(created.Key, "slk_") || created.Download.Key != created.Key || created.Metadata.ID == "" {
			t.Fatalf("create printed %+v", created)
		}
		fi, err := os.Stat(save)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("saved file: %v, %v", fi, err)
		}
		var doc map[string]string
		if b, _ := os.ReadFile(save); json.Unmarshal(b, &doc) != nil || doc["key"] != created.Key || doc["name"] != "ci" || doc["created"] == "" {
			t.Errorf("saved document %v", doc)
		}
		// --save never overwrites a file.
		cli.failsWith(0, "unable to save the key", "", nil, "api-keys", "create", "ci2", "--save", save)

		var list struct{ APIKeys []apiKeyOut }
		cli.okJSON(&list, "api-keys", "list")
		if len(list.APIKeys) != 3 {
			t.Errorf("list has %d keys, want 3 (initial, ci, ci2)", len(list.APIKeys))
		}
		table := cli.ok("api-keys", "list")
		if !strings.HasPrefix(table, "ID ") || !strings.Contains(table, created.Metadata.ID) || strings.Contains(table, created.Key) {
			t.Errorf("table:\n%s", table)
		}

		// The new key works for a token; locked, it does not.
		keyEnv := []string{"SLUICE_API_KEY=" + created.Key}
		if r := cli.run("", keyEnv, "token"); r.code != 0 || strings.Count(strings.TrimSpace(r.stdout), ".") != 2 {
			t.Fatalf("token with the new key: %+v", r)
		}
		var locked apiKeyOut
		cli.okJSON(&locked, "api-keys", "lock", "ci")
		if !locked.Status.Locked || locked.Metadata.ID != created.Metadata.ID {
			t.Errorf("lock printed %+v", locked)
		}
		cli.failsWith(1, "token exchange: the credentials are not valid (401 Unauthorized)", "", keyEnv, "token")
		var y map[string]any
		if err := yaml.Unmarshal([]byte(cli.ok("api-keys", "unlock", created.Metadata.ID, "-o", "yaml")), &y); err != nil {
			t.Fatal(err)
		}
		if st, _ := y["status"].(map[string]any); st["locked"] != false {
			t.Errorf("unlock printed %v", y)
		}
		var tok map[string]any
		if err := json.Unmarshal([]byte(cli.run("", keyEnv, "token", "-o", "json").stdout), &tok); err != nil || tok["token_type"] != "bearer" || tok["expires_in"] != 43200.0 {
			t.Errorf("token -o json: %v, %v", tok, err)
		}

		var del map[string]string
		cli.okJSON(&del, "api-keys", "delete", "ci")
		if del["deleted"] != created.Metadata.ID {
			t.Errorf("delete printed %v", del)
		}
		cli.failsWith(1, "not found (404 NotFound)", "", nil, "api-keys", "get", created.Metadata.ID)
		cli.failsWith(1, `no API key is named "ci"`, "", nil, "api-keys", "get", "ci")
		cli.failsWith(1, "the credentials are not valid", "", keyEnv, "token")
	})

	t.Run("users", func(t *testing.T) {
		r := cli.run("correct horse battery\n", nil, "users", "create", "alice", "--role", "developer", "--password-stdin", "-o", "json")
		var u struct {
			Metadata struct{ Name string }
			Spec     struct{ Role string }
			Status   struct{ PasswordSet bool }
		}
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &u) != nil || u.Metadata.Name != "alice" || u.Spec.Role != "developer" || !u.Status.PasswordSet {
			t.Fatalf("users create: %+v (%+v)", r, u)
		}
		cli.failsWith(2, "unknown flag: --password", "", nil, "users", "create", "bob", "--password", "correct horse battery")
		cli.failsWith(1, "give --password-stdin or --no-password", "", nil, "users", "create", "bob")
		cli.failsWith(1, "password is shorter than 12 characters (400 BadRequest)", "short\n", nil, "users", "create", "bob", "--password-stdin")
		cli.ok("users", "create", "carol", "--no-password")
		var list struct {
			Users []struct{ Metadata struct{ Name string } }
		}
		cli.okJSON(&list, "users", "list")
		if len(list.Users) != 3 {
			t.Errorf("users: %+v", list.Users)
		}
		if out := cli.ok("users", "get", "carol"); !strings.Contains(out, "carol") || !strings.Contains(out, "none") {
			t.Errorf("users get carol:\n%s", out)
		}
		cli.ok("users", "delete", "carol")
		cli.failsWith(1, "not found (404 NotFound)", "", nil, "users", "get", "carol")
	})

	t.Run("service ids and credentials", func(t *testing.T) {
		cli.ok("service-ids", "create", "deployer", "--role", "developer", "--description", "CD")
		var key apiKeyOut
		cli.okJSON(&key, "api-keys", "create", "deploy", "--owner", "serviceId:deployer")
		var cred struct {
			ClientID, ClientSecret string
			Metadata               struct{ Name string }
		}
		cli.okJSON(&cred, "credentials", "create", "pipeline", "--description", "CI")
		if cred.ClientID == "" || !strings.HasPrefix(cred.ClientSecret, "slcs_") {
			t.Fatalf("credentials create printed %+v", cred)
		}
		// A profile of the service ID, from the environment.
		cli.ok("login", "--profile", "svc", "--from-file", creds)
		svcEnv := []string{"SLUICE_PROFILE=svc", "SLUICE_CLIENT_ID=" + cred.ClientID, "SLUICE_CLIENT_SECRET=" + cred.ClientSecret, "SLUICE_API_KEY=" + key.Key}
		cli.failsWith(1, "(403 Forbidden)", "", svcEnv, "users", "list")
		if r := cli.run("", svcEnv, "token"); r.code != 0 {
			t.Fatalf("token of the service ID: %+v", r)
		}
		var creds struct {
			Credentials []struct{ Status struct{ ClientID string } }
		}
		cli.okJSON(&creds, "credentials", "list")
		if len(creds.Credentials) != 2 {
			t.Errorf("credentials: %+v", creds)
		}
		if out := cli.ok("credentials", "get", "pipeline", "-o", "yaml"); !strings.Contains(out, "clientId: "+cred.ClientID) || strings.Contains(out, cred.ClientSecret) {
			t.Errorf("credentials get:\n%s", out)
		}
		cli.ok("credentials", "delete", "pipeline")
		cli.failsWith(1, "the credentials are not valid", "", svcEnv, "token")
		var sids struct {
			ServiceIDs []struct{ Metadata struct{ Name string } } `json:"serviceIds"`
		}
		cli.okJSON(&sids, "service-ids", "list")
		if len(sids.ServiceIDs) != 1 || sids.ServiceIDs[0].Metadata.Name != "deployer" {
			t.Errorf("service IDs: %+v", sids)
		}
		cli.ok("service-ids", "delete", "deployer")
		cli.failsWith(1, "not found", "", nil, "service-ids", "get", "deployer")
	})

	t.Run("audit", func(t *testing.T) {
		var evs struct {
			AuditEvents []struct{ Action, Actor, Object string }
		}
		cli.okJSON(&evs, "audit", "--since", "1h", "--actor", "user:admin", "--limit", "10000")
		seen := map[string]bool{}
		for _, e := range evs.AuditEvents {
			if e.Actor != "user:admin" {
				t.Errorf("event of %s in a user:admin filter", e.Actor)
			}
			seen[e.Action] = true
		}
		for _, a := range []string{"token.issue", "apiKey.create", "apiKey.lock", "apiKey.unlock", "apiKey.delete", "user.create"} {
			if !seen[a] {
				t.Errorf("no %s event; saw %v", a, seen)
			}
		}
		cli.failsWith(2, "--since", "", nil, "audit", "--since", "yesterday")
	})

	t.Run("bad usage", func(t *testing.T) {
		cli.failsWith(2, `-o "xml" is not one of table, json, yaml`, "", nil, "api-keys", "list", "-o", "xml")
		cli.failsWith(2, "owner kind", "", nil, "api-keys", "create", "x", "--owner", "group:x")
		cli.failsWith(1, "no profile \"nope\"", "", nil, "token", "--profile", "nope")
		if err := os.Chmod(cli.config, 0o644); err != nil {
			t.Fatal(err)
		}
		cli.failsWith(1, "chmod 600", "", nil, "token")
		if err := os.Chmod(cli.config, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

// checkConfig checks the config file's mode and contents: the credentials
// it must hold to get tokens and nothing else (no access token, no user
// password).
func checkConfig(t *testing.T, path, clientSecret, apiKey, password string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %#o, want 0600", fi.Mode().Perm())
	}
	if di, err := os.Stat(filepath.Dir(path)); err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("config dir: %v, %v", di, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Profiles map[string]map[string]string `yaml:"profiles"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	p := cfg.Profiles["default"]
	if p["clientSecret"] != clientSecret || p["apiKey"] != apiKey || len(p) != 5 {
		t.Errorf("profile holds %v, want exactly endpoint, instanceId, clientId, clientSecret, apiKey", keys(p))
	}
	if strings.Contains(string(b), password) || strings.Contains(string(b), "eyJ") {
		t.Error("the config file holds the user password or an access token")
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
