package secret

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// MasterKeySize is the size of a master key and of every data key: AES-256.
const MasterKeySize = 32

// ErrWrongMasterKey means the master key given cannot unwrap the data keys
// the store holds: it is not the key the store was sealed with.
var ErrWrongMasterKey = errors.New("the master key does not open this store's data keys")

// MasterKey wraps and unwraps data keys. It never seals user data itself,
// so rotating it only re-wraps a handful of data keys.
type MasterKey struct {
	key [MasterKeySize]byte
}

// NewMasterKey returns a fresh random master key.
func NewMasterKey() (MasterKey, error) {
	var mk MasterKey
	if _, err := rand.Read(mk.key[:]); err != nil {
		return MasterKey{}, fmt.Errorf("secret: unable to generate a master key: %w", err)
	}
	return mk, nil
}

// ParseMasterKey decodes a master key written as base64 (standard or URL
// alphabet, padded or not) or as 64 hex digits. The error never repeats the
// input.
func ParseMasterKey(s string) (MasterKey, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	if b, err := hex.DecodeString(s); err == nil && len(b) == MasterKeySize {
		raw = b
	} else {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(s); err == nil {
				raw = b
				break
			}
		}
	}
	if len(raw) != MasterKeySize {
		return MasterKey{}, fmt.Errorf("a master key must be %d random bytes written as base64 or hex (generate one with 'sluice master-key generate')", MasterKeySize)
	}
	var mk MasterKey
	copy(mk.key[:], raw)
	return mk, nil
}

// Encode returns the key as standard base64, the form ParseMasterKey reads
// and the key file holds.
func (mk MasterKey) Encode() Value { return New(base64.StdEncoding.EncodeToString(mk.key[:])) }

// Fingerprint identifies the key without revealing it: the first 8 bytes of
// SHA-256 over a domain-separated copy of the key, in hex.
func (mk MasterKey) Fingerprint() string {
	h := sha256.Sum256(append([]byte("sluice master key fingerprint\x00"), mk.key[:]...))
	return hex.EncodeToString(h[:8])
}

// String redacts the key so a MasterKey can never be logged.
func (mk MasterKey) String() string { return "MasterKey(" + mk.Fingerprint() + ")" }

// Format redacts the key for every fmt verb.
func (mk MasterKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(mk.String())) }

func (mk MasterKey) aead() cipher.AEAD { return mustGCM(mk.key[:]) }

func mustGCM(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // only on a key of the wrong size, which the types rule out
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return gcm
}

// WrappedKey is a data key as the store keeps it: encrypted under a master key.
type WrappedKey struct {
	ID        string
	MasterFP  string // fingerprint of the master key that wrapped it
	Wrapped   []byte
	CreatedAt time.Time
}

// KeyStore is the part of the store the keyring needs.
type KeyStore interface {
	ListDataKeys(ctx context.Context) ([]WrappedKey, error)
	InsertDataKey(ctx context.Context, k WrappedKey) error
	// ReplaceDataKeys stores new wrappings for existing data keys, all or
	// nothing, refusing if any key is missing.
	ReplaceDataKeys(ctx context.Context, keys []WrappedKey) error
}

// wrapAAD binds a wrapped data key to its id, so wrappings cannot be swapped.
func wrapAAD(id string) []byte { return []byte("sluice data key\x00" + id) }

func (mk MasterKey) wrap(id string, dk []byte) ([]byte, error) {
	return seal(mk.aead(), dk, wrapAAD(id))
}

func (mk MasterKey) unwrap(wk WrappedKey) ([]byte, error) {
	dk, err := open(mk.aead(), wk.Wrapped, wrapAAD(wk.ID))
	if err != nil || len(dk) != MasterKeySize {
		return nil, ErrWrongMasterKey
	}
	return dk, nil
}

func seal(a cipher.AEAD, plaintext, aad []byte) ([]byte, error) {
	nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(plaintext)+a.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("secret: unable to read a nonce: %w", err)
	}
	return a.Seal(nonce, nonce, plaintext, aad), nil
}

func open(a cipher.AEAD, blob, aad []byte) ([]byte, error) {
	if len(blob) < a.NonceSize()+a.Overhead() {
		return nil, errors.New("secret: sealed value is truncated")
	}
	n := a.NonceSize()
	return a.Open(nil, blob[:n], blob[n:], aad)
}

// Keyring seals and opens secrets with the store's data keys. New seals use
// the newest data key; old data keys stay readable until nothing uses them.
type Keyring struct {
	mu     sync.RWMutex
	keys   map[string]cipher.AEAD
	active string

	// Kept to load data keys that other processes sharing the store
	// created after this one started.
	ks KeyStore
	mk MasterKey
}

// OpenKeyring unwraps every data key of ks with mk. On a store that has no
// data key yet it creates the first one. A master key that does not open
// the store gives ErrWrongMasterKey.
func OpenKeyring(ctx context.Context, ks KeyStore, mk MasterKey) (*Keyring, error) {
	wks, err := ks.ListDataKeys(ctx)
	if err != nil {
		return nil, err
	}
	if len(wks) == 0 {
		wk, err := newDataKey(mk)
		if err != nil {
			return nil, err
		}
		if err := ks.InsertDataKey(ctx, wk); err != nil {
			return nil, err
		}
		// Re-read: another control plane starting at the same moment may
		// have created a data key too; both are valid and both are kept.
		if wks, err = ks.ListDataKeys(ctx); err != nil {
			return nil, err
		}
	}
	kr := &Keyring{keys: make(map[string]cipher.AEAD, len(wks)), ks: ks, mk: mk}
	if err := kr.load(wks, mk); err != nil {
		return nil, err
	}
	return kr, nil
}

