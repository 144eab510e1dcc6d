package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/sluice-dev/sluice/internal/clock"
)

// Instance is a tenant. Every other record belongs to exactly one.
type Instance struct {
	ID        string
	Name      string
	CreatedAt time.Time
}

// Identity kinds.
const (
	KindUser      = "user"
	KindServiceID = "serviceId"
)

// Identity is a user (a person) or a service ID, with its role in its instance.
type Identity struct {
	ID           string
	InstanceID   string
	Kind         string
	Name         string
	Description  string
	Role         string
	PasswordHash string // argon2id PHC string; users only, "" when no password is set
	// SessionEpoch changes when the password is set or the role lowered;
	// dashboard sessions opened in an earlier epoch are over.
	SessionEpoch int64
	CreatedAt    time.Time
	CreatedBy    string
	UpdatedAt    time.Time
}

// APIKey is an API key's record; the key itself is never stored, only its hash.
type APIKey struct {
	ID          string
	InstanceID  string
	OwnerID     string
	Name        string
	Description string
	KeyHash     string
	KeyHint     string    // the first characters of the key, to recognise it in a list
	ExpiresAt   time.Time // zero: never
	Locked      bool
	// TokenEpoch counts the key's locks: a token minted in an earlier
	// epoch stays refused once the key is unlocked.
	TokenEpoch int64
	CreatedAt  time.Time
	CreatedBy  string
	LastUsedAt time.Time // zero: never used

	// Filled on reads from the owner's identity.
	OwnerKind, OwnerName, OwnerRole string
}

// ClientCredential is a public API client id with the hash of its secret.
type ClientCredential struct {
	ClientID    string
	InstanceID  string
	Name        string
	Description string
	OwnerID     string // "": an instance credential that works only with an API key
	SecretHash  string
	SecretHint  string
	CreatedAt   time.Time
	CreatedBy   string
	LastUsedAt  time.Time

	OwnerKind, OwnerName, OwnerRole string
}

// SigningKey is a token signing key; the private half is sealed. The
// newest key signs; each older one is retired from the moment its
// successor was created.
type SigningKey struct {
	KID           string
	Alg           string
	SealedPrivate []byte
	PublicJWK     string
	CreatedAt     time.Time
}

// AuditEvent is one audited action. Detail never holds secret values.
type AuditEvent struct {
	ID         string
	At         time.Time
	InstanceID string
	Actor      string
	Action     string
	Object     string
	Outcome    string
	Source     string
	RequestID  string
	Detail     string
}

// AuditFilter selects audit events of one instance. Each of Actor,
// Action and Object, when set, must match exactly; each has an index
// (migration 0016) that serves its pages in order.
type AuditFilter struct {
	InstanceID string
	Actor      string
	Action     string
	Object     string
	Since      time.Time // inclusive; zero: no bound
	Until      time.Time // exclusive; zero: no bound
	Limit      int
	// Below, when its ID is set, starts the page after that event: only
	// events older than it (by time, then id) are listed. Keyset, not
	// offset, so pages stay stable while new events arrive.
	Below AuditCursor
}

// AuditCursor is the position of one event in the audit's order (newest
// first: time, then id, both descending).
type AuditCursor struct {
	At time.Time
	ID string
}

// GrantState is what a token's credentials look like now; the per-request
// check compares it with what the token claims.
type GrantState struct {
	ClientExists   bool
	ClientInstance string
	KeyExists      bool
	KeyLocked      bool
	KeyExpiresAt   time.Time
	KeyEpoch       int64  // the key's token epoch; tokens of another are refused
	SubjectRole    string // current role of the token's subject; "" when it is gone
	SubjectKind    string
	SubjectName    string
	Revoked        bool
}

// NewInstance is everything one new tenant starts with.
type NewInstance struct {
	Instance   Instance
	Admin      Identity
	Key        APIKey
	Credential ClientCredential
}

