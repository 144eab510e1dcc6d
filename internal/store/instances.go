package store

import (
	"context"
	"database/sql"
)

// InstanceContents counts what an instance holds, so deleting it can say
// what goes with it.
type InstanceContents struct {
	Users, ServiceIDs, APIKeys, Credentials int
	Configurations, BARFiles, Traces        int
	Runtimes                                []string // integration runtime names
}

// instanceCounts are the counted tables, in the order of InstanceContents.
var instanceCounts = []struct{ table, where string }{
	{"identities", "kind = 'user'"},
	{"identities", "kind = 'serviceId'"},
	{"api_keys", ""},
	{"client_credentials", ""},
	{"configurations", ""},
	{"bar_files", ""},
	{"traces", ""},
}

func (s *sqlStore) InstanceContents(ctx context.Context, instanceID string) (InstanceContents, error) {
	var c InstanceContents
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		c, err = s.instanceContentsTx(ctx, tx, instanceID)
		return err
	})
	return c, err
}

func (s *sqlStore) instanceContentsTx(ctx context.Context, tx *sql.Tx, instanceID string) (InstanceContents, error) {
	var c InstanceContents
	var exists int
	if err := tx.QueryRowContext(ctx, s.q(`SELECT COUNT(*) FROM instances WHERE id = $1`), instanceID).Scan(&exists); err != nil {
		return c, s.mapErr("read instance", err)
	}
	if exists == 0 {
		return c, ErrNotFound
	}
	dst := []*int{&c.Users, &c.ServiceIDs, &c.APIKeys, &c.Credentials, &c.Configurations, &c.BARFiles, &c.Traces}
	for i, t := range instanceCounts {
		q := `SELECT COUNT(*) FROM ` + t.table + ` WHERE instance_id = $1`
		if t.where != "" {
			q += ` AND ` + t.where
		}
		if err := tx.QueryRowContext(ctx, s.q(q), instanceID).Scan(dst[i]); err != nil {
			return c, s.mapErr("count "+t.table, err)
		}
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT name FROM integration_runtimes WHERE instance_id = $1 ORDER BY name`), instanceID)
	if err != nil {
		return c, s.mapErr("list runtimes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return c, s.mapErr("read runtime", err)
		}
		c.Runtimes = append(c.Runtimes, n)
	}
	return c, s.mapErr("list runtimes", rows.Err())
}

// DeleteInstance removes an instance and everything in it, in one
// transaction, and returns what was removed. The audit trail of the
// instance is kept: it records what happened, including this.
func (s *sqlStore) DeleteInstance(ctx context.Context, instanceID string) (InstanceContents, error) {
	var c InstanceContents
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if c, err = s.instanceContentsTx(ctx, tx, instanceID); err != nil {
			return err
		}
		var shas []string
		rows, err := tx.QueryContext(ctx, s.q(`SELECT DISTINCT sha256 FROM bar_files WHERE instance_id = $1`), instanceID)
		if err != nil {
			return s.mapErr("list BAR files", err)
		}
		for rows.Next() {
			var sha string
			if err := rows.Scan(&sha); err != nil {
				rows.Close()
				return s.mapErr("read BAR file", err)
			}
			shas = append(shas, sha)
		}
		rows.Close()
		// runtime_refs has no foreign key; every other table of the
		// instance goes by ON DELETE CASCADE.
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM runtime_refs WHERE instance_id = $1`), instanceID); err != nil {
			return s.mapErr("delete runtime references", err)
		}
		// Settings are not the instance's rows either: its own ones are
		// the keys that end in "/<instance id>" (InstanceSetting).
		suffix := InstanceSetting("", instanceID)
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM settings WHERE length(key) > length($1)
			AND substr(key, length(key) - length($1) + 1) = $1`), suffix); err != nil {
			return s.mapErr("delete instance settings", err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM instances WHERE id = $1`), instanceID); err != nil {
			return s.mapErr("delete instance", err)
		}
		for _, sha := range shas {
			if err := s.collectBlob(ctx, tx, sha); err != nil {
				return err
			}
		}
		return nil
	})
	return c, err
}
