// Package tlsconf is TLS for the control plane's listener and for the
// runtimes that must trust it: a certificate and key read from files and
// reloaded when they change (no restart, no dropped connection), a
// self-signed certificate for a laptop kept in the data dir, and the
// pinned client a runtime fetches its bundle with.
package tlsconf

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
)

// Files serves the certificate in CertFile with the key in KeyFile,
// reloading both when either file changes. A reload that fails (a file
// half written, a key that does not match) keeps the previous pair and
// logs why; the next handshake tries again.
type Files struct {
	CertFile, KeyFile string
	Log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	chain   []byte // the certificate file's PEM, for runtimes to pin
	stamp   string // SHA-256 of both files' content as last loaded
	refused string // the same, of the last pair that did not load
}

// Load reads the pair once; a start with a bad pair fails here, with a
// message that names the file, never the key.
func (f *Files) Load() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reload()
}

// reload compares the files' content, not their modification times:
// a certificate replaced within one timestamp tick by one of the same
// size is still seen. Both are small; a handshake costs far more.
func (f *Files) reload() error {
	certPEM, err := os.ReadFile(f.CertFile)
	if err != nil {
		return fmt.Errorf("--tls-cert: %w", err)
	}
	keyPEM, err := os.ReadFile(f.KeyFile)
	if err != nil {
		return fmt.Errorf("--tls-key: %w", err)
	}
	sum := sha256.New()
	sum.Write(certPEM)
	sum.Write([]byte{0})
	sum.Write(keyPEM)
	stamp := string(sum.Sum(nil))
	if stamp == f.stamp && f.cert != nil || stamp == f.refused {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		f.refused = stamp // said once, not at every handshake
		// crypto/tls's messages name what is wrong without the key.
		return fmt.Errorf("--tls-cert %s and --tls-key %s: %v", f.CertFile, f.KeyFile, err)
	}
	f.cert, f.chain, f.stamp = &cert, certPEM, stamp
	return nil
}

// GetCertificate is tls.Config's hook: a stat of both files per
// handshake, a reload when they changed.
func (f *Files) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.reload(); err != nil {
		if f.cert == nil {
			return nil, err
		}
		if f.Log != nil {
			f.Log.Warn("TLS certificate not reloaded; serving the previous one", "err", err)
		}
	}
	return f.cert, nil
}

// ChainPEM is the certificate file as last loaded: what a runtime of
// this control plane trusts.
func (f *Files) ChainPEM() []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return bytes.Clone(f.chain)
}

// Fingerprint is the SHA-256 of the served leaf certificate, as
// colon-separated hex (the form browsers and openssl show).
func (f *Files) Fingerprint() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cert == nil || len(f.cert.Certificate) == 0 {
		return ""
	}
	return Fingerprint(f.cert.Certificate[0])
}

// Fingerprint renders the SHA-256 of a DER certificate as AA:BB:….
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	parts := make([]string, 0, len(sum))
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

// ServerConfig is the listener's TLS configuration: TLS 1.2 or later,
// HTTP/2 offered.
func (f *Files) ServerConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: f.GetCertificate, NextProtos: []string{"h2", "http/1.1"}}
}

// selfSignedValidity is how long a generated certificate is valid; one
// with less than selfSignedRenew left is replaced at start.
const (
	selfSignedValidity = 397 * 24 * time.Hour
	selfSignedRenew    = 30 * 24 * time.Hour
)

// SelfSigned returns the files of a self-signed certificate in dir
// (cert.pem, and key.pem with mode 0600), generating them when absent or
// close to expiry. It names localhost, the loopback addresses, this
// host's name and the extra hosts given (e.g. the --listen host).
func SelfSigned(dir string, now clock.Func, hosts ...string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if pemBytes, err := os.ReadFile(certFile); err == nil {
		if b, _ := pem.Decode(pemBytes); b != nil {
			if c, err := x509.ParseCertificate(b.Bytes); err == nil && now.Now().Add(selfSignedRenew).Before(c.NotAfter) {
				if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
					return certFile, keyFile, nil
				}
			}
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("--tls-self-signed: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return "", "", err
	}
	start := now.Now().Add(-time.Hour) // a little slack for clocks that differ
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "sluice control plane (self-signed)"},
		NotBefore:             start,
		NotAfter:              start.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		tmpl.DNSNames = append(tmpl.DNSNames, h)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			}
		} else if h != "" && h != "localhost" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	// The key first, then the certificate, each through a rename: a
	// crash leaves the old pair or a new key beside the old certificate,
	// which the next start detects (the pair does not load) and replaces.
	if err := writeAtomic(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return "", "", err
	}
	if err := writeAtomic(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("--tls-self-signed: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("--tls-self-signed: %w", err)
	}
	return nil
}

// PinnedClient is an HTTP client that trusts only the certificates in
// pemFile (the control plane's certificate, or its chain): a runtime
// fetching its bundle accepts its own control plane and nothing else,
// whatever the system's roots say. The host name is not compared — the
// runtime dials the loopback address its control plane gave it, which a
// certificate for a public name does not list — the pin is the check.
func PinnedClient(pemFile string, timeout time.Duration) (*http.Client, error) {
	data, err := os.ReadFile(pemFile)
	if err != nil {
		return nil, fmt.Errorf("--bundle-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--bundle-ca-file %s holds no PEM certificate", pemFile)
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Verification is VerifyConnection's, below, without the host.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the control plane sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return fmt.Errorf("the control plane's certificate is not the one this runtime was given (%s): %w", Fingerprint(cs.PeerCertificates[0].Raw), err)
			}
			return nil
		},
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}