func (kr *Keyring) load(wks []WrappedKey, mk MasterKey) error {
	var newest WrappedKey
	for _, wk := range wks {
		dk, err := mk.unwrap(wk)
		if err != nil {
			return err
		}
		kr.keys[wk.ID] = mustGCM(dk)
		if newest.ID == "" || wk.CreatedAt.After(newest.CreatedAt) ||
			(wk.CreatedAt.Equal(newest.CreatedAt) && wk.ID > newest.ID) {
			newest = wk
		}
	}
	kr.active = newest.ID
	return nil
}

func newDataKey(mk MasterKey) (WrappedKey, error) {
	dk := make([]byte, MasterKeySize)
	if _, err := rand.Read(dk); err != nil {
		return WrappedKey{}, fmt.Errorf("secret: unable to generate a data key: %w", err)
	}
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return WrappedKey{}, fmt.Errorf("secret: unable to generate a data key id: %w", err)
	}
	id := hex.EncodeToString(idb)
	w, err := mk.wrap(id, dk)
	if err != nil {
		return WrappedKey{}, err
	}
	return WrappedKey{ID: id, MasterFP: mk.Fingerprint(), Wrapped: w, CreatedAt: time.Now().UTC()}, nil
}

// sealedVersion tags the layout of a sealed value: version, key id length,
// key id, nonce, ciphertext+tag.
const sealedVersion = 1

// Seal encrypts plaintext under the active data key. aad binds the sealed
// value to its context (for example "configuration/<instance>/<name>"), so a
// sealed value copied to another row does not open.
func (kr *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	kr.mu.RLock()
	id, a := kr.active, kr.keys[kr.active]
	kr.mu.RUnlock()
	body, err := seal(a, plaintext, aad)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 2+len(id)+len(body))
	out = append(out, sealedVersion, byte(len(id)))
	out = append(out, id...)
	return append(out, body...), nil
}

// Open decrypts a value made by Seal with the same aad.
func (kr *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealedVersion || len(sealed) < 2+int(sealed[1]) {
		return nil, errors.New("secret: sealed value has an unknown layout")
	}
	id := string(sealed[2 : 2+int(sealed[1])])
	kr.mu.RLock()
	a, ok := kr.keys[id]
	kr.mu.RUnlock()
	if !ok {
		// Another process sharing the store may have added a data key
		// since this keyring was opened (a concurrent first start, or a
		// rotation): read the data keys again once.
		if err := kr.refresh(); err != nil {
			return nil, err
		}
		kr.mu.RLock()
		a, ok = kr.keys[id]
		kr.mu.RUnlock()
	}
	if !ok {
		return nil, fmt.Errorf("secret: sealed value names data key %q, which this store does not hold", id)
	}
	pt, err := open(a, sealed[2+int(sealed[1]):], aad)
	if err != nil {
		return nil, errors.New("secret: sealed value does not open (corrupted, or moved from another record)")
	}
	return pt, nil
}

func (kr *Keyring) refresh() error {
	if kr.ks == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wks, err := kr.ks.ListDataKeys(ctx)
	if err != nil {
		return err
	}
	kr.mu.Lock()
	defer kr.mu.Unlock()
	for _, wk := range wks {
		if _, ok := kr.keys[wk.ID]; ok {
			continue
		}
		dk, err := kr.mk.unwrap(wk)
		if err != nil {
			return err
		}
		kr.keys[wk.ID] = mustGCM(dk)
	}
	return nil
}

// ActiveKeyID names the data key new seals use.
func (kr *Keyring) ActiveKeyID() string {
	kr.mu.RLock()
	defer kr.mu.RUnlock()
	return kr.active
}

// RotateDataKey adds a new data key and makes it the one new seals use.
// Values sealed under older keys stay readable.
func (kr *Keyring) RotateDataKey(ctx context.Context, ks KeyStore, mk MasterKey) error {
	wk, err := newDataKey(mk)
	if err != nil {
		return err
	}
	if err := ks.InsertDataKey(ctx, wk); err != nil {
		return err
	}
	dk, err := mk.unwrap(wk)
	kr.mu.Lock()
	defer kr.mu.Unlock()
	if err != nil {
		return err
	}
	kr.keys[wk.ID] = mustGCM(dk)
	kr.active = wk.ID
	return nil
}

// RotateMasterKey re-wraps every data key of ks from oldKey to newKey in
// one transaction. Sealed data is untouched: only data keys are re-wrapped.
func RotateMasterKey(ctx context.Context, ks KeyStore, oldKey, newKey MasterKey) error {
	wks, err := ks.ListDataKeys(ctx)
	if err != nil {
		return err
	}
	out := make([]WrappedKey, 0, len(wks))
	for _, wk := range wks {
		dk, err := oldKey.unwrap(wk)
		if err != nil {
			return err
		}
		w, err := newKey.wrap(wk.ID, dk)
		if err != nil {
			return err
		}
		out = append(out, WrappedKey{ID: wk.ID, MasterFP: newKey.Fingerprint(), Wrapped: w, CreatedAt: wk.CreatedAt})
	}
	return ks.ReplaceDataKeys(ctx, out)
}
