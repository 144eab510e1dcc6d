package store

import (
	"context"
	"database/sql"
	"time"
)

// RefreshToken is what a refresh token stands for; the token itself is
// never stored, only its hash.
type RefreshToken struct {
	Hash       string
	InstanceID string
	ClientID   string
	SubjectID  string
	KeyID      string // "" when it came from a password
	ExpiresAt  time.Time
}

// RefreshTokens keeps refresh tokens. TakeRefreshToken deletes the token
// it returns, so each one is used once; ErrNotFound when unknown or
// expired at now.
type RefreshTokens interface {
	PutRefreshToken(ctx context.Context, t RefreshToken) error
	TakeRefreshToken(ctx context.Context, hash string, now time.Time) (RefreshToken, error)
}

func (s *sqlStore) PutRefreshToken(ctx context.Context, t RefreshToken) error {
	_, err := s.exec(ctx, `INSERT INTO refresh_tokens (token_hash, instance_id, client_id, subject_id, key_id, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`, t.Hash, t.InstanceID, t.ClientID, t.SubjectID, t.KeyID, ms(t.ExpiresAt))
	return s.mapErr("store a refresh token", err)
}

func (s *sqlStore) TakeRefreshToken(ctx context.Context, hash string, now time.Time) (RefreshToken, error) {
	var t RefreshToken
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var exp int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT token_hash, instance_id, client_id, subject_id, key_id, expires_at
			FROM refresh_tokens WHERE token_hash = $1`), hash).Scan(&t.Hash, &t.InstanceID, &t.ClientID, &t.SubjectID, &t.KeyID, &exp)
		if err != nil {
			return s.mapErr("read a refresh token", err)
		}
		t.ExpiresAt = fromMS(exp)
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE token_hash = $1`), hash)
		if err := s.affectedOne("use a refresh token", res, err); err != nil {
			return err
		}
		// Forget expired ones while here.
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens WHERE expires_at <= $1`), ms(now))
		return s.mapErr("prune refresh tokens", err)
	})
	if err == nil && !now.Before(t.ExpiresAt) {
		return RefreshToken{}, ErrNotFound
	}
	return t, err
}
