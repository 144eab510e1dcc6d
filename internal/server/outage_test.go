package server_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/sluice-dev/sluice/internal/iam"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/store/storetest"
)

// tcpRelay forwards a port to PostgreSQL and can be cut, as a network
// outage or a database that is down cuts it: every connection is dropped
// and new ones are refused until it is back on the same port.
type tcpRelay struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]bool
}

func newTCPRelay(t *testing.T, target string) *tcpRelay {
	r := &tcpRelay{t: t, target: target, conns: map[net.Conn]bool{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *tcpRelay) serve(ln net.Listener) {
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", r.target)
			if err != nil {
				c.Close()
				continue
			}
			r.mu.Lock()
			r.conns[c], r.conns[up] = true, true
			r.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
}

// down drops every relayed connection and stops listening.
func (r *tcpRelay) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		r.ln.Close()
		r.ln = nil
	}
	for c := range r.conns {
		c.Close()
	}
	r.conns = map[net.Conn]bool{}
}

// up listens again on the same port.
func (r *tcpRelay) up() {
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("relay back on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

// A database that is out of reach is not a server error: the API answers
// 503 with Retry-After and a reason naming the store, /readyz says the
// store is unavailable, and once the database is back the same process
// serves again without a restart. Connections PostgreSQL terminates (as a
// restart or pg_terminate_backend does) cost no failed read at all: the
// read runs again on a fresh connection.
func TestStoreOutageAnswers503AndRecovers(t *testing.T) {
	dsn := storetest.DSN(t, "postgres")
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	relay := newTCPRelay(t, u.Host)
	app := "sluice-outage-" + strings.ReplaceAll(t.Name(), "/", "-")
	q := u.Query()
	q.Set("application_name", app)
	u.RawQuery = q.Encode()
	u.Host = relay.addr
	s := servertest.Start(t, servertest.Options{Store: u.String(), Args: []string{"--runtime-backend", "none"}})
	admin := s.Admin(t)
	get := func() (int, http.Header, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/api/v1/configurations", nil)
		req.Header.Set("Authorization", "Bearer "+admin.Token)
		req.Header.Set("X-IBM-Client-Id", admin.ClientID)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, resp.Header, body
	}
	ready := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	for i := 0; i < 8; i++ { // several pooled connections
		if code, _, body := get(); code != 200 {
			t.Fatalf("before the outage: %d %v", code, body)
		}
	}
	// Refresh tokens of the two wires that issue them, to present during
	// the outage: an unreadable token is not an unknown one.
	refreshToken := func(path, ctype, body string) string {
		t.Helper()
		resp, err := http.Post(s.URL+path, ctype, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tok struct {
			RefreshToken string `json:"refresh_token"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 || tok.RefreshToken == "" {
			t.Fatalf("POST %s before the outage: %d, %v", path, resp.StatusCode, err)
		}
		return tok.RefreshToken
	}
	toolkit := fmt.Sprintf(`"client_id":%q,"client_secret":%q`, iam.ToolkitClientID, iam.ToolkitClientSecret)
	ibmRefresh := refreshToken("/identity/token", "application/x-www-form-urlencoded",
		url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {s.Creds.APIKey}}.Encode())
	apicRefresh := refreshToken("/api/token", "application/json", fmt.Sprintf(`{"api_key":%q,"grant_type":"api_key",%s}`, s.Creds.APIKey, toolkit))

	// PostgreSQL ends every connection of this server, as a restart does.
	pg, err := sql.Open("pgx", os.Getenv(storetest.EnvPostgres))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	var ended int
	if err := pg.QueryRowContext(context.Background(),
		`SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1`, app).Scan(&ended); err != nil || ended == 0 {
		t.Fatalf("terminate the server's connections: %d, %v", ended, err)
	}
	if code, _, body := get(); code != 200 {
		t.Fatalf("after PostgreSQL ended %d connections, a read failed: %d %v", ended, code, body)
	}

	// The database is out of reach.
	relay.down()
	code, h, body := get()
	if code != http.StatusServiceUnavailable || h.Get("Retry-After") == "" || body["reason"] != "StoreUnavailable" ||
		!strings.Contains(body["message"].(string), "store is unavailable") {
		t.Fatalf("during the outage: %d Retry-After=%q %v; want 503 StoreUnavailable with Retry-After", code, h.Get("Retry-After"), body)
	}
	if code, body := ready(); code != http.StatusServiceUnavailable || body["reason"] != "store unavailable" {
		t.Fatalf("readyz during the outage: %d %v", code, body)
	}
	// Every token endpoint says the same, each in its own shape.
	c := s.Creds
	for _, tc := range []struct {
		label, path, ctype, body string
		header                   map[string]string
	}{
		{"App Connect", "/api/v1/tokens", "application/json", fmt.Sprintf(`{"apiKey":%q}`, c.APIKey),
			map[string]string{"X-IBM-Client-Id": c.ClientID, "X-IBM-Client-Secret": c.ClientSecret, "x-ibm-instance-id": c.InstanceID}},
		{"IBM Cloud IAM", "/identity/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"urn:ibm:params:oauth:grant-type:apikey"}, "apikey": {c.APIKey}}.Encode(), nil},
		{"API Connect", "/api/token", "application/json",
			fmt.Sprintf(`{"api_key":%q,"grant_type":"api_key","client_id":%q,"client_secret":%q}`, c.APIKey, c.ClientID, c.ClientSecret), nil},
		{"Airbyte", "/api/v1/applications/token", "application/json",
			fmt.Sprintf(`{"client_id":%q,"client_secret":%q}`, c.ClientID, c.ClientSecret), nil},
		{"IBM Cloud IAM refresh", "/identity/token", "application/x-www-form-urlencoded",
			url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ibmRefresh}}.Encode(), nil},
		{"API Connect refresh (toolkit client)", "/api/token", "application/json",
			fmt.Sprintf(`{"refresh_token":%q,"grant_type":"refresh_token",%s}`, apicRefresh, toolkit), nil},
	} {
		req, _ := http.NewRequest("POST", s.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ctype)
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(b), "store is unavailable") {
			t.Errorf("%s token during the outage: %d Retry-After=%q %s", tc.label, resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	if strings.Contains(s.Stderr(), "request failed") {
		t.Fatalf("the outage was logged as a server error:\n%s", s.Stderr())
	}

	// Back: the same process serves again.
	relay.up()
	if code, _, body := get(); code != 200 {
		t.Fatalf("after the outage: %d %v", code, body)
	}
	if code, body := ready(); code != 200 {
		t.Fatalf("readyz after the outage: %d %v", code, body)
	}
}
