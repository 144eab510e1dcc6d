package orchestrator

import (
	"archive/zip"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sluice-dev/sluice/internal/configuration"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// A runtime fetches its BARs and configurations from the control plane as
// one bundle (a zip of bars/*.bar and the config/ directory layout of
// `sluice runtime --config-dir`), authenticated by a bundle token. The
// token is an HMAC of the runtime's uid and generation under a key only the
// control plane holds: it opens that runtime's bundle and nothing else, and
// needs no per-runtime storage.

// BundleTokenPrefix marks bundle tokens, like Sluice's other secrets.
const BundleTokenPrefix = "slrt_"

// bundleKeySetting names the sealed HMAC key in the store's settings.
const bundleKeySetting = "runtime-bundle-key"

// BundleKeys mints and checks bundle tokens.
type BundleKeys struct {
	key []byte
}

// LoadBundleKeys reads the bundle key from the store, creating it on
// first use; it is sealed by the keyring like every other secret.
func LoadBundleKeys(ctx context.Context, st store.Store, kr *secret.Keyring) (*BundleKeys, error) {
	sealed, err := st.GetSetting(ctx, bundleKeySetting)
	if errors.Is(err, store.ErrNotFound) {
		k := make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		s, err := kr.Seal(k, []byte(bundleKeySetting))
		if err != nil {
			return nil, err
		}
		// Another control plane may have created it at the same moment;
		// whichever insert won is the key everyone uses.
		if err := st.PutSettingIfAbsent(ctx, bundleKeySetting, base64.StdEncoding.EncodeToString(s)); err != nil {
			return nil, err
		}
		if sealed, err = st.GetSetting(ctx, bundleKeySetting); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("orchestrator: bundle key is not base64: %w", err)
	}
	k, err := kr.Open(raw, []byte(bundleKeySetting))
	if err != nil {
		return nil, err
	}
	return &BundleKeys{key: k}, nil
}

func (b *BundleKeys) mac(uid string, gen int64) []byte {
	h := hmac.New(sha256.New, b.key)
	h.Write([]byte(uid + "/" + strconv.FormatInt(gen, 10)))
	return h.Sum(nil)
}

// Token returns the bundle token of one runtime generation.
func (b *BundleKeys) Token(uid string, gen int64) secret.Value {
	return secret.New(BundleTokenPrefix + base64.RawURLEncoding.EncodeToString(b.mac(uid, gen)))
}

// Check reports, in constant time, whether token opens the bundle of
// (uid, gen).
func (b *BundleKeys) Check(uid string, gen int64, token string) bool {
	raw, ok := strings.CutPrefix(token, BundleTokenPrefix)
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(raw)
	return err == nil && hmac.Equal(got, b.mac(uid, gen))
}

// ErrBundleDenied is any bundle request that is not allowed; the reason
// stays with the server.
var ErrBundleDenied = errors.New("orchestrator: bundle request denied")

// WriteBundle writes the bundle of runtime uid at generation gen to w,
// after checking token. Generations other than the current one are
// refused: a rolled-over runtime has no business fetching anything.
func (r *Reconciler) WriteBundle(ctx context.Context, keys *BundleKeys, uid string, gen int64, token string, w io.Writer) error {
	rec, err := r.Store.RuntimeByUID(ctx, uid)
	if err != nil || !keys.Check(uid, gen, token) || gen != rec.Generation {
		return ErrBundleDenied
	}
	rt, err := Decode(rec)
	if err != nil {
		return err
	}
	configs, barauth, missing := r.gatherConfigs(ctx, rt)
	bars, _, missingBAR, fetchErr := r.gatherBARs(ctx, rt, barauth)
	if fetchErr != "" {
		return errors.New(fetchErr)
	}
	if len(missing)+len(missingBAR) > 0 {
		return fmt.Errorf("orchestrator: not found: %s", strings.Join(append(missingBAR, missing...), ", "))
	}
	tmp, err := os.MkdirTemp("", "sluice-bundle-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	for _, c := range configs {
		if err := configuration.Materialise(tmp, c.Type, c.Name, c.Data); err != nil {
			return fmt.Errorf("orchestrator: configuration %s: %w", c.Name, err)
		}
	}
	zw := zip.NewWriter(w)
	for _, b := range bars {
		f, err := zw.Create("bars/" + b.Name)
		if err != nil {
			return err
		}
		if _, err := f.Write(b.Data); err != nil {
			return err
		}
	}
	err = filepath.WalkDir(tmp, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tmp, p)
		f, err := zw.Create("config/" + filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(f, src)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}
