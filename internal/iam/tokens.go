package iam

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sluice-dev/sluice/internal/clock"
	"github.com/sluice-dev/sluice/internal/secret"
	"github.com/sluice-dev/sluice/internal/store"
)

// Claims are the claims of a Sluice access token: the JWT profile of RFC
// 9068 §2.2 (iss, exp, aud, sub, client_id, iat, jti, scope) plus the
// instance, the role and, when the token came from an API key, that key.
type Claims struct {
	Issuer     string `json:"iss"`
	Subject    string `json:"sub"`
	Audience   string `json:"aud"`
	ClientID   string `json:"client_id"`
	IssuedAt   int64  `json:"iat"`
	Expiry     int64  `json:"exp"`
	ID         string `json:"jti"`
	Scope      string `json:"scope"`
	InstanceID string `json:"instance_id"`
	Role       string `json:"role"`
	KeyID      string `json:"akid,omitempty"`
	// Set on tokens of consumer apps (package apps), whose subject is
	// the app: such tokens have no role and never reach the management API.
	CatalogID     string `json:"catalog_id,omitempty"`
	ConsumerOrgID string `json:"consumer_org_id,omitempty"`
	// KeyEpoch is the API key's token epoch at minting; a lock of the key
	// starts a new one, so the token stays refused after an unlock.
	KeyEpoch int64 `json:"akep,omitempty"`
}

// tokenType is the JWT "typ" header of access tokens (RFC 9068 §2.1).
const tokenType = "at+jwt"

// Signing algorithms Sluice issues tokens with.
const (
	AlgEdDSA = "EdDSA"
	AlgRS256 = "RS256"
)

// ErrInvalidToken covers every reason a token is refused:
// errors.Is(err, ErrInvalidToken) holds for each *TokenRefused.
var ErrInvalidToken = errors.New("invalid or expired token")

// TokenRefused says why a token was refused, for the one who presented
// it: a 401 that says "expired" or "the API key is locked" tells the
// caller what to fix. It names nothing the presenter does not hold
// already (the token carries its expiry and what it was issued for).
type TokenRefused struct{ Reason string }

func (e *TokenRefused) Error() string        { return e.Reason }
func (e *TokenRefused) Is(target error) bool { return target == ErrInvalidToken }

func refuseToken(format string, args ...any) error {
	return &TokenRefused{Reason: fmt.Sprintf(format, args...)}
}

// errNotOurToken is every refusal of a token that is not an intact access
// token of this control plane; which check failed is not told apart.
var errNotOurToken = &TokenRefused{Reason: "the token is not valid: it is not an access token of this control plane, or it was altered"}

type signingKey struct {
	kid     string
	alg     jose.SignatureAlgorithm
	signer  *compactSigner // nil for keys whose private half this process did not unseal
	public  jose.JSONWebKey
	created time.Time
	retired time.Time
}

// Tokens mints and verifies access tokens with signing keys kept in the
// store, their private halves sealed by the keyring. Every replica sharing
// a store signs and verifies with the same keys.
type Tokens struct {
	Store    store.IAM
	Keyring  *secret.Keyring
	Alg      string        // AlgEdDSA (default) or AlgRS256
	Issuer   string        // "iss" of issued tokens
	Audience string        // "aud" of issued tokens
	Lifetime time.Duration // default lifetime of access tokens
	// MaxLifetime is the longest lifetime any grant mints tokens with
	// (see MintFor); retired keys stay in the JWKS that long. Zero:
	// Lifetime.
	MaxLifetime time.Duration
	Now         clock.Func

	mu     sync.RWMutex
	keys   map[string]*signingKey
	active *signingKey

	// verified remembers tokens whose signature and claims checked out,
	// so a client's every call does not pay for an Ed25519 or RSA
	// verification. What can change after issuance (revocation, a locked
	// key, a role) is not cached: the per-request grant check reads it.
	vmu      sync.Mutex
	verified map[string]Claims
}

// maxVerified bounds the verified-token cache; when full it starts over.
const maxVerified = 10000

// retention is how long a token may live, so how long a retired key must
// still verify.
func (t *Tokens) retention() time.Duration {
	return max(t.Lifetime, t.MaxLifetime)
}

func (t *Tokens) now() time.Time { return t.Now.Now() }

// Init loads the signing keys and makes sure one of the configured
// algorithm is active, creating it if needed.
func (t *Tokens) Init(ctx context.Context) error {
	if t.Alg == "" {
		t.Alg = AlgEdDSA
	}
	if t.Alg != AlgEdDSA && t.Alg != AlgRS256 {
		return fmt.Errorf("token signing algorithm %q is not one of %s, %s", t.Alg, AlgEdDSA, AlgRS256)
	}
	if err := t.reload(ctx); err != nil {
		return err
	}
	t.mu.RLock()
	ok := t.active != nil && string(t.active.alg) == t.Alg
	t.mu.RUnlock()
	if ok {
		return nil
	}
	return t.Rotate(ctx)
}

