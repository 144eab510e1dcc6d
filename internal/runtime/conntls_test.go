package runtime_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testCA makes a CA and a server certificate it signed for 127.0.0.1,
// valid now by the wall clock (the TLS client checks it by the wall
// clock); it returns the CA's PEM and the server's cert and key files.
func testCA(t *testing.T) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sluice test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	kder, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), certFile, keyFile
}

// TestConnectionTrustsTheTruststore: a NATS server of the test's own
// (the machine's nats-server, started with TLS and a certificate of a CA
// made here) is reached over tls:// by a runtime whose
// truststorecertificate configuration holds that CA; a runtime without it
// refuses the server's certificate, and its JetStream publish fails.
func TestConnectionTrustsTheTruststore(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server (the machine's NATS) not found: %v", err)
	}
	caPEM, certFile, keyFile := testCA(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	srv := exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", t.TempDir(),
		"--tls", "--tlscert", certFile, "--tlskey", keyFile)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	url := "tls://127.0.0.1:" + strconv.Itoa(port)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, caPEM, 0o600)
	var nc *nats.Conn
	eventually(t, "the TLS NATS server", func() bool {
		nc, err = nats.Connect(url, nats.RootCAs(caFile))
		return err == nil
	})
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "TLS", Subjects: []string{"tls.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("tls.out")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()

	proj := writeProject(t, map[string]string{
		"sluice.yaml": "name: secure\n",
		"flows/send.yaml": `flow: send
timeout: 3s
trigger: {http: {method: POST, path: /send}}
steps:
  - publish: {connection: bus, subject: tls.out, confirm: true}
  - reply: {body: .response}
`,
	})
	bar := buildBARInProcess(t, proj)
	policy := "type: nats\nurl: " + url + "\n"
	trusting := startRuntime(t, "--bar", bar, "--config-dir", configDir(t, map[string]string{
		"policyproject/Connections/bus.yaml": policy,
		"truststorecertificate/ca.pem":       string(caPEM),
	}))
	r := do(t, "POST", trusting.url("/send"), strings.NewReader(`{"order": 1}`), "Content-Type", "application/json")
	if r.status != 200 {
		t.Fatalf("publish over TLS: %d %s\n%s", r.status, r.body, trusting.log)
	}
	if got := r.json(t); got["stream"] != "TLS" || got["sequence"] != float64(1) {
		t.Fatalf("response %v", got)
	}
	if m, err := sub.NextMsg(waitLong); err != nil || string(m.Data) != `{"order":1}` {
		t.Fatalf("message %v %v", m, err)
	}

	untrusting := startRuntime(t, "--bar", bar, "--config-dir", configDir(t, map[string]string{
		"policyproject/Connections/bus.yaml": policy,
	}))
	if r := do(t, "POST", untrusting.url("/send"), strings.NewReader(`{"order": 2}`), "Content-Type", "application/json"); r.status != 502 && r.status != 504 {
		t.Fatalf("a runtime without the CA: %d %s", r.status, r.body)
	}
	eventually(t, "the refused certificate in the log", func() bool {
		return strings.Contains(untrusting.log.String(), "certificate signed by unknown authority")
	})
}
