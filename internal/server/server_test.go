package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/httplimit/httplimittest"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

func TestServeHealthRequestIDsAndGracefulStop(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest("GET", s.URL+path, nil)
		req.Header.Set("X-Request-Id", "test-req-"+path[1:])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d", path, resp.StatusCode)
		}
		if got := resp.Header.Get("X-Request-Id"); got != "test-req-"+path[1:] {
			t.Errorf("%s echoed request id %q", path, got)
		}
	}
	// A request without an id gets a fresh one.
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("X-Request-Id"); len(id) != 32 {
		t.Errorf("generated request id %q", id)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("SIGTERM: exit %v\n%s", err, s.Stderr())
	}
	// One JSON access-log line per request, with the request id.
	var accessLines int
	for _, line := range strings.Split(strings.TrimSpace(s.Stderr()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		if rec["msg"] == "request" {
			accessLines++
			if rec["request_id"] == "" || rec["status"] == nil {
				t.Errorf("access log line lacks fields: %s", line)
			}
		}
	}
	if accessLines != 3 {
		t.Errorf("%d access log lines, want 3:\n%s", accessLines, s.Stderr())
	}
	if !strings.Contains(s.Stderr(), `"msg":"stopped"`) {
		t.Errorf("no clean stop in the log:\n%s", s.Stderr())
	}
}

func TestBootstrapHappensOnceAndIsPrivate(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	// Standard output is a pipe here, not a terminal: the secrets are in
	// the file only, and the log names the file.
	path := filepath.Join(s.DataDir, "initial-credentials.json")
	if !strings.Contains(s.Stderr(), `"path":"`+path+`"`) || !strings.Contains(s.Stderr(), "first start") {
		t.Errorf("the log does not name %s:\n%s", path, s.Stderr())
	}
	for _, v := range []string{s.Creds.ClientSecret, s.Creds.APIKey, s.Creds.Password} {
		if v == "" || strings.Contains(s.Stdout(), v) {
			t.Errorf("a first-start secret was printed to a standard output that is not a terminal:\n%s", s.Stdout())
		}
	}
	fi, err := os.Stat(filepath.Join(s.DataDir, "initial-credentials.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("initial-credentials.json: %v mode %v", err, fi.Mode().Perm())
	}
	var raw map[string]string
	b, _ := os.ReadFile(filepath.Join(s.DataDir, "initial-credentials.json"))
	json.Unmarshal(b, &raw)
	for _, k := range []string{"endpoint", "instanceId", "clientId", "clientSecret", "apiKey", "username", "password"} {
		if raw[k] == "" {
			t.Errorf("initial-credentials.json lacks %q", k)
		}
	}
	// Secrets never go to the log.
	for _, v := range []string{s.Creds.ClientSecret, s.Creds.APIKey, s.Creds.Password} {
		if strings.Contains(s.Stderr(), v) {
			t.Errorf("a bootstrap secret reached the log")
		}
	}
	s.Stop()
	s.Restart()
	if strings.Contains(s.Stderr(), "first start") {
		t.Fatalf("second start bootstrapped again:\n%s", s.Stderr())
	}
	s.Admin(t) // the first credentials still work
}

// Acknowledged writes survive SIGKILL of the control plane, on both stores.
func TestDurabilityAcrossSIGKILL(t *testing.T) {
	for _, kind := range storetest.Kinds() {
		t.Run(kind, func(t *testing.T) {
			s := servertest.Start(t, servertest.Options{Store: storetest.DSN(t, kind)})
			admin := s.Admin(t)
			const n = 40
			var mu sync.Mutex
			acked := map[string]string{} // service ID name -> API key value
			var wg sync.WaitGroup
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					name := fmt.Sprintf("svc-%02d", i)
					code, body := admin.Do("PUT", "/api/v1/service-ids/"+name, map[string]any{
						"metadata": map[string]string{"name": name}, "spec": map[string]string{"role": "developer"}})
					if code != http.StatusCreated {
						t.Errorf("PUT service ID %s: %d %s", name, code, body)
						return
					}
					code, body = admin.Do("POST", "/api/v1/api-keys", map[string]any{
						"metadata": map[string]string{"name": "k"},
						"spec":     map[string]any{"owner": map[string]string{"kind": "serviceId", "name": name}}})
					if code != http.StatusCreated {
						t.Errorf("POST API key for %s: %d %s", name, code, body)
						return
					}
					var created struct{ Key string }
					json.Unmarshal(body, &created)
					mu.Lock()
					acked[name] = created.Key
					mu.Unlock()
				}(i)
			}
			wg.Wait()
			s.Kill()
			s.Restart()
			admin = s.Admin(t)
			code, body := admin.Do("GET", "/api/v1/service-ids", nil)
			if code != 200 {
				t.Fatalf("list after restart: %d %s", code, body)
			}
			var list struct {
				ServiceIDs []struct {
					Metadata struct{ Name string }
				} `json:"serviceIds"`
			}
			json.Unmarshal(body, &list)
			have := map[string]bool{}
			for _, o := range list.ServiceIDs {
				have[o.Metadata.Name] = true
			}
			for name, key := range acked {
				if !have[name] {
					t.Errorf("acknowledged service ID %s lost after SIGKILL", name)
				}
				// The API key, only its hash stored, still exchanges.
				resp, _, err := servertest.Exchange(s.URL, s.Creds.ClientID, s.Creds.ClientSecret, s.Creds.InstanceID, key)
				if err != nil || resp.StatusCode != 200 {
					t.Errorf("API key of %s does not exchange after SIGKILL: %v %v", name, err, resp)
				}
			}
			if len(acked) != n {
				t.Errorf("%d of %d writes acknowledged", len(acked), n)
			}
		})
	}
}

