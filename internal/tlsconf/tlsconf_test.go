package tlsconf

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/clock/clocktest"
)

func leafOf(t *testing.T, certFile string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The self-signed pair is made once and reused; one close to expiry is
// replaced.
func TestSelfSignedIsKeptAndRenewed(t *testing.T) {
	dir := t.TempDir()
	c := clocktest.New(0)
	cert, key, err := SelfSigned(dir, c.Now, "sluice.example", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	first := leafOf(t, cert)
	if !first.NotBefore.Before(c.Now()) || first.NotAfter.Sub(first.NotBefore) != selfSignedValidity {
		t.Errorf("validity %s to %s at %s", first.NotBefore, first.NotAfter, c.Now())
	}
	if strings.Join(first.DNSNames, ",") == "" || !strings.Contains(strings.Join(first.DNSNames, ","), "sluice.example") ||
		len(first.IPAddresses) < 3 {
		t.Errorf("names %v %v", first.DNSNames, first.IPAddresses)
	}
	if st, _ := os.Stat(key); st.Mode().Perm() != 0o600 {
		t.Errorf("key mode %v", st.Mode())
	}
	c.Add(300 * 24 * time.Hour)
	if _, _, err := SelfSigned(dir, c.Now); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(leafOf(t, cert).Raw, first.Raw) {
		t.Error("a valid certificate was replaced")
	}
	c.Add(80 * 24 * time.Hour) // 17 days left
	if _, _, err := SelfSigned(dir, c.Now); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(leafOf(t, cert).Raw, first.Raw) {
		t.Error("a certificate with 17 days left was kept")
	}
}

// A changed pair is served from the next handshake; a broken one keeps
// the previous pair; a pair whose key does not match fails to load with
// the file names.
func TestFilesReload(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	certA, keyA, _ := SelfSigned(a, clock.Func(clocktest.New(0).Now))
	certB, keyB, _ := SelfSigned(b, clock.Func(clocktest.New(time.Hour).Now))
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	copyFile(t, certA, cert)
	copyFile(t, keyA, key)
	f := &Files{CertFile: cert, KeyFile: key}
	if err := f.Load(); err != nil {
		t.Fatal(err)
	}
	served := func() []byte {
		c, err := f.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Certificate[0]
	}
	if !bytes.Equal(served(), leafOf(t, certA).Raw) {
		t.Fatal("not serving A")
	}
	copyFile(t, certB, cert) // B's certificate, A's key: not a pair yet
	if !bytes.Equal(served(), leafOf(t, certA).Raw) {
		t.Fatal("a mismatched pair replaced the good one")
	}
	copyFile(t, keyB, key)
	if !bytes.Equal(served(), leafOf(t, certB).Raw) || !bytes.Equal(f.ChainPEM(), mustRead(t, certB)) {
		t.Fatal("the new pair is not served")
	}
	bad := &Files{CertFile: certA, KeyFile: keyB}
	err := bad.Load()
	if err == nil || !strings.Contains(err.Error(), certA) || strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatalf("mismatched pair: %v", err)
	}
}

// The pinned client accepts the server whose certificate it was given,
// whatever host name it dials, and refuses any other certificate.
func TestPinnedClientTrustsItsControlPlaneOnly(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	defer srv.Close()
	pinned := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(pinned, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600)
	c, err := PinnedClient(pinned, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := c.Get(srv.URL); err != nil {
		t.Fatalf("pinned server refused: %v", err)
	} else {
		resp.Body.Close()
	}
	other, _, _ := SelfSigned(t.TempDir(), clock.Wall)
	c2, err := PinnedClient(other, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Get(srv.URL); err == nil || !strings.Contains(err.Error(), "not the one this runtime was given") {
		t.Fatalf("another certificate accepted: %v", err)
	}
	if _, err := PinnedClient(filepath.Join(t.TempDir(), "none.pem"), 0); err == nil {
		t.Error("a missing pin file accepted")
	}
}

func mustRead(t *testing.T, p string) []byte {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	// Written beside and renamed in, as a careful operator does.
	tmp := to + ".tmp"
	if err := os.WriteFile(tmp, mustRead(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, to); err != nil {
		t.Fatal(err)
	}
}