// IAM is the identity part of the store.
type IAM interface {
	// Bootstrap creates the first instance, once in the life of a store:
	// it reports false, changing nothing, when any process did it before.
	Bootstrap(ctx context.Context, n NewInstance) (bool, error)
	CreateInstance(ctx context.Context, n NewInstance) error
	GetInstance(ctx context.Context, id string) (Instance, error)
	ListInstances(ctx context.Context) ([]Instance, error)
	InstanceContents(ctx context.Context, instanceID string) (InstanceContents, error)
	DeleteInstance(ctx context.Context, instanceID string) (InstanceContents, error)

	CreateIdentity(ctx context.Context, id Identity) error
	UpdateIdentity(ctx context.Context, id Identity) error
	GetIdentity(ctx context.Context, instanceID, kind, name string) (Identity, error)
	GetIdentityByID(ctx context.Context, id string) (Identity, error)
	// ListIdentities lists one page of the instance's users or service
	// IDs, by name.
	ListIdentities(ctx context.Context, instanceID, kind string, pg Page) ([]Identity, error)
	DeleteIdentity(ctx context.Context, instanceID, kind, name string) error

	CreateAPIKey(ctx context.Context, k APIKey) error
	GetAPIKey(ctx context.Context, instanceID, id string) (APIKey, error)
	APIKeyByHash(ctx context.Context, hash string) (APIKey, error)
	// ExchangeCredentials reads, in one query, the client credential and
	// the API key (by hash) a token exchange presents, as
	// GetClientCredential and APIKeyByHash would; a missing one is not an
	// error, only not found.
	ExchangeCredentials(ctx context.Context, clientID, keyHash string) (ExchangeCredentials, error)
	// ListAPIKeys lists one page of the instance's API keys (of one owner
	// unless ownerID is ""), by owner, then name.
	ListAPIKeys(ctx context.Context, instanceID, ownerID string, pg Page) ([]APIKey, error)
	// SetAPIKeyLocked locks or unlocks a key; locking starts a new token
	// epoch, so tokens minted before stay refused after an unlock.
	SetAPIKeyLocked(ctx context.Context, instanceID, id string, locked bool) error
	DeleteAPIKey(ctx context.Context, instanceID, id string) error
	TouchAPIKey(ctx context.Context, id string, at time.Time) error
	// RecordUse writes last-used times of API keys and client
	// credentials in one transaction.
	RecordUse(ctx context.Context, keys, clients map[string]time.Time) error

	CreateClientCredential(ctx context.Context, c ClientCredential) error
	GetClientCredential(ctx context.Context, clientID string) (ClientCredential, error)
	GetClientCredentialByName(ctx context.Context, instanceID, name string) (ClientCredential, error)
	// ListClientCredentials lists one page of the instance's public API
	// credentials, by name.
	ListClientCredentials(ctx context.Context, instanceID string, pg Page) ([]ClientCredential, error)
	// ListOwnedClientCredentials lists one page of the credentials an
	// identity owns (Airbyte's applications), by name.
	ListOwnedClientCredentials(ctx context.Context, instanceID, ownerID string, pg Page) ([]ClientCredential, error)
	UpdateClientCredentialDescription(ctx context.Context, instanceID, name, description string) error
	DeleteClientCredential(ctx context.Context, instanceID, name string) error
	TouchClientCredential(ctx context.Context, clientID string, at time.Time) error

	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	InsertSigningKey(ctx context.Context, k SigningKey) error

	RevokeToken(ctx context.Context, jti string, expiresAt, now time.Time) error
	// GrantState reads, in one query, the current state of what a token
	// was minted from: its client, its API key (keyID may be ""), its
	// subject and its jti.
	GrantState(ctx context.Context, clientID, keyID, subjectID, jti string) (GrantState, error)

	GetSetting(ctx context.Context, key string) (string, error)
	PutSettingIfAbsent(ctx context.Context, key, value string) error
	// PutSetting stores a setting, replacing the one there.
	PutSetting(ctx context.Context, key, value string) error

	InsertAuditEvents(ctx context.Context, evs []AuditEvent) error
	// Audited runs fn and writes ev in one transaction: the change fn
	// makes and its audit record are committed together, or neither is.
	// Every store call fn makes with the context it is given joins the
	// transaction; fn's error rolls it back and is returned.
	Audited(ctx context.Context, ev AuditEvent, fn func(ctx context.Context) error) error
	// Locked runs fn in one transaction holding the instance's write
	// lock: fn's of one instance run one after another, so a check fn
	// makes (a quota) and the write it allows are one step. Every store
	// call fn makes with the context it is given joins the transaction;
	// fn's error rolls it back and is returned. ErrNotFound: no instance.
	Locked(ctx context.Context, instanceID string, fn func(ctx context.Context) error) error
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
	// PruneAuditEvents deletes at most limit of the events older than
	// before, oldest first, and says how many went: retention works in
	// small batches so it never holds the table for long.
	PruneAuditEvents(ctx context.Context, before time.Time, limit int) (int64, error)
	// AnalyzeAudit refreshes the query planner's statistics of the audit.
	AnalyzeAudit(ctx context.Context) error

	KeyRefreshTokens
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func (s *sqlStore) Bootstrap(ctx context.Context, n NewInstance) (bool, error) {
	done := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		// The settings row is the marker: its primary key lets exactly one
		// process insert it, however many start at once.
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO settings (key, value) VALUES ('bootstrapped', $1)`), n.Instance.ID); err != nil {
			if s.d.isUnique(err) {
				return errAlreadyBootstrapped
			}
			return s.mapErr("mark bootstrap", err)
		}
		done = true
		return s.createInstanceTx(ctx, tx, n)
	})
	if errors.Is(err, errAlreadyBootstrapped) {
		return false, nil
	}
	return done, err
}

var errAlreadyBootstrapped = errors.New("already bootstrapped")

func (s *sqlStore) CreateInstance(ctx context.Context, n NewInstance) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.createInstanceTx(ctx, tx, n) })
}

func (s *sqlStore) createInstanceTx(ctx context.Context, tx *sql.Tx, n NewInstance) error {
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO instances (id, name, created_at) VALUES ($1, $2, $3)`),
		n.Instance.ID, n.Instance.Name, ms(n.Instance.CreatedAt)); err != nil {
		return s.mapErr("create instance", err)
	}
	if err := s.insertSandbox(ctx, tx, n.Instance); err != nil {
		return err
	}
	if err := s.insertIdentity(ctx, tx, n.Admin); err != nil {
		return err
	}
	if err := s.insertAPIKey(ctx, tx, n.Key); err != nil {
		return err
	}
	return s.insertClientCredential(ctx, tx, n.Credential)
}

