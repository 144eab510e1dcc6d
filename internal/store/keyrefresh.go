package store

import (
	"context"
	"database/sql"
	"time"
)

// KeyRefreshToken is a single-use refresh token of the IBM Cloud IAM
// exchange, bound to the API key it came from and to the client (if any)
// that authenticated when it was issued. (API Connect's refresh tokens are
// RefreshToken, in refresh.go; both live in refresh_tokens_all.)
type KeyRefreshToken struct {
	ID         string
	Hash       string
	InstanceID string
	KeyID      string
	KeyEpoch   int64  // the key's token epoch at issue (APIKey.TokenEpoch)
	ClientID   string // "" when no client authenticated
	CreatedAt  time.Time
	ExpiresAt  time.Time
	UsedAt     time.Time // zero until it is exchanged
}

// KeyRefreshTokens keeps KeyRefreshTokens. A used token stays (marked
// used) until it expires, so a second use is told apart from an unknown
// token, and checking one changes nothing.
type KeyRefreshTokens interface {
	// CreateKeyRefreshToken stores a new refresh token and forgets those
	// that expired before t.CreatedAt.
	CreateKeyRefreshToken(ctx context.Context, t KeyRefreshToken) error
	// KeyRefreshTokenByHash reads a refresh token, used or not.
	KeyRefreshTokenByHash(ctx context.Context, hash string) (KeyRefreshToken, error)
	// RotateKeyRefreshToken marks the unused token with oldHash used at
	// usedAt and stores next, in one transaction. It returns ErrConflict,
	// changing nothing, when the old token was used already (by a
	// concurrent exchange too), and ErrNotFound when it is gone.
	RotateKeyRefreshToken(ctx context.Context, oldHash string, usedAt time.Time, next KeyRefreshToken) error
}

func (s *sqlStore) insertKeyRefreshToken(ctx context.Context, ex execer, t KeyRefreshToken) error {
	_, err := ex.ExecContext(ctx, s.q(`INSERT INTO refresh_tokens_all
		(id, token_hash, grant_kind, instance_id, key_id, key_epoch, client_id, created_at, expires_at, used_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0)`),
		t.ID, t.Hash, grantIAM, t.InstanceID, t.KeyID, t.KeyEpoch, t.ClientID, ms(t.CreatedAt), ms(t.ExpiresAt))
	if err != nil {
		return s.mapErr("create refresh token", err)
	}
	_, err = ex.ExecContext(ctx, s.q(`DELETE FROM refresh_tokens_all WHERE expires_at < $1`), ms(t.CreatedAt))
	return s.mapErr("prune refresh tokens", err)
}

func (s *sqlStore) CreateKeyRefreshToken(ctx context.Context, t KeyRefreshToken) error {
	return s.inTx(ctx, func(tx *sql.Tx) error { return s.insertKeyRefreshToken(ctx, tx, t) })
}

func (s *sqlStore) KeyRefreshTokenByHash(ctx context.Context, hash string) (KeyRefreshToken, error) {
	var t KeyRefreshToken
	var created, expires, used int64
	err := s.queryRow(ctx, `SELECT id, token_hash, instance_id, key_id, key_epoch, client_id, created_at, expires_at, used_at
		FROM refresh_tokens_all WHERE token_hash = $1 AND grant_kind = $2`, hash, grantIAM).
		Scan(&t.ID, &t.Hash, &t.InstanceID, &t.KeyID, &t.KeyEpoch, &t.ClientID, &created, &expires, &used)
	t.CreatedAt, t.ExpiresAt, t.UsedAt = fromMS(created), fromMS(expires), fromMS(used)
	return t, s.mapErr("read refresh token", err)
}

func (s *sqlStore) RotateKeyRefreshToken(ctx context.Context, oldHash string, usedAt time.Time, next KeyRefreshToken) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE refresh_tokens_all SET used_at = $1 WHERE token_hash = $2 AND grant_kind = $3 AND used_at = 0`), ms(usedAt), oldHash, grantIAM)
		if err != nil {
			return s.mapErr("use refresh token", err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			var one int
			if err := tx.QueryRowContext(ctx, s.q(`SELECT 1 FROM refresh_tokens_all WHERE token_hash = $1 AND grant_kind = $2`), oldHash, grantIAM).Scan(&one); err != nil {
				return s.mapErr("read refresh token", err)
			}
			return ErrConflict
		}
		return s.insertKeyRefreshToken(ctx, tx, next)
	})
}
