package store

import (
	"context"
	"database/sql"
	"time"
)

// DashboardSession is one logged-in browser of the dashboard (migration
// 0014). The store keys it by the hash of its id; the id itself lives
// only in the browser's cookie.
type DashboardSession struct {
	IDHash      string
	InstanceID  string
	IdentityID  string
	SubjectName string
	Epoch       int64 // the identity's session epoch at login
	CSRF        string
	Flash       string // a message for the next page, "" when none
	CreatedAt   time.Time
	SeenAt      time.Time
}

// DashboardSessions keeps the dashboard's sessions where every replica
// sees them. Get, Touch, SetFlash, TakeFlash and Delete answer ErrNotFound
// for a session that is not (or no longer) there.
type DashboardSessions interface {
	PutDashboardSession(ctx context.Context, se DashboardSession) error
	GetDashboardSession(ctx context.Context, idHash string) (DashboardSession, error)
	// TouchDashboardSession records activity at seen.
	TouchDashboardSession(ctx context.Context, idHash string, seen time.Time) error
	SetDashboardSessionFlash(ctx context.Context, idHash, flash string) error
	// TakeDashboardSessionFlash returns the flash and clears it, once.
	TakeDashboardSessionFlash(ctx context.Context, idHash string) (string, error)
	DeleteDashboardSession(ctx context.Context, idHash string) error
	// DeleteExpiredDashboardSessions drops the sessions idle since before
	// seenBefore or opened before createdBefore, and says how many.
	DeleteExpiredDashboardSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int64, error)
}

func (s *sqlStore) PutDashboardSession(ctx context.Context, se DashboardSession) error {
	_, err := s.exec(ctx, `INSERT INTO dashboard_sessions (id_hash, instance_id, identity_id, subject_name, epoch, csrf, flash, created_at, seen_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, se.IDHash, se.InstanceID, se.IdentityID, se.SubjectName, se.Epoch, se.CSRF, se.Flash,
		ms(se.CreatedAt), ms(se.SeenAt))
	return s.mapErr("store a dashboard session", err)
}

func (s *sqlStore) GetDashboardSession(ctx context.Context, idHash string) (DashboardSession, error) {
	se := DashboardSession{IDHash: idHash}
	var created, seen int64
	err := s.queryRow(ctx, `SELECT instance_id, identity_id, subject_name, epoch, csrf, flash, created_at, seen_at
		FROM dashboard_sessions WHERE id_hash = $1`, idHash).
		Scan(&se.InstanceID, &se.IdentityID, &se.SubjectName, &se.Epoch, &se.CSRF, &se.Flash, &created, &seen)
	if err != nil {
		return DashboardSession{}, s.mapErr("read a dashboard session", err)
	}
	se.CreatedAt, se.SeenAt = fromMS(created), fromMS(seen)
	return se, nil
}

func (s *sqlStore) TouchDashboardSession(ctx context.Context, idHash string, seen time.Time) error {
	res, err := s.exec(ctx, `UPDATE dashboard_sessions SET seen_at = $1 WHERE id_hash = $2 AND seen_at < $1`, ms(seen), idHash)
	if err != nil {
		return s.mapErr("touch a dashboard session", err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		// Either gone or already seen later (by another replica): tell which.
		var one int
		return s.mapErr("touch a dashboard session", s.queryRow(ctx, `SELECT 1 FROM dashboard_sessions WHERE id_hash = $1`, idHash).Scan(&one))
	}
	return nil
}

func (s *sqlStore) SetDashboardSessionFlash(ctx context.Context, idHash, flash string) error {
	res, err := s.exec(ctx, `UPDATE dashboard_sessions SET flash = $1 WHERE id_hash = $2`, flash, idHash)
	return s.affectedOne("set a dashboard session's message", res, err)
}

func (s *sqlStore) TakeDashboardSessionFlash(ctx context.Context, idHash string) (string, error) {
	var flash string
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if err := tx.QueryRowContext(ctx, s.q(`SELECT flash FROM dashboard_sessions WHERE id_hash = $1`), idHash).Scan(&flash); err != nil {
			return s.mapErr("read a dashboard session's message", err)
		}
		if flash == "" {
			return nil
		}
		// Cleared only if still the same message, so two pages loading at
		// once show it once.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE dashboard_sessions SET flash = '' WHERE id_hash = $1 AND flash = $2`), idHash, flash)
		if err != nil {
			return s.mapErr("clear a dashboard session's message", err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			flash = ""
		}
		return nil
	})
	return flash, err
}

func (s *sqlStore) DeleteDashboardSession(ctx context.Context, idHash string) error {
	res, err := s.exec(ctx, `DELETE FROM dashboard_sessions WHERE id_hash = $1`, idHash)
	return s.affectedOne("delete a dashboard session", res, err)
}

func (s *sqlStore) DeleteExpiredDashboardSessions(ctx context.Context, seenBefore, createdBefore time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM dashboard_sessions WHERE seen_at < $1 OR created_at < $2`, ms(seenBefore), ms(createdBefore))
	if err != nil {
		return 0, s.mapErr("delete expired dashboard sessions", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