// Rotate creates a new signing key of the configured algorithm. The
// newest key is the one tokens are signed with, so creating it retires the
// others; retired keys stay in the JWKS until the last token they can have
// signed has expired. Nothing is updated in place, so replicas rotating or
// starting at the same moment cannot leave the store without a signing key.
func (t *Tokens) Rotate(ctx context.Context) error {
	k, err := t.newKey()
	if err != nil {
		return err
	}
	// The newest key signs, so the new one must sort after the current
	// one even when the clock has not moved (or moved back).
	t.mu.RLock()
	if t.active != nil && !k.CreatedAt.After(t.active.created) {
		k.CreatedAt = t.active.created.Add(time.Millisecond)
	}
	t.mu.RUnlock()
	if err := t.Store.InsertSigningKey(ctx, k); err != nil {
		return err
	}
	return t.reload(ctx)
}

func (t *Tokens) newKey() (store.SigningKey, error) {
	var priv crypto.Signer
	switch t.Alg {
	case AlgRS256:
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return store.SigningKey{}, err
		}
		priv = k
	default:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return store.SigningKey{}, err
		}
		priv = k
	}
	kid := randomID(8)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return store.SigningKey{}, err
	}
	sealed, err := t.Keyring.Seal(der, signingKeyAAD(kid))
	if err != nil {
		return store.SigningKey{}, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), KeyID: kid, Algorithm: t.Alg, Use: "sig"}
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return store.SigningKey{}, err
	}
	return store.SigningKey{KID: kid, Alg: t.Alg, SealedPrivate: sealed, PublicJWK: string(pubJSON), CreatedAt: t.now().UTC()}, nil
}

func signingKeyAAD(kid string) []byte { return []byte("signing-key/" + kid) }

// Load reads the signing keys from the store without creating any.
func (t *Tokens) Load(ctx context.Context) error { return t.reload(ctx) }

// reload reads every signing key from the store. Rows come oldest first;
// each key is retired when the next one was created, and the newest signs.
func (t *Tokens) reload(ctx context.Context) error {
	rows, err := t.Store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	return t.reloadRows(rows)
}

func (t *Tokens) reloadRows(rows []store.SigningKey) error {
	keys := make(map[string]*signingKey, len(rows))
	var active *signingKey
	cut := t.now().Add(-t.retention())
	for i, r := range rows {
		var pub jose.JSONWebKey
		if err := pub.UnmarshalJSON([]byte(r.PublicJWK)); err != nil {
			return fmt.Errorf("iam: signing key %s has a broken public key: %w", r.KID, err)
		}
		sk := &signingKey{kid: r.KID, alg: jose.SignatureAlgorithm(r.Alg), public: pub, created: r.CreatedAt}
		if i+1 < len(rows) {
			sk.retired = rows[i+1].CreatedAt
			if sk.retired.Before(cut) {
				continue // no live token can carry it any more
			}
		} else {
			der, err := t.Keyring.Open(r.SealedPrivate, signingKeyAAD(r.KID))
			if err != nil {
				return fmt.Errorf("iam: unable to unseal signing key %s: %w", r.KID, err)
			}
			priv, err := x509.ParsePKCS8PrivateKey(der)
			if err != nil {
				return fmt.Errorf("iam: signing key %s does not parse: %w", r.KID, err)
			}
			sk.signer, err = newCompactSigner(sk.alg, r.KID, priv)
			if err != nil {
				return fmt.Errorf("iam: signing key %s: %w", r.KID, err)
			}
			active = sk
		}
		keys[r.KID] = sk
	}
	t.mu.Lock()
	t.keys, t.active = keys, active
	t.mu.Unlock()
	return nil
}

// Mint signs c, filling iss, aud, iat, exp and jti. expires_in of the
// answer must be taken from the returned claims (exp − iat), never from
// configuration, so the two cannot disagree.
func (t *Tokens) Mint(c Claims) (string, Claims, error) { return t.MintUntil(c, time.Time{}) }

// MintUntil is Mint with the token's expiry cut to notAfter when that comes
// before the usual lifetime (a zero notAfter: no cut). A token minted from
// a credential that itself expires (a leased app credential) must not
// outlive it: a gateway that verifies tokens offline sees only exp.
func (t *Tokens) MintUntil(c Claims, notAfter time.Time) (string, Claims, error) {
	return t.mint(c, t.Lifetime, notAfter)
}

// MintFor is Mint with a lifetime of its own, for grants whose tokens live
// shorter or longer than the default. A lifetime beyond MaxLifetime is cut
// to it, so no token outlives the key that can verify it.
func (t *Tokens) MintFor(c Claims, lifetime time.Duration) (string, Claims, error) {
	return t.mint(c, lifetime, time.Time{})
}

