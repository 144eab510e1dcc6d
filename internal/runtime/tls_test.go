package runtime_test

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/tlsconf"
)

// With a keystore the flows are served over HTTPS only, HTTP/2 offered,
// and the endpoints advertised are https.
func TestFlowsServedOverTLS(t *testing.T) {
	cert, key, err := tlsconf.SelfSigned(t.TempDir(), clock.Wall)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(cert)
	keyPEM, _ := os.ReadFile(key)
	cfg := configDir(t, map[string]string{"keystore/web": string(certPEM) + string(keyPEM)})
	p := startRuntime(t, "--bar", buildBAR(t, "../../examples/hello"), "--config-dir", cfg)
	base := "https://" + p.listen
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ForceAttemptHTTP2: true,
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	resp, err := client.Get(base + "/hello/tls")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 || !strings.Contains(string(body), "tls") {
		t.Fatalf("%s %d %s; want 200 over HTTP/2", resp.Proto, resp.StatusCode, body)
	}
	plain, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/hello/tls")
	if err == nil {
		b, _ := io.ReadAll(plain.Body)
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Fatalf("plain HTTP served the flow: %s", b)
		}
	}
}