func (s *sqlStore) GetInstance(ctx context.Context, id string) (Instance, error) {
	var in Instance
	var at int64
	err := s.queryRow(ctx, `SELECT id, name, created_at FROM instances WHERE id = $1`, id).Scan(&in.ID, &in.Name, &at)
	in.CreatedAt = fromMS(at)
	return in, s.mapErr("read instance", err)
}

func (s *sqlStore) ListInstances(ctx context.Context) ([]Instance, error) {
	rows, err := s.query(ctx, `SELECT id, name, created_at FROM instances ORDER BY created_at, id`)
	if err != nil {
		return nil, s.mapErr("list instances", err)
	}
	defer rows.Close()
	var out []Instance
	for rows.Next() {
		var in Instance
		var at int64
		if err := rows.Scan(&in.ID, &in.Name, &at); err != nil {
			return nil, s.mapErr("read instance", err)
		}
		in.CreatedAt = fromMS(at)
		out = append(out, in)
	}
	return out, s.mapErr("list instances", rows.Err())
}

// execer is what both *sql.DB and *sql.Tx offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func (s *sqlStore) insertIdentity(ctx context.Context, ex execer, id Identity) error {
	_, err := ex.ExecContext(ctx, s.q(`INSERT INTO identities
		(id, instance_id, kind, name, description, role, password_hash, session_epoch, created_at, created_by, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`),
		id.ID, id.InstanceID, id.Kind, id.Name, id.Description, id.Role, id.PasswordHash, id.SessionEpoch,
		ms(id.CreatedAt), id.CreatedBy, ms(id.UpdatedAt))
	return s.mapErr("create "+id.Kind, err)
}

func (s *sqlStore) CreateIdentity(ctx context.Context, id Identity) error {
	return s.insertIdentity(ctx, s.db, id)
}

func (s *sqlStore) UpdateIdentity(ctx context.Context, id Identity) error {
	// The epoch only moves forward, whatever a concurrent update wrote.
	res, err := s.exec(ctx, `UPDATE identities SET description = $1, role = $2, password_hash = $3, updated_at = $4,
		session_epoch = CASE WHEN session_epoch < $5 THEN $5 ELSE session_epoch END
		WHERE instance_id = $6 AND kind = $7 AND name = $8`,
		id.Description, id.Role, id.PasswordHash, ms(id.UpdatedAt), id.SessionEpoch, id.InstanceID, id.Kind, id.Name)
	return s.affectedOne("update "+id.Kind, res, err)
}

