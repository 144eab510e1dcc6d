package runtime

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/pkcs12"
)

// dirKeystore holds keystore configurations: the key and certificate the
// flows' listener serves TLS with.
const dirKeystore = "keystore"

// keystorePasswordResources are the setdbparms resources a PKCS#12
// keystore's password is looked up under, in order: the configuration's
// own, then App Connect's default keystore resource.
func keystorePasswordResources(name string) []string {
	return []string{"keystore::" + name, "brokerKeystore::password"}
}

// readKeystore loads every keystore configuration: PEM (a certificate
// chain and its private key in one file) or PKCS#12 with its password
// from setdbparms. With one or more, the flows are served over HTTPS
// only, the certificate chosen by the client's server name. Errors name
// the configuration and what is wrong, never the password or the key.
func (c *Configuration) readKeystore(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // no keystore: plain HTTP
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		name := e.Name()
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("runtime: %w", err)
		}
		cert, err := c.keyPair(name, data)
		if err != nil {
			return fmt.Errorf("runtime: keystore %s: %w", name, err)
		}
		c.TLSCertificates = append(c.TLSCertificates, cert)
		c.Sources = append(c.Sources, dirKeystore+"/"+name)
	}
	return nil
}

func (c *Configuration) keyPair(name string, data []byte) (tls.Certificate, error) {
	switch {
	case bytes.HasPrefix(data, []byte{0xFE, 0xED, 0xFE, 0xED}):
		return tls.Certificate{}, errors.New("is a JKS key store, which Sluice does not read: convert it to PKCS#12 (keytool -importkeystore -deststoretype pkcs12) or PEM")
	case bytes.Contains(data, []byte("-----BEGIN ")):
		cert, err := tls.X509KeyPair(data, data)
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("does not hold a certificate and its private key: %v", err)
		}
		return cert, nil
	}
	var pw string
	found := false
	for _, res := range keystorePasswordResources(name) {
		if cred, ok := c.Flow.Credentials[res]; ok {
			pw, found = cred.Password.Reveal(), true
			break
		}
	}
	if !found {
		return tls.Certificate{}, fmt.Errorf("is PKCS#12 and needs its password: give it in setdbparms as %s", strings.Join(keystorePasswordResources(name), " or "))
	}
	blocks, err := pkcs12.ToPEM(data, pw)
	if err != nil {
		if errors.Is(err, pkcs12.ErrIncorrectPassword) {
			return tls.Certificate{}, errors.New("the password in setdbparms does not open this PKCS#12 key store")
		}
		return tls.Certificate{}, errors.New("is not a PKCS#12 key store Sluice can read")
	}
	var pemData []byte
	for _, b := range blocks {
		pemData = append(pemData, pem.EncodeToMemory(b)...)
	}
	cert, err := tls.X509KeyPair(pemData, pemData)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("does not hold a certificate and its private key: %v", err)
	}
	return cert, nil
}
