package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/sluice-dev/sluice/client"
)

// fileTokenCache keeps a profile's access token between CLI runs, in a
// file of its own next to the config file (mode 0600, in a 0700
// directory), so a command reuses the token until shortly before it
// expires instead of exchanging — and auditing — a new one every time.
// The file is named after a hash of the endpoint and every credential,
// so changed credentials (a new API key, another instance in the
// environment) never pick up a token minted for others. A cache that
// cannot be read or written costs one exchange, nothing more.
type fileTokenCache struct{ path string }

// tokenCacheFor returns the cache of the credentials of p, in the
// directory of the config file.
func tokenCacheFor(configFile string, p profile) *fileTokenCache {
	h := sha256.New()
	for _, part := range []string{p.Endpoint, p.InstanceID, p.ClientID, p.ClientSecret, p.APIKey} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	name := "token-" + hex.EncodeToString(h.Sum(nil)[:12]) + ".json"
	return &fileTokenCache{path: filepath.Join(filepath.Dir(configFile), "tokens", name)}
}

// cachedToken is the file's content. The token is in clear text, as the
// credentials in the config file are; it expires, they do not.
type cachedToken struct {
	AccessToken string    `json:"accessToken"`
	TokenType   string    `json:"tokenType"`
	Scope       string    `json:"scope"`
	ExpiresIn   int64     `json:"expiresIn"`
	Expiry      time.Time `json:"expiry"`
}

func (c *fileTokenCache) Load() (client.Token, bool) {
	fi, err := os.Stat(c.path)
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		return client.Token{}, false // a file others can read is not trusted, and gets replaced
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return client.Token{}, false
	}
	var t cachedToken
	if json.Unmarshal(b, &t) != nil || t.AccessToken == "" {
		return client.Token{}, false
	}
	return client.Token{AccessToken: client.NewSecret(t.AccessToken), TokenType: t.TokenType, Scope: t.Scope,
		ExpiresIn: t.ExpiresIn, Expiry: t.Expiry}, true
}

func (c *fileTokenCache) Store(tok client.Token) {
	if tok.AccessToken.IsZero() {
		if err := os.Remove(c.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return
		}
		return
	}
	b, err := json.Marshal(cachedToken{AccessToken: tok.AccessToken.Reveal(), TokenType: tok.TokenType, Scope: tok.Scope,
		ExpiresIn: tok.ExpiresIn, Expiry: tok.Expiry.UTC()})
	if err != nil {
		return
	}
	_ = writePrivateFile(c.path, b)
}

// writePrivateFile replaces path with data, mode 0600 from the start, in a
// 0700 directory, through a temporary file renamed into place.
func writePrivateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