// affectedOne maps "no row changed" to ErrNotFound.
func (s *sqlStore) affectedOne(op string, res sql.Result, err error) error {
	if err != nil {
		return s.mapErr(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.mapErr(op, err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

const identityCols = `id, instance_id, kind, name, description, role, password_hash, session_epoch, created_at, created_by, updated_at`

func scanIdentity(sc scanner) (Identity, error) {
	var id Identity
	var c, u int64
	err := sc.Scan(&id.ID, &id.InstanceID, &id.Kind, &id.Name, &id.Description, &id.Role, &id.PasswordHash, &id.SessionEpoch, &c, &id.CreatedBy, &u)
	id.CreatedAt, id.UpdatedAt = fromMS(c), fromMS(u)
	return id, err
}

func (s *sqlStore) GetIdentity(ctx context.Context, instanceID, kind, name string) (Identity, error) {
	id, err := scanIdentity(s.queryRow(ctx, `SELECT `+identityCols+` FROM identities WHERE instance_id = $1 AND kind = $2 AND name = $3`, instanceID, kind, name))
	return id, s.mapErr("read identity", err)
}

func (s *sqlStore) GetIdentityByID(ctx context.Context, idv string) (Identity, error) {
	id, err := scanIdentity(s.queryRow(ctx, `SELECT `+identityCols+` FROM identities WHERE id = $1`, idv))
	return id, s.mapErr("read identity", err)
}

// PageKey is an identity's position in its list: by name (one kind).
func (id Identity) PageKey() []string { return []string{id.Name} }

var identityList = listQuery{op: "list identities", cols: identityCols, from: "FROM identities",
	where: "instance_id = $1 AND kind = $2", key: []keyCol{{expr: "name"}}}

func (s *sqlStore) ListIdentities(ctx context.Context, instanceID, kind string, pg Page) ([]Identity, error) {
	return listRows(ctx, s, identityList, pg, scanIdentity, instanceID, kind)
}

func (s *sqlStore) DeleteIdentity(ctx context.Context, instanceID, kind, name string) error {
	// API keys and owned credentials go with their owner (ON DELETE CASCADE).
	res, err := s.exec(ctx, `DELETE FROM identities WHERE instance_id = $1 AND kind = $2 AND name = $3`, instanceID, kind, name)
	return s.affectedOne("delete identity", res, err)
}

func (s *sqlStore) insertAPIKey(ctx context.Context, ex execer, k APIKey) error {
	_, err := ex.ExecContext(ctx, s.q(`INSERT INTO api_keys
		(id, instance_id, owner_id, name, description, key_hash, key_hint, expires_at, locked, created_at, created_by, last_used_at,
		owner_kind, owner_name)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
		COALESCE((SELECT kind FROM identities WHERE id = $3), ''), COALESCE((SELECT name FROM identities WHERE id = $3), ''))`),
		k.ID, k.InstanceID, k.OwnerID, k.Name, k.Description, k.KeyHash, k.KeyHint, ms(k.ExpiresAt), boolInt(k.Locked),
		ms(k.CreatedAt), k.CreatedBy, ms(k.LastUsedAt))
	return s.mapErr("create API key", err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (s *sqlStore) CreateAPIKey(ctx context.Context, k APIKey) error {
	return s.insertAPIKey(ctx, s.db, k)
}

const apiKeyCols = `k.id, k.instance_id, k.owner_id, k.name, k.description, k.key_hash, k.key_hint, k.expires_at, k.locked,
	k.token_epoch, k.created_at, k.created_by, k.last_used_at, i.kind, i.name, i.role`

const apiKeyFrom = ` FROM api_keys k JOIN identities i ON i.id = k.owner_id `

func scanAPIKey(sc scanner) (APIKey, error) {
	var k APIKey
	var exp, c, used int64
	var locked int
	err := sc.Scan(&k.ID, &k.InstanceID, &k.OwnerID, &k.Name, &k.Description, &k.KeyHash, &k.KeyHint, &exp, &locked,
		&k.TokenEpoch, &c, &k.CreatedBy, &used, &k.OwnerKind, &k.OwnerName, &k.OwnerRole)
	k.ExpiresAt, k.CreatedAt, k.LastUsedAt, k.Locked = fromMS(exp), fromMS(c), fromMS(used), locked != 0
	return k, err
}

func (s *sqlStore) GetAPIKey(ctx context.Context, instanceID, id string) (APIKey, error) {
	k, err := scanAPIKey(s.queryRow(ctx, `SELECT `+apiKeyCols+apiKeyFrom+`WHERE k.instance_id = $1 AND k.id = $2`, instanceID, id))
	return k, s.mapErr("read API key", err)
}

func (s *sqlStore) APIKeyByHash(ctx context.Context, hash string) (APIKey, error) {
	k, err := scanAPIKey(s.queryRow(ctx, `SELECT `+apiKeyCols+apiKeyFrom+`WHERE k.key_hash = $1`, hash))
	return k, s.mapErr("read API key", err)
}

// PageKey is an API key's position in its list: by its owner's kind and
// name, then its own name (unique per owner), then its id.
func (k APIKey) PageKey() []string { return []string{k.OwnerKind, k.OwnerName, k.Name, k.ID} }

// apiKeyList is an instance's API keys, apiKeyOwnerList one owner's (two
// queries, so that each has a plan that reads its own index: see appList).
// The owner's kind and name as the key keeps them (migration 0018): the
// order of the indexes api_keys_list and api_keys_owner_list.
var (
	apiKeyList = listQuery{op: "list API keys", cols: apiKeyCols, from: apiKeyFrom,
		where: "k.instance_id = $1", key: apiKeyOrder}
	apiKeyOwnerList = listQuery{op: "list an owner's API keys", cols: apiKeyCols, from: apiKeyFrom,
		where: "k.owner_id = $1 AND k.instance_id = $2", key: apiKeyOrder}
	apiKeyOrder = []keyCol{{expr: "k.owner_kind"}, {expr: "k.owner_name"}, {expr: "k.name"}, {expr: "k.id"}}
)

func (s *sqlStore) ListAPIKeys(ctx context.Context, instanceID, ownerID string, pg Page) ([]APIKey, error) {
	if ownerID != "" {
		return listRows(ctx, s, apiKeyOwnerList, pg, scanAPIKey, ownerID, instanceID)
	}
	return listRows(ctx, s, apiKeyList, pg, scanAPIKey, instanceID)
}

func (s *sqlStore) SetAPIKeyLocked(ctx context.Context, instanceID, id string, locked bool) error {
	res, err := s.exec(ctx, `UPDATE api_keys SET locked = $1, token_epoch = token_epoch + $2
		WHERE instance_id = $3 AND id = $4`, boolInt(locked), int64(boolInt(locked)), instanceID, id)
	return s.affectedOne("lock API key", res, err)
}

func (s *sqlStore) DeleteAPIKey(ctx context.Context, instanceID, id string) error {
	res, err := s.exec(ctx, `DELETE FROM api_keys WHERE instance_id = $1 AND id = $2`, instanceID, id)
	return s.affectedOne("delete API key", res, err)
}

func (s *sqlStore) TouchAPIKey(ctx context.Context, id string, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND last_used_at < $1`, ms(at), id)
	return s.mapErr("record API key use", err)
}

func (s *sqlStore) insertClientCredential(ctx context.Context, ex execer, c ClientCredential) error {
	var owner any
	if c.OwnerID != "" {
		owner = c.OwnerID
	}
	_, err := ex.ExecContext(ctx, s.q(`INSERT INTO client_credentials
		(client_id, instance_id, name, description, owner_id, secret_hash, secret_hint, created_at, created_by, last_used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`),
		c.ClientID, c.InstanceID, c.Name, c.Description, owner, c.SecretHash, c.SecretHint, ms(c.CreatedAt), c.CreatedBy, ms(c.LastUsedAt))
	return s.mapErr("create client credential", err)
}

func (s *sqlStore) CreateClientCredential(ctx context.Context, c ClientCredential) error {
	return s.insertClientCredential(ctx, s.db, c)
}

const credCols = `c.client_id, c.instance_id, c.name, c.description, COALESCE(c.owner_id, ''), c.secret_hash, c.secret_hint,
	c.created_at, c.created_by, c.last_used_at, COALESCE(i.kind, ''), COALESCE(i.name, ''), COALESCE(i.role, '')`

const credFrom = ` FROM client_credentials c LEFT JOIN identities i ON i.id = c.owner_id `

func scanCred(sc scanner) (ClientCredential, error) {
	var c ClientCredential
	var at, used int64
	err := sc.Scan(&c.ClientID, &c.InstanceID, &c.Name, &c.Description, &c.OwnerID, &c.SecretHash, &c.SecretHint,
		&at, &c.CreatedBy, &used, &c.OwnerKind, &c.OwnerName, &c.OwnerRole)
	c.CreatedAt, c.LastUsedAt = fromMS(at), fromMS(used)
	return c, err
}

func (s *sqlStore) GetClientCredential(ctx context.Context, clientID string) (ClientCredential, error) {
	c, err := scanCred(s.queryRow(ctx, `SELECT `+credCols+credFrom+`WHERE c.client_id = $1`, clientID))
	return c, s.mapErr("read client credential", err)
}

func (s *sqlStore) GetClientCredentialByName(ctx context.Context, instanceID, name string) (ClientCredential, error) {
	c, err := scanCred(s.queryRow(ctx, `SELECT `+credCols+credFrom+`WHERE c.instance_id = $1 AND c.name = $2`, instanceID, name))
	return c, s.mapErr("read client credential", err)
}

// PageKey is a credential's position in its list: by name.
func (c ClientCredential) PageKey() []string { return []string{c.Name} }

var credList = listQuery{op: "list client credentials", cols: credCols, from: credFrom,
	where: "c.instance_id = $1", key: []keyCol{{expr: "c.name"}}}

func (s *sqlStore) ListClientCredentials(ctx context.Context, instanceID string, pg Page) ([]ClientCredential, error) {
	return listRows(ctx, s, credList, pg, scanCred, instanceID)
}

var ownedCredList = listQuery{op: "list owned client credentials", cols: credCols, from: credFrom,
	where: "c.instance_id = $1 AND c.owner_id = $2", key: []keyCol{{expr: "c.name"}}}

func (s *sqlStore) ListOwnedClientCredentials(ctx context.Context, instanceID, ownerID string, pg Page) ([]ClientCredential, error) {
	return listRows(ctx, s, ownedCredList, pg, scanCred, instanceID, ownerID)
}

func (s *sqlStore) UpdateClientCredentialDescription(ctx context.Context, instanceID, name, description string) error {
	res, err := s.exec(ctx, `UPDATE client_credentials SET description = $1 WHERE instance_id = $2 AND name = $3`, description, instanceID, name)
	return s.affectedOne("update client credential", res, err)
}

func (s *sqlStore) DeleteClientCredential(ctx context.Context, instanceID, name string) error {
	res, err := s.exec(ctx, `DELETE FROM client_credentials WHERE instance_id = $1 AND name = $2`, instanceID, name)
	return s.affectedOne("delete client credential", res, err)
}

func (s *sqlStore) TouchClientCredential(ctx context.Context, clientID string, at time.Time) error {
	_, err := s.exec(ctx, `UPDATE client_credentials SET last_used_at = $1 WHERE client_id = $2 AND last_used_at < $1`, ms(at), clientID)
	return s.mapErr("record client credential use", err)
}

func (s *sqlStore) ListSigningKeys(ctx context.Context) ([]SigningKey, error) {
	rows, err := s.query(ctx, `SELECT kid, alg, sealed_private, public_jwk, created_at FROM signing_keys ORDER BY created_at, kid`)
	if err != nil {
		return nil, s.mapErr("list signing keys", err)
	}
	defer rows.Close()
	var out []SigningKey
	for rows.Next() {
		var k SigningKey
		var c int64
		if err := rows.Scan(&k.KID, &k.Alg, &k.SealedPrivate, &k.PublicJWK, &c); err != nil {
			return nil, s.mapErr("read signing key", err)
		}
		k.CreatedAt = fromMS(c)
		out = append(out, k)
	}
	return out, s.mapErr("list signing keys", rows.Err())
}

func (s *sqlStore) InsertSigningKey(ctx context.Context, k SigningKey) error {
	_, err := s.exec(ctx, `INSERT INTO signing_keys (kid, alg, sealed_private, public_jwk, created_at) VALUES ($1, $2, $3, $4, $5)`,
		k.KID, k.Alg, k.SealedPrivate, k.PublicJWK, ms(k.CreatedAt))
	return s.mapErr("insert signing key", err)
}

func (s *sqlStore) RevokeToken(ctx context.Context, jti string, expiresAt, now time.Time) error {
	_, err := s.exec(ctx, `INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO NOTHING`, jti, ms(expiresAt))
	if err != nil {
		return s.mapErr("revoke token", err)
	}
	// Forget revocations of tokens that have expired anyway. The caller's
	// clock decides what "expired" means, never the machine's: a token
	// checked against a test clock must not lose its revocation to the wall.
	_, err = s.exec(ctx, `DELETE FROM revoked_tokens WHERE expires_at < $1`, ms(now))
	return s.mapErr("prune revoked tokens", err)
}

// readGrantState is GrantState's one query (see grantcache.go for when it
// runs).
func (s *sqlStore) readGrantState(ctx context.Context, clientID, keyID, subjectID, jti string) (GrantState, error) {
	var g GrantState
	var keyLocked, keyExp int64
	err := s.queryRow(ctx, `SELECT
			COALESCE((SELECT c.instance_id FROM client_credentials c WHERE c.client_id = $1), ''),
			COALESCE((SELECT k.locked FROM api_keys k WHERE k.id = $2), -1),
			COALESCE((SELECT k.expires_at FROM api_keys k WHERE k.id = $2), 0),
			COALESCE((SELECT k.token_epoch FROM api_keys k WHERE k.id = $2), 0),
			COALESCE((SELECT i.role FROM identities i WHERE i.id = $3), ''),
			COALESCE((SELECT i.kind FROM identities i WHERE i.id = $3), ''),
			COALESCE((SELECT i.name FROM identities i WHERE i.id = $3), ''),
			(SELECT COUNT(*) FROM revoked_tokens r WHERE r.jti = $4)`,
		clientID, keyID, subjectID, jti).Scan(&g.ClientInstance, &keyLocked, &keyExp, &g.KeyEpoch, &g.SubjectRole, &g.SubjectKind, &g.SubjectName, &g.Revoked)
	if err != nil {
		return g, s.mapErr("read grant state", err)
	}
	g.ClientExists = g.ClientInstance != ""
	g.KeyExists = keyLocked >= 0
	g.KeyLocked = keyLocked == 1
	g.KeyExpiresAt = fromMS(keyExp)
	return g, nil
}

// InsertAuditEvents writes a batch of the audit pipeline (SQLite's: its
// placeholders are SQLite's; audit_pg.go has PostgreSQL's) in multi-row inserts of 1, 2, 4 … 64 rows:
// a batch of n events takes as many statements as n has bits set, at most
// one of each size, each prepared once. One statement per event cost a
// database/sql call, a driver step and a context watch for each, about
// half of the audit's CPU. A batch that one statement writes needs no
// transaction around it — a statement is atomic — and a larger one is a
// transaction of its statements: every event of the batch is committed,
// or none is, and the pipeline acknowledges them on that one outcome.
func (s *sqlStore) InsertAuditEvents(ctx context.Context, evs []AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	args := make([]any, 0, auditColumns*min(len(evs), maxAuditInsertRows))
	write := func(exec func(st *sql.Stmt, args []any) error) error {
		for rest := evs; len(rest) > 0; {
			size := auditInsertSize(len(rest))
			args = args[:0]
			for _, e := range rest[:size] {
				args = append(args, e.ID, ms(e.At), e.InstanceID, e.Actor, e.Action, e.Object, e.Outcome, e.Source, e.RequestID, e.Detail)
			}
			st, err := s.stmt(ctx, auditInsertText(size))
			if err == nil {
				err = exec(st, args)
			}
			if err != nil {
				return s.mapErr("write audit events", err)
			}
			rest = rest[size:]
		}
		return nil
	}
	if auditInsertSize(len(evs)) == len(evs) && s.txOf(ctx) == nil {
		defer s.timed(auditInsertText(len(evs)), clock.StartStopwatch())
		return write(func(st *sql.Stmt, args []any) error {
			_, err := st.ExecContext(ctx, args...)
			return err
		})
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		return write(func(st *sql.Stmt, args []any) error {
			_, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...)
			return err
		})
	})
}

// auditColumns is how many values an audit event's row carries;
// maxAuditInsertRows bounds the rows of one insert (640 parameters, far
// below SQLite's 32,766).
const auditColumns, maxAuditInsertRows = 10, 64

// auditInsertSize is the rows of the next insert for n events: the
// largest power of two at most n, up to maxAuditInsertRows.
func auditInsertSize(n int) int {
	return min(1<<(bits.Len(uint(n))-1), maxAuditInsertRows)
}

// auditInsertTexts holds the insert of each size, built once.
var auditInsertTexts sync.Map // rows -> string

func auditInsertText(rows int) string {
	if v, ok := auditInsertTexts.Load(rows); ok {
		return v.(string)
	}
	var b strings.Builder
	b.WriteString(`INSERT INTO audit_events (id, at, instance_id, actor, action, object, outcome, source, request_id, detail) VALUES `)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		// Anonymous parameters, not the $N every other statement is
		// written with (and SQLite gets as ?N): the driver asks SQLite
		// for each parameter's name, a scan of the statement's list of
		// names, so 640 numbered ones cost a quadratic third of the
		// insert. Unnamed, they bind in order.
		b.WriteString("(?" + strings.Repeat(", ?", auditColumns-1) + ")")
	}
	v, _ := auditInsertTexts.LoadOrStore(rows, b.String())
	return v.(string)
}

func (s *sqlStore) Audited(ctx context.Context, ev AuditEvent, fn func(ctx context.Context) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := fn(context.WithValue(ctx, txKey{s}, tx)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO audit_events
			(id, at, instance_id, actor, action, object, outcome, source, request_id, detail)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`),
			ev.ID, ms(ev.At), ev.InstanceID, ev.Actor, ev.Action, ev.Object, ev.Outcome, ev.Source, ev.RequestID, ev.Detail)
		return s.mapErr("write audit event", err)
	})
}

func (s *sqlStore) Locked(ctx context.Context, instanceID string, fn func(ctx context.Context) error) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		// SQLite's transactions take the database's write lock at BEGIN
		// (_txlock=immediate), which serialises them already; PostgreSQL
		// locks the instance's row until the transaction ends.
		lock := `SELECT id FROM instances WHERE id = $1`
		if s.d.name == "postgres" {
			lock += ` FOR UPDATE`
		}
		var id string
		if err := tx.QueryRowContext(ctx, s.q(lock), instanceID).Scan(&id); err != nil {
			return s.mapErr("lock instance "+instanceID, err)
		}
		return fn(context.WithValue(ctx, txKey{s}, tx))
	})
}

