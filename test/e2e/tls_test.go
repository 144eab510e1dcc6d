package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/server/servertest"
	"github.com/sluice-dev/sluice/internal/tlsconf"
)

// `sluice serve --tls-self-signed`: the API is served over HTTPS (HTTP/2
// offered) with a certificate kept in the data dir whose fingerprint the
// start prints; a runtime deployed through it fetches its bundle over
// that TLS, trusting that certificate alone, and serves; a restart keeps
// the certificate.
func TestControlPlaneServesTLSAndItsRuntimesTrustIt(t *testing.T) {
	s := servertest.Start(t, servertest.Options{Args: []string{"--tls-self-signed"}})
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("serving %s; want https", s.URL)
	}
	certFile := filepath.Join(s.DataDir, "tls", "cert.pem")
	pemBytes, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		t.Fatal("no certificate in cert.pem")
	}
	if st, err := os.Stat(filepath.Join(s.DataDir, "tls", "key.pem")); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key.pem: %v %v; want mode 0600", st.Mode(), err)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}

	// The fingerprint printed is the served certificate's.
	resp, err := client.Get(s.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	printed := regexp.MustCompile(`TLS certificate SHA-256 fingerprint ([0-9A-F:]{95})`).FindStringSubmatch(s.Stdout())
	if printed == nil || printed[1] != tlsconf.Fingerprint(resp.TLS.PeerCertificates[0].Raw) {
		t.Fatalf("printed fingerprint %v; served %s\nstdout: %s", printed, tlsconf.Fingerprint(resp.TLS.PeerCertificates[0].Raw), s.Stdout())
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s; want HTTP/2 over TLS", resp.Proto)
	}
	// Plain HTTP on the same port gets no API.
	if resp, err := http.Get(strings.Replace(s.URL, "https://", "http://", 1) + "/api/v1/whoami"); err == nil {
		if resp.StatusCode < 400 {
			t.Errorf("plain http answered %d", resp.StatusCode)
		}
		resp.Body.Close()
	}

	admin := tlsLogin(t, client, s)
	url := putBAR(t, admin, "hello", helloBAR(t, "Hello"))
	if !strings.HasPrefix(url, "https://") {
		t.Errorf("BAR url %s; want https", url)
	}
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/hello", map[string]any{
		"metadata": map[string]string{"name": "hello"}, "spec": map[string]any{"barURL": []string{url}}}); code != 201 {
		t.Fatalf("runtime: %d %s", code, body)
	}
	st := waitReady(t, admin, "hello", 1)
	flow, err := http.Get(strings.Replace(st.Status.Endpoints[0].URI, "{name}", "tls", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(flow.Body)
	flow.Body.Close()
	if flow.StatusCode != 200 || !strings.Contains(string(body), "Hello, tls!") {
		t.Fatalf("flow: %d %s", flow.StatusCode, body)
	}

	// A restart serves the same certificate.
	s.Stop()
	s.Restart()
	resp2, err := client.Get(s.URL + "/.well-known/oauth-authorization-server")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if !bytes.Equal(resp2.TLS.PeerCertificates[0].Raw, resp.TLS.PeerCertificates[0].Raw) {
		t.Error("a restart made a new self-signed certificate")
	}
}

// tlsLogin is servertest's Admin over a client that trusts the server.
func tlsLogin(t *testing.T, client *http.Client, s *servertest.Server) *servertest.Client {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"apiKey": s.Creds.APIKey})
	req, _ := http.NewRequest("POST", s.URL+"/api/v1/tokens", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-IBM-Client-Id", s.Creds.ClientID)
	req.Header.Set("X-IBM-Client-Secret", s.Creds.ClientSecret)
	req.Header.Set("x-ibm-instance-id", s.Creds.InstanceID)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token exchange over TLS: %d %v", resp.StatusCode, err)
	}
	c := s.Bind(t, &servertest.Client{ClientID: s.Creds.ClientID, Token: tok.AccessToken})
	c.HTTP = client
	return c
}

// A keystore configuration makes a runtime serve its flows over HTTPS:
// its status advertises https endpoints, which answer with the
// keystore's certificate; a PEM keystore whose key does not match its
// certificate is refused at write time.
func TestKeystoreServesFlowsOverHTTPS(t *testing.T) {
	s := servertest.Start(t, servertest.Options{})
	admin := s.Admin(t)
	dir := t.TempDir()
	certFile, keyFile, err := tlsconf.SelfSigned(dir, clock.Wall)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(certFile)
	keyPEM, _ := os.ReadFile(keyFile)
	otherCert, _, _ := tlsconf.SelfSigned(t.TempDir(), clock.Wall)
	otherPEM, _ := os.ReadFile(otherCert)
	cfg := func(data []byte) map[string]any {
		return map[string]any{"metadata": map[string]string{"name": "web-tls"},
			"spec": map[string]any{"type": "keystore", "data": base64.StdEncoding.EncodeToString(data)}}
	}
	if code, body := admin.Do("PUT", "/api/v1/configurations/web-tls", cfg(append(otherPEM, keyPEM...))); code != 400 ||
		!strings.Contains(string(body), "does not hold a certificate and its private key") {
		t.Fatalf("mismatched keystore: %d %s", code, body)
	}
	if code, body := admin.Do("PUT", "/api/v1/configurations/web-tls", cfg(append(certPEM, keyPEM...))); code != 201 {
		t.Fatalf("keystore: %d %s", code, body)
	}
	url := putBAR(t, admin, "hello", helloBAR(t, "Hello"))
	if code, body := admin.Do("PUT", "/api/v1/integration-runtimes/web", map[string]any{"metadata": map[string]string{"name": "web"},
		"spec": map[string]any{"barURL": []string{url}, "configurations": []string{"web-tls"}}}); code != 201 {
		t.Fatalf("runtime: %d %s", code, body)
	}
	st := waitReady(t, admin, "web", 1)
	ep := st.Status.Endpoints[0].URI
	if !strings.HasPrefix(ep, "https://") {
		t.Fatalf("endpoint %s; want https", ep)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := client.Get(strings.Replace(ep, "{name}", "tls", 1))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(body), "Hello, tls!") {
		t.Fatalf("%s %d %s", resp.Proto, resp.StatusCode, body)
	}
}
