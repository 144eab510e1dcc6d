package store

import (
	"context"
	"database/sql"
	"time"
)

// Refresh tokens of both token endpoints live in one table
// (refresh_tokens_all, migration 0011), told apart by their grant: "apic"
// for API Connect's POST /api/token (RefreshToken, here) and "iam" for
// IBM Cloud IAM's POST /identity/token (KeyRefreshToken, keyrefresh.go).
// Each is used once; a used one stays, marked, until it expires. Only
// hashes are stored.
const (
	grantAPIC = "apic"
	grantIAM  = "iam"
)

// RefreshToken is what a refresh token of POST /api/token stands for.
type RefreshToken struct {
	Hash       string
	InstanceID string
	ClientID   string
	SubjectID  string
	KeyID      string // "" when it came from a password or a client credential
	KeyEpoch   int64  // the key's token epoch at issue (APIKey.TokenEpoch)
	CreatedAt  time.Time
	ExpiresAt  time.Time
}

// RefreshTokens keeps API Connect's refresh tokens. TakeRefreshToken
// marks the token it returns used, so each one works once; ErrNotFound
// when it is unknown, used already (by a concurrent exchange too) or
// expired at now.
type RefreshTokens interface {
	PutRefreshToken(ctx context.Context, t RefreshToken) error
	TakeRefreshToken(ctx context.Context, hash string, now time.Time) (RefreshToken, error)
}

// nullKey stores "" as NULL: the key_id column references api_keys.
func nullKey(id string) sql.NullString { return sql.NullString{String: id, Valid: id != ""} }

func (s *sqlStore) PutRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := s.exec(ctx, `INSERT INTO refresh_tokens_all (id, token_hash, grant_kind, instance_id, client_id, subject_id, key_id, key_epoch, created_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0)`, "rt-"+t.Hash[:24], t.Hash, grantAPIC, t.InstanceID, t.ClientID, t.SubjectID, nullKey(t.KeyID),
		t.KeyEpoch, ms(t.CreatedAt), ms(t.ExpiresAt))
	return s.mapErr("store a refresh token", err)
}

func (s *sqlStore) TakeRefreshToken(ctx context.Context, hash string, now time.Time) (RefreshToken, error) {
	var t RefreshToken
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var exp int64
		var key sql.NullString
		err := tx.QueryRowContext(ctx, s.q(`SELECT token_hash, instance_id, client_id, subject_id, key_id, key_epoch, expires_at
			FROM refresh_tokens_all WHERE token_hash = $1 AND grant_kind = $2 AND used_at = 0`), hash, grantAPIC).
			Scan(&t.Hash, &t.InstanceID, &t.ClientID, &t.SubjectID, &key, &t.KeyEpoch, &exp)
		if err != nil {
			return s.mapErr("read a refresh token", err)
		}
		t.KeyID, t.ExpiresAt = key.String, fromMS(exp)
		res, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens_all SET used_at = $1 WHERE token_hash = $2 AND used_at = 0`), ms(now), hash)
		if err := s.affectedOne("use a refresh token", res, err); err != nil {
			return err
		}
		// Forget expired ones while here.
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens_all WHERE expires_at <= $1`), ms(now))
		return s.mapErr("prune refresh tokens", err)
	})
	if err == nil && !now.Before(t.ExpiresAt) {
		return RefreshToken{}, ErrNotFound
	}
	return t, err
}