func (s *sqlStore) ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	query, args := auditListQuery(f)
	rows, err := s.queryPlanned(ctx, query, args...)
	if err != nil {
		return nil, s.mapErr("list audit events", err)
	}
	defer rows.Close()
	var out []AuditEvent
	for rows.Next() {
		var e AuditEvent
		var at int64
		if err := rows.Scan(&e.ID, &at, &e.InstanceID, &e.Actor, &e.Action, &e.Object, &e.Outcome, &e.Source, &e.RequestID, &e.Detail); err != nil {
			return nil, s.mapErr("read audit event", err)
		}
		e.At = fromMS(at)
		out = append(out, e)
	}
	return out, s.mapErr("list audit events", rows.Err())
}

// auditListQuery is the SQL of one page of f. Only the conditions f sets
// are written — a catch-all such as ($2 = ” OR actor = $2) would keep
// both planners from using the filter's index — so a page is a backward
// range scan of one index ending in (at, id), in the answer's order,
// stopping after limit rows. The keyset condition is spelt as a bound on
// at plus a tie-break, which both SQLite and PostgreSQL turn into the
// range's end. There are at most 2^6 texts, each prepared once.
func auditListQuery(f AuditFilter) (string, []any) {
	limit := f.Limit
	if limit <= 0 {
		limit = 1000
	}
	limit = min(limit, 100_000)
	var b strings.Builder
	b.WriteString(`SELECT id, at, instance_id, actor, action, object, outcome, source, request_id, detail
		FROM audit_events WHERE instance_id = $1`)
	args := []any{f.InstanceID}
	cond := func(sqlFmt string, v any) {
		args = append(args, v)
		fmt.Fprintf(&b, sqlFmt, len(args))
	}
	if f.Actor != "" {
		cond(` AND actor = $%d`, f.Actor)
	}
	if f.Action != "" {
		cond(` AND action = $%d`, f.Action)
	}
	if f.Object != "" {
		cond(` AND object = $%d`, f.Object)
	}
	if !f.Since.IsZero() {
		cond(` AND at >= $%d`, ms(f.Since))
	}
	if !f.Until.IsZero() {
		cond(` AND at < $%d`, ms(f.Until))
	}
	if f.Below.ID != "" {
		args = append(args, f.Below.At.UnixMilli(), f.Below.ID)
		n := len(args)
		fmt.Fprintf(&b, ` AND at <= $%d AND (at < $%d OR id < $%d)`, n-1, n-1, n)
	}
	args = append(args, limit)
	fmt.Fprintf(&b, ` ORDER BY at DESC, id DESC LIMIT $%d`, len(args))
	return b.String(), args
}