func (t *Tokens) mint(c Claims, lifetime time.Duration, notAfter time.Time) (string, Claims, error) {
	if lifetime <= 0 || lifetime > t.retention() {
		lifetime = min(max(lifetime, t.Lifetime), t.retention())
	}
	t.mu.RLock()
	k := t.active
	t.mu.RUnlock()
	if k == nil {
		return "", c, errors.New("iam: no active signing key")
	}
	now := t.now().Unix()
	c.Issuer, c.Audience = t.Issuer, t.Audience
	c.IssuedAt, c.Expiry = now, now+int64(lifetime/time.Second)
	if !notAfter.IsZero() && notAfter.Unix() < c.Expiry {
		c.Expiry = notAfter.Unix()
	}
	c.ID = randomID(16)
	payload, err := json.Marshal(c)
	if err != nil {
		return "", c, err
	}
	raw, err := k.signer.sign(payload)
	if err != nil {
		return "", c, fmt.Errorf("iam: unable to sign a token: %w", err)
	}
	return raw, c, nil
}

// Verify checks a token's signature, algorithm, type, issuer, audience and
// lifetime, and returns its claims. The algorithm is pinned to the one
// recorded for the key the token names (RFC 8725 §3.1): a token that names
// a known key but another algorithm, "none", or no key is refused.
func (t *Tokens) Verify(ctx context.Context, raw string) (Claims, error) {
	t.vmu.Lock()
	c, hit := t.verified[raw]
	t.vmu.Unlock()
	if hit && t.now().Unix() < c.Expiry {
		return c, nil
	}
	c, err := t.verify(ctx, raw)
	if err == nil {
		t.vmu.Lock()
		if t.verified == nil || len(t.verified) >= maxVerified {
			t.verified = make(map[string]Claims, 256)
		}
		t.verified[raw] = c
		t.vmu.Unlock()
	}
	return c, err
}

func (t *Tokens) verify(ctx context.Context, raw string) (Claims, error) {
	var c Claims
	// Compact serialization only (RFC 7519 §1: a JWT is compact): the
	// JSON serializations (flattened, general) carry unprotected headers
	// and several signatures, which nothing here should have to reason about.
	obj, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.EdDSA, jose.RS256})
	if err != nil || len(obj.Signatures) != 1 {
		return c, errNotOurToken
	}
	h := obj.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != tokenType {
		return c, errNotOurToken
	}
	k := t.key(h.KeyID)
	if k == nil {
		// A replica may have rotated keys since this one loaded them.
		if err := t.reload(ctx); err != nil {
			return c, err
		}
		if k = t.key(h.KeyID); k == nil {
			return c, errNotOurToken
		}
	}
	if h.Algorithm != string(k.alg) {
		return c, errNotOurToken
	}
	payload, err := obj.Verify(k.public.Key)
	if err != nil {
		return c, errNotOurToken
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return c, errNotOurToken
	}
	now := t.now().Unix()
	if c.Issuer != t.Issuer || c.Audience != t.Audience || c.IssuedAt > now+60 || c.ID == "" {
		return c, errNotOurToken
	}
	if now >= c.Expiry {
		return c, refuseToken("the token expired at %s: get a new one from POST /api/v1/tokens", time.Unix(c.Expiry, 0).UTC().Format(time.RFC3339))
	}
	return c, nil
}

// ActiveKeyID names the key new tokens are signed with.
func (t *Tokens) ActiveKeyID() string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.active == nil {
		return ""
	}
	return t.active.kid
}

func (t *Tokens) key(kid string) *signingKey {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.keys[kid]
}

// JWKS returns the public keys that may have signed an unexpired token:
// the active ones and those retired less than one token lifetime ago.
func (t *Tokens) JWKS() jose.JSONWebKeySet {
	t.mu.RLock()
	defer t.mu.RUnlock()
	var set jose.JSONWebKeySet
	cut := t.now().Add(-t.retention())
	for _, k := range t.keys {
		if k.retired.IsZero() || k.retired.After(cut) {
			set.Keys = append(set.Keys, k.public)
		}
	}
	sort.Slice(set.Keys, func(i, j int) bool { return set.Keys[i].KeyID < set.Keys[j].KeyID })
	return set
}

// Refresh reloads the signing keys whenever changes says the store changed
// — on PostgreSQL that is the change feed, so a key rotated through
// another process (`sluice signing-key rotate`, another replica) signs
// here and shows in this replica's JWKS within milliseconds — and every
// `every` besides, for stores whose feed cannot see other processes'
// writes (SQLite's is in-process). A signal that leaves the list of keys
// as it was costs one read, not an unsealing. It returns when ctx is done.
func (t *Tokens) Refresh(ctx context.Context, changes <-chan struct{}, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changes:
			_ = t.reloadIfChanged(ctx)
		case <-tick.C:
			_ = t.reload(ctx)
		}
	}
}

// reloadIfChanged reloads the keys when the newest key in the store is not
// the one signing here. Keys are only ever added (Rotate), each newer than
// the last, so that is the one change a signal can bring.
func (t *Tokens) reloadIfChanged(ctx context.Context) error {
	rows, err := t.Store.ListSigningKeys(ctx)
	if err != nil {
		return err
	}
	t.mu.RLock()
	same := t.active != nil && len(rows) > 0 && rows[len(rows)-1].KID == t.active.kid
	t.mu.RUnlock()
	if same {
		return nil
	}
	return t.reloadRows(rows)
}