// Bad start-up input ends with one line that says what to do, a non-zero
// exit code, and nothing written.
func TestStartupErrors(t *testing.T) {
	bin := servertest.Binary(t)
	// A store sealed under one key, for the wrong-key case.
	sealed := servertest.Start(t, servertest.Options{})
	sealed.Stop()
	otherKey, _ := secret.NewMasterKey()
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, []byte("x"), 0o600)

	cases := []struct {
		name     string
		args     []string
		env      []string
		wantCode int
		wantText string
		dataDir  string // must not exist afterwards when fresh is true
		fresh    bool
	}{
		{"unknown flag", []string{"serve", "--no-such-flag"}, nil, 2, "unknown flag", "", false},
		{"wrong master key", []string{"serve", "--data-dir", sealed.DataDir}, []string{"SLUICE_MASTER_KEY=" + otherKey.Encode().Reveal()}, 1, "does not open this store", "", false},
		{"malformed master key", []string{"serve"}, []string{"SLUICE_MASTER_KEY=not-a-key"}, 1, "sluice master-key generate", "", true},
		{"unreachable postgres", []string{"serve", "--store", "postgres://postgres@127.0.0.1:1/test"}, nil, 1, "cannot reach PostgreSQL", "", true},
		{"data dir not writable", []string{"serve", "--data-dir", filepath.Join(file, "sub")}, nil, 1, "choose another with --data-dir", "", false},
		{"unknown store", []string{"serve", "--store", "mysql://x"}, nil, 1, "not understood", "", true},
		{"bad token lifetime", []string{"serve", "--token-lifetime", "1s"}, nil, 1, "out of range", "", true},
		{"audit retention too short", []string{"serve", "--audit-retention", "30m"}, nil, 1, "--audit-retention 30m0s is out of range", "", true},
		{"audit export target unknown", []string{"serve", "--audit-export", "syslog://x"}, nil, 1, "--audit-export: \"syslog://x\" is not an export target: give stdout or file:PATH", "", true},
		{"audit export files too small", []string{"serve", "--audit-export", "stdout", "--audit-export-max-bytes", "100"}, nil, 1, "--audit-export-max-bytes 100 is out of range", "", true},
		{"audit export keep negative", []string{"serve", "--audit-export", "stdout", "--audit-export-keep", "-1"}, nil, 1, "--audit-export-keep -1 is out of range", "", true},
		{"tls cert without key", []string{"serve", "--tls-cert", file}, nil, 1, "--tls-cert and --tls-key go together", "", true},
		{"tls both ways", []string{"serve", "--tls-self-signed", "--tls-cert", file, "--tls-key", file}, nil, 1, "exclude each other", "", true},
		{"tls not a pair", []string{"serve", "--tls-cert", file, "--tls-key", file}, nil, 1, "--tls-cert " + file + " and --tls-key " + file, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			dir := filepath.Join(t.TempDir(), "data")
			if c.fresh {
				args = append(args, "--data-dir", dir)
			}
			args = append(args, "--listen", servertest.FreeAddr(t))
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), c.env...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err == nil || code != c.wantCode {
				t.Fatalf("exit code %d, want %d (stderr %q)", code, c.wantCode, stderr.String())
			}
			msg := strings.TrimSpace(stderr.String())
			if strings.Count(msg, "\n") != 0 || !strings.HasPrefix(msg, "sluice: ") || !strings.Contains(msg, c.wantText) {
				t.Fatalf("stderr is not one line saying %q: %q", c.wantText, msg)
			}
			if c.fresh {
				if _, err := os.Stat(dir); err == nil {
					t.Fatalf("a failed start left %s behind", dir)
				}
			}
		})
	}
}