func (s *sqlStore) PruneAuditEvents(ctx context.Context, before time.Time, limit int) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM audit_events WHERE id IN
		(SELECT id FROM audit_events WHERE at < $1 ORDER BY at LIMIT $2)`, ms(before), limit)
	if err != nil {
		return 0, s.mapErr("prune audit events", err)
	}
	n, err := res.RowsAffected()
	return n, s.mapErr("prune audit events", err)
}

// AnalyzeAudit refreshes the planner's statistics of the audit table:
// the control plane calls it after many events were written (see
// iam.Auditor), so that a table grown fast is not planned as the small one
// it was. On SQLite the analysis reads a sample of each index
// (analysis_limit), so it stays a few milliseconds at millions of rows.
func (s *sqlStore) AnalyzeAudit(ctx context.Context) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.mapErr("analyze the audit table", err)
	}
	defer conn.Close()
	if s.d.name == "sqlite" {
		if _, err := conn.ExecContext(ctx, `PRAGMA analysis_limit = 1000`); err != nil {
			return s.mapErr("analyze the audit table", err)
		}
	}
	_, err = conn.ExecContext(ctx, `ANALYZE audit_events`)
	return s.mapErr("analyze the audit table", err)
}

var _ = fmt.Sprintf

// InstanceSetting is the settings key of an instance's own setting name
// (such as its egress allow-list): "<name>/<instance id>". Such settings
// are removed together with their instance (DeleteInstance).
func InstanceSetting(name, instanceID string) string { return name + "/" + instanceID }

// GetSetting reads one control-plane setting.
func (s *sqlStore) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.queryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	return v, s.mapErr("read setting "+key, err)
}

// PutSettingIfAbsent stores a setting unless one is there already.
func (s *sqlStore) PutSettingIfAbsent(ctx context.Context, key, value string) error {
	_, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, value)
	return s.mapErr("write setting "+key, err)
}

// PutSetting stores a setting, replacing the one there.
func (s *sqlStore) PutSetting(ctx context.Context, key, value string) error {
	_, err := s.exec(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return s.mapErr("write setting "+key, err)
}

func (s *sqlStore) RecordUse(ctx context.Context, keys, clients map[string]time.Time) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for id, at := range keys {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND last_used_at < $1`), ms(at), id); err != nil {
				return s.mapErr("record API key use", err)
			}
		}
		for id, at := range clients {
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE client_credentials SET last_used_at = $1 WHERE client_id = $2 AND last_used_at < $1`), ms(at), id); err != nil {
				return s.mapErr("record client credential use", err)
			}
		}
		return nil
	})
}

// ExchangeCredentials is what an API-key exchange checks, read at once: the
// client credential of clientID and the API key of keyHash, each with its
// owner, and whether each was found.
type ExchangeCredentials struct {
	Client      ClientCredential
	ClientFound bool
	Key         APIKey
	KeyFound    bool
}

// The two lookups of the exchange as one statement: a one-row anchor with
// each lookup left-joined to it, so either may be missing. On PostgreSQL a
// statement is a round trip, and the exchange's CPU is mostly spent on
// round trips.
var exchangeCredentialsQuery = `SELECT c.*, k.* FROM (SELECT 1 AS one) o
	LEFT JOIN (SELECT ` + credCols + credFrom + `WHERE c.client_id = $1) c ON 1 = 1
	LEFT JOIN (SELECT ` + apiKeyCols + apiKeyFrom + `WHERE k.key_hash = $2) k ON 1 = 1`

const credColCount, apiKeyColCount = 13, 16

func (s *sqlStore) readExchangeCredentials(ctx context.Context, clientID, keyHash string) (ExchangeCredentials, error) {
	var ec ExchangeCredentials
	vals := make([]any, credColCount+apiKeyColCount)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := s.queryRow(ctx, exchangeCredentialsQuery, clientID, keyHash).Scan(ptrs...); err != nil {
		return ec, s.mapErr("read the exchange's credentials", err)
	}
	var err error
	if ec.ClientFound = vals[0] != nil; ec.ClientFound {
		ec.Client, err = scanCred(replay(vals[:credColCount]))
	}
	if ec.KeyFound = vals[credColCount] != nil; ec.KeyFound && err == nil {
		ec.Key, err = scanAPIKey(replay(vals[credColCount:]))
	}
	return ec, s.mapErr("read the exchange's credentials", err)
}

// replay scans values already read from a row (as database/sql hands them
// to *any) into the usual scan targets, so one row can feed several of
// the package's scan functions.
type replay []any

func (r replay) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("store: %d columns scanned into %d targets", len(r), len(dest))
	}
	for i, d := range dest {
		switch d := d.(type) {
		case *string:
			switch v := r[i].(type) {
			case string:
				*d = v
			case []byte:
				*d = string(v)
			case nil:
				*d = ""
			default:
				return fmt.Errorf("store: column %d is %T, not text", i, v)
			}
		case *int64, *int:
			var n int64
			switch v := r[i].(type) {
			case int64:
				n = v
			case int32:
				n = int64(v)
			case nil:
			default:
				return fmt.Errorf("store: column %d is %T, not an integer", i, v)
			}
			if p, ok := d.(*int); ok {
				*p = int(n)
			} else {
				*d.(*int64) = n
			}
		default:
			return fmt.Errorf("store: cannot replay into %T", d)
		}
	}
	return nil
}
