package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/tlsconf"
)

// testKeyPair makes a certificate and key valid now by the wall clock:
// the TLS client verifying it reads the wall clock, whatever the suite's
// test clock says.
func testKeyPair(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	cert, key, err := tlsconf.SelfSigned(t.TempDir(), clock.Wall)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := os.ReadFile(cert)
	k, _ := os.ReadFile(key)
	return c, k
}

func TestKeystoreForms(t *testing.T) {
	certPEM, keyPEM := testKeyPair(t)
	otherCert, _ := testKeyPair(t)
	pemStore := string(certPEM) + string(keyPEM)

	c, err := LoadConfigDir(writeDir(t, map[string]string{"keystore/web": pemStore}))
	if err != nil || len(c.TLSCertificates) != 1 {
		t.Fatalf("PEM keystore: %v, %d certificates", err, len(c.TLSCertificates))
	}

	if _, err := exec.LookPath("openssl"); err != nil {
		t.Fatalf("openssl is needed to make a PKCS#12 store: %v", err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), keyPEM, 0o600)
	p12 := filepath.Join(dir, "s.p12")
	if out, err := exec.Command("openssl", "pkcs12", "-export", "-in", filepath.Join(dir, "c.pem"), "-inkey", filepath.Join(dir, "k.pem"),
		"-out", p12, "-passout", "pass:St0re-pw", "-certpbe", "PBE-SHA1-3DES", "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1").CombinedOutput(); err != nil {
		t.Fatalf("openssl: %v %s", err, out)
	}
	p12Data, _ := os.ReadFile(p12)
	c, err = LoadConfigDir(writeDir(t, map[string]string{"keystore/web": string(p12Data), "setdbparms/s.txt": "keystore::web ignored St0re-pw\n"}))
	if err != nil || len(c.TLSCertificates) != 1 {
		t.Fatalf("PKCS#12 keystore: %v", err)
	}
	c, err = LoadConfigDir(writeDir(t, map[string]string{"keystore/web": string(p12Data), "setdbparms/s.txt": "brokerKeystore::password ignored St0re-pw\n"}))
	if err != nil || len(c.TLSCertificates) != 1 {
		t.Fatalf("PKCS#12 keystore with ACE's resource: %v", err)
	}

	for name, tc := range map[string]struct {
		files map[string]string
		says  string
	}{
		"wrong password": {map[string]string{"keystore/web": string(p12Data), "setdbparms/s.txt": "keystore::web u Wr0ng-pw\n"}, "keystore web: the password in setdbparms does not open this PKCS#12 key store"},
		"no password":    {map[string]string{"keystore/web": string(p12Data)}, "keystore web: is PKCS#12 and needs its password: give it in setdbparms as keystore::web or brokerKeystore::password"},
		"key mismatch":   {map[string]string{"keystore/web": string(otherCert) + string(keyPEM)}, "keystore web: does not hold a certificate and its private key"},
		"JKS":            {map[string]string{"keystore/web": "\xfe\xed\xfe\xed\x00\x00\x00\x02"}, "is a JKS key store"},
	} {
		_, err := LoadConfigDir(writeDir(t, tc.files))
		if err == nil || !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "pw") {
			t.Errorf("%s: %v; want %q", name, err, tc.says)
		}
	}
}