// Several control planes starting at once against one empty PostgreSQL
// apply migrations once and create exactly one first instance.
func TestConcurrentStartOnPostgres(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	var wg sync.WaitGroup
	servers := make([]*servertest.Server, 3)
	for i := range servers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			servers[i] = servertest.Start(t, servertest.Options{Store: dsn, Env: []string{"SLUICE_MASTER_KEY=" + sharedKey},
				Args: []string{"--public-url", "http://sluice.test"}})
		}(i)
	}
	wg.Wait()
	boots := 0
	var creds *servertest.Server
	for _, s := range servers {
		if strings.Contains(s.Stderr(), "first start") {
			boots++
			creds = s
		}
	}
	if boots != 1 {
		t.Fatalf("%d processes bootstrapped, want exactly 1", boots)
	}
	// Every replica accepts the one set of credentials.
	for i, s := range servers {
		resp, body, err := servertest.Exchange(s.URL, creds.Creds.ClientID, creds.Creds.ClientSecret, creds.Creds.InstanceID, creds.Creds.APIKey)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("replica %d refuses the credentials: %v %s\n%s", i, err, body, s.Stderr())
		}
	}
}

var sharedKey = func() string { k, _ := secret.NewMasterKey(); return k.Encode().Reveal() }()

// Locking or deleting an API key, deleting a client credential, and
// revoking a token bite on the very next request at another control-plane
// process sharing the same PostgreSQL — a token's use and a token exchange
// alike.
func TestRevocationAcrossReplicas(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	key := []string{"SLUICE_MASTER_KEY=" + sharedKey}
	// Replicas behind one address share the token issuer.
	issuer := []string{"--public-url", "http://sluice.test"}
	a := servertest.Start(t, servertest.Options{Store: dsn, Env: key, Args: issuer})
	b := servertest.Start(t, servertest.Options{Store: dsn, Env: key, Args: issuer})
	b.Creds = a.Creds
	adminA := a.Admin(t)

	code, body := adminA.Do("POST", "/api/v1/api-keys", map[string]any{"metadata": map[string]string{"name": "replica-test"}})
	if code != 201 {
		t.Fatalf("create key: %d %s", code, body)
	}
	var k struct {
		Metadata struct{ ID string }
		Key      string
	}
	json.Unmarshal(body, &k)
	// A token minted by A, used at B.
	tok := a.Login(t, a.Creds.ClientID, a.Creds.ClientSecret, a.Creds.InstanceID, k.Key)
	atB := b.Bind(t, tok)
	expect := func(want int, why string) {
		t.Helper()
		if code, body := atB.Do("GET", "/api/v1/whoami", nil); code != want {
			t.Fatalf("%s: whoami at replica B = %d %s, want %d", why, code, body, want)
		}
	}
	// B remembers the credentials of the exchanges it served; a change at
	// A is in B's very next exchange all the same.
	exchangeAtB := func(clientID, clientSecret, apiKey string, want int, why string) {
		t.Helper()
		resp, body, err := servertest.Exchange(b.URL, clientID, clientSecret, a.Creds.InstanceID, apiKey)
		if err != nil || resp.StatusCode != want {
			t.Fatalf("%s: token exchange at replica B = %v %v %s, want %d", why, err, resp, body, want)
		}
	}
	expect(200, "fresh token")
	exchangeAtB(a.Creds.ClientID, a.Creds.ClientSecret, k.Key, 200, "fresh key")
	exchangeAtB(a.Creds.ClientID, a.Creds.ClientSecret, k.Key, 200, "fresh key, again")
	adminA.Do("POST", "/api/v1/api-keys/"+k.Metadata.ID+"/lock", nil)
	expect(401, "key locked at replica A")
	exchangeAtB(a.Creds.ClientID, a.Creds.ClientSecret, k.Key, 401, "key locked at replica A")
	adminA.Do("POST", "/api/v1/api-keys/"+k.Metadata.ID+"/unlock", nil)
	expect(401, "key unlocked at replica A: a token minted before the lock stays refused")
	exchangeAtB(a.Creds.ClientID, a.Creds.ClientSecret, k.Key, 200, "key unlocked at replica A")
	atB = b.Bind(t, a.Login(t, a.Creds.ClientID, a.Creds.ClientSecret, a.Creds.InstanceID, k.Key))
	expect(200, "a token minted at A after the unlock")
	if code, _ := adminA.Do("DELETE", "/api/v1/api-keys/"+k.Metadata.ID, nil); code != 204 {
		t.Fatalf("delete key: %d", code)
	}
	expect(401, "key deleted at replica A")
	exchangeAtB(a.Creds.ClientID, a.Creds.ClientSecret, k.Key, 401, "key deleted at replica A")

	// Deleting a client credential at A kills its tokens at B.
	code, body = adminA.Do("POST", "/api/v1/credentials", map[string]any{"metadata": map[string]string{"name": "rotating"}})
	if code != 201 {
		t.Fatalf("create credential: %d %s", code, body)
	}
	var cred struct{ ClientID, ClientSecret string }
	json.Unmarshal(body, &cred)
	viaNew := b.Login(t, cred.ClientID, cred.ClientSecret, a.Creds.InstanceID, a.Creds.APIKey)
	atB = viaNew
	expect(200, "token of the new credential")
	exchangeAtB(cred.ClientID, cred.ClientSecret, a.Creds.APIKey, 200, "the new credential")
	adminA.Do("DELETE", "/api/v1/credentials/rotating", nil)
	expect(401, "credential deleted at replica A")
	exchangeAtB(cred.ClientID, cred.ClientSecret, a.Creds.APIKey, 401, "credential deleted at replica A")

	// RFC 7009 revocation at A bites at B.
	atB = b.Admin(t)
	expect(200, "admin token minted at B")
	form := "token=" + atB.Token
	req, _ := http.NewRequest("POST", a.URL+"/oauth/revoke", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(a.Creds.ClientID, a.Creds.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("revoke at A: %v %v", err, resp)
	}
	resp.Body.Close()
	expect(401, "token revoked at replica A")
}

// A graceful stop does not wait for long-lived streams (a watch), and
// finishes requests in flight.
func TestGracefulStopEndsStreams(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Args: []string{"--runtime-backend", "none", "--shutdown-timeout", "60s"}})
	admin := s.Admin(t)
	req, _ := http.NewRequest("GET", s.URL+"/api/v1/integration-runtimes?watch=true", nil)
	req.Header.Set("Authorization", "Bearer "+admin.Token)
	req.Header.Set("X-IBM-Client-Id", admin.ClientID)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("watch: %v %v", err, resp)
	}
	defer resp.Body.Close()
	streamEnded := make(chan struct{})
	go func() {
		io.Copy(io.Discard, resp.Body)
		close(streamEnded)
	}()
	// With a 60 s shutdown timeout, a stream that held up the stop would
	// outlast servertest's 30 s patience and get the process killed:
	// Stop would then report an error.
	if err := s.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, s.Stderr())
	}
	<-streamEnded
	if strings.Contains(s.Stderr(), "cut off at the shutdown deadline") {
		t.Fatalf("shutdown hit its deadline:\n%s", s.Stderr())
	}
}

// TestSlowClientsAreCutOff trickles a request one byte at a time, more
// often than any limit but never finishing it, over real TCP: the
// headers are cut off by the header limit, a body by the read limit (both
// made short here), and the connection is closed.
func TestSlowClientsAreCutOff(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Args: []string{"--http-read-header-timeout", "1s", "--http-read-timeout", "2s"}})
	addr := strings.TrimPrefix(s.URL, "http://")
	every := 250 * time.Millisecond
	long := strings.Repeat("a", 10000)
	httplimittest.SlowLoris(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n", "X-Slow: "+long, every)
	body := httplimittest.SlowLoris(t, addr,
		"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10010\r\n\r\n",
		`{"apiKey":"`+long, every)
	if len(body) > 0 && !strings.HasPrefix(string(body), "HTTP/1.1 4") {
		t.Errorf("the trickled token request was answered %q", body)
	}
	// The server still serves everyone else.
	resp, err := http.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz after the slow clients: %d", resp.StatusCode)
	}
}
