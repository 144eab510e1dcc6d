package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// RateWindows holds rate-limit counters every replica sees (migration
// 0019), so a client's limit holds across control planes. A replica does
// not count each request here: it reserves a slice of a key's quota and
// spends it locally (iam.RateLimiter), so the hot path pays one round trip
// per slice, not per request.
type RateWindows interface {
	// ReserveRate reserves part of key's quota of limit requests in the
	// window starting at start: at most maxGrant, and at most an eighth of
	// what is left (at least 1), so that quota parked on a replica that
	// stops receiving traffic is small when the quota is nearly spent.
	// granted is 0 when the window's quota is spent; used is what all
	// replicas have reserved in the window, this grant included.
	ReserveRate(ctx context.Context, key string, start time.Time, limit, maxGrant int) (granted, used int, err error)
	// DeleteRateWindowsBefore drops the counters of windows that started
	// before t (ended ones) and says how many.
	DeleteRateWindowsBefore(ctx context.Context, t time.Time) (int64, error)
}

// The grant is computed by the upsert itself, from the count it updates,
// so replicas reserving at the same instant never over-reserve: the row
// lock orders them and each sees the other's reservation.
func (s *sqlStore) ReserveRate(ctx context.Context, key string, start time.Time, limit, maxGrant int) (int, int, error) {
	if limit < 1 || maxGrant < 1 {
		return 0, 0, errors.New("store: a rate reservation needs a limit and a grant of at least 1")
	}
	first := min(maxGrant, (limit+7)/8)
	var used, granted int
	err := s.queryRow(ctx, `INSERT INTO rate_limit_windows (key, window_start, used, last_grant) VALUES ($1, $2, $3, $3)
		ON CONFLICT (key, window_start) DO UPDATE SET
			used = rate_limit_windows.used + CASE WHEN ($4 - rate_limit_windows.used + 7) / 8 > $5 THEN $5 ELSE ($4 - rate_limit_windows.used + 7) / 8 END,
			last_grant = CASE WHEN ($4 - rate_limit_windows.used + 7) / 8 > $5 THEN $5 ELSE ($4 - rate_limit_windows.used + 7) / 8 END
		WHERE rate_limit_windows.used < $4
		RETURNING used, last_grant`, key, ms(start), first, int64(limit), int64(maxGrant)).Scan(&used, &granted)
	if errors.Is(err, sql.ErrNoRows) {
		// The WHERE refused the update: every request of the window is
		// reserved already.
		return 0, limit, nil
	}
	if err != nil {
		return 0, 0, s.mapErr("reserve rate-limit quota", err)
	}
	return granted, used, nil
}

func (s *sqlStore) DeleteRateWindowsBefore(ctx context.Context, t time.Time) (int64, error) {
	res, err := s.exec(ctx, `DELETE FROM rate_limit_windows WHERE window_start < $1`, ms(t))
	if err != nil {
		return 0, s.mapErr("delete ended rate-limit windows", err)
	}
	return res.RowsAffected()
}
