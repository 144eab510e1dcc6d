package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Runtime is an integration runtime's record. Spec and Status are JSON
// documents owned by the orchestrator package.
type Runtime struct {
	InstanceID     string
	Name           string
	UID            string
	Generation     int64
	Spec           string
	Status         string
	Version        int64 // changes on every write; watchers compare it
	FetchTokenHash string
	CreatedAt      time.Time
	CreatedBy      string
	UpdatedAt      time.Time
	UpdatedBy      string
}

// Ref is something a runtime's spec names.
type Ref struct {
	Kind string // "configuration" or "barFile"
	Name string
}

// Trace is a trace switched on for a runtime. It belongs to the runtime
// by RuntimeUID; RuntimeName is read from the runtime it belongs to.
type Trace struct {
	InstanceID  string
	Name        string
	RuntimeName string
	RuntimeUID  string
	Type        string
	CreatedAt   time.Time
	CreatedBy   string
}

// Runtimes is the part of the store that holds integration runtimes.
type Runtimes interface {
	// PutRuntime creates a runtime or replaces its spec (bumping the
	// generation when the spec changed) and its refs, in one transaction.
	PutRuntime(ctx context.Context, r Runtime, refs []Ref) (stored Runtime, created bool, err error)
	GetRuntime(ctx context.Context, instanceID, name string) (Runtime, error)
	// ListRuntimes lists one page of one instance's runtimes, or every
	// instance's when instanceID is "" (the reconciler), by instance and
	// name.
	ListRuntimes(ctx context.Context, instanceID string, pg Page) ([]Runtime, error)
	DeleteRuntime(ctx context.Context, instanceID, name string) error
	// SetRuntimeStatus writes the observed status (reconciler only).
	SetRuntimeStatus(ctx context.Context, instanceID, name, status string) error
	// RuntimesUsing names the runtimes whose spec names ref.
	RuntimesUsing(ctx context.Context, instanceID string, ref Ref) ([]string, error)
	RuntimeByUID(ctx context.Context, uid string) (Runtime, error)

	PutTrace(ctx context.Context, t Trace) (created bool, err error)
	GetTrace(ctx context.Context, instanceID, name string) (Trace, error)
	// ListTraces lists one page of the instance's traces (of one runtime
	// unless runtimeName is ""), by name.
	ListTraces(ctx context.Context, instanceID, runtimeName string, pg Page) ([]Trace, error)
	DeleteTrace(ctx context.Context, instanceID, name string) error
}

const runtimeCols = `instance_id, name, uid, generation, spec, status, version, fetch_token_hash, created_at, created_by, updated_at, updated_by`

func scanRuntime(sc scanner) (Runtime, error) {
	var r Runtime
	var ca, ua int64
	err := sc.Scan(&r.InstanceID, &r.Name, &r.UID, &r.Generation, &r.Spec, &r.Status, &r.Version, &r.FetchTokenHash, &ca, &r.CreatedBy, &ua, &r.UpdatedBy)
	r.CreatedAt, r.UpdatedAt = fromMS(ca), fromMS(ua)
	return r, err
}

// nextVersion is a value larger than v and, in practice, than any version
// another replica wrote just before: watchers only compare for change.
func nextVersion(v int64) int64 {
	now := time.Now().UnixNano()
	if now <= v {
		return v + 1
	}
	return now
}

func (s *sqlStore) PutRuntime(ctx context.Context, r Runtime, refs []Ref) (Runtime, bool, error) {
	created := false
	in := r
	err := s.putTx(ctx, func(tx *sql.Tx) error {
		created, r = false, in
		cur, err := scanRuntime(tx.QueryRowContext(ctx, s.q(`SELECT `+runtimeCols+` FROM integration_runtimes WHERE instance_id = $1 AND name = $2`), r.InstanceID, r.Name))
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			r.Generation, r.Version = 1, nextVersion(0)
			if r.Status == "" {
				r.Status = "{}"
			}
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO integration_runtimes (`+runtimeCols+`)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`),
				r.InstanceID, r.Name, r.UID, r.Generation, r.Spec, r.Status, r.Version, r.FetchTokenHash,
				ms(r.CreatedAt), r.CreatedBy, ms(r.UpdatedAt), r.UpdatedBy)
			if err != nil {
				return s.mapErr("create runtime", err)
			}
		case err != nil:
			return s.mapErr("read runtime", err)
		default:
			gen := cur.Generation
			if cur.Spec != r.Spec {
				gen++
			}
			r.UID, r.Generation, r.Status, r.FetchTokenHash = cur.UID, gen, cur.Status, cur.FetchTokenHash
			r.CreatedAt, r.CreatedBy, r.Version = cur.CreatedAt, cur.CreatedBy, nextVersion(cur.Version)
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE integration_runtimes SET generation = $1, spec = $2, version = $3, updated_at = $4, updated_by = $5
				WHERE instance_id = $6 AND name = $7`), r.Generation, r.Spec, r.Version, ms(r.UpdatedAt), r.UpdatedBy, r.InstanceID, r.Name); err != nil {
				return s.mapErr("replace runtime", err)
			}
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM runtime_refs WHERE instance_id = $1 AND runtime_name = $2`), r.InstanceID, r.Name); err != nil {
				return s.mapErr("replace runtime refs", err)
			}
		}
		for _, ref := range refs {
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO runtime_refs (instance_id, runtime_name, kind, ref_name) VALUES ($1, $2, $3, $4)
				ON CONFLICT DO NOTHING`), r.InstanceID, r.Name, ref.Kind, ref.Name); err != nil {
				return s.mapErr("record runtime refs", err)
			}
		}
		return nil
	})
	return r, created, err
}

func (s *sqlStore) GetRuntime(ctx context.Context, instanceID, name string) (Runtime, error) {
	r, err := scanRuntime(s.queryRow(ctx, `SELECT `+runtimeCols+` FROM integration_runtimes WHERE instance_id = $1 AND name = $2`, instanceID, name))
	return r, s.mapErr("read runtime", err)
}

func (s *sqlStore) RuntimeByUID(ctx context.Context, uid string) (Runtime, error) {
	r, err := scanRuntime(s.queryRow(ctx, `SELECT `+runtimeCols+` FROM integration_runtimes WHERE uid = $1`, uid))
	return r, s.mapErr("read runtime", err)
}

// PageKey is a runtime's position in its list: by instance, then name.
func (r Runtime) PageKey() []string { return []string{r.InstanceID, r.Name} }

// runtimeList is one instance's runtimes, allRuntimeList every instance's
// (two queries, so that each has a plan that reads the index in order: see
// appList).
var (
	runtimeList = listQuery{op: "list runtimes", cols: runtimeCols, from: "FROM integration_runtimes",
		where: "instance_id = $1", key: []keyCol{{expr: "instance_id"}, {expr: "name"}}}
	allRuntimeList = listQuery{op: "list every instance's runtimes", cols: runtimeCols, from: "FROM integration_runtimes",
		where: "1 = 1", key: []keyCol{{expr: "instance_id"}, {expr: "name"}}}
)

// listRuntimes reads a page of runtimes from the database (ListRuntimes,
// in grantcache.go, may answer from memory).
func (s *sqlStore) listRuntimes(ctx context.Context, instanceID string, pg Page) ([]Runtime, error) {
	if instanceID == "" {
		return listRows(ctx, s, allRuntimeList, pg, scanRuntime)
	}
	return listRows(ctx, s, runtimeList, pg, scanRuntime, instanceID)
}

func (s *sqlStore) DeleteRuntime(ctx context.Context, instanceID, name string) error {
	return s.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM integration_runtimes WHERE instance_id = $1 AND name = $2`), instanceID, name)
		if err := s.affectedOne("delete runtime", res, err); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM runtime_refs WHERE instance_id = $1 AND runtime_name = $2`), instanceID, name)
		if err != nil {
			return s.mapErr("delete runtime refs", err)
		}
		// Its traces end with it; traces hold the uid, so only rows of a
		// runtime that no longer exists match.
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM traces WHERE instance_id = $1
			AND runtime_uid NOT IN (SELECT uid FROM integration_runtimes WHERE instance_id = $1)`), instanceID)
		return s.mapErr("delete runtime traces", err)
	})
}

func (s *sqlStore) SetRuntimeStatus(ctx context.Context, instanceID, name, status string) error {
	_, err := s.setRuntimeStatus(ctx, instanceID, name, status)
	return err
}

// setRuntimeStatus is SetRuntimeStatus, also saying whether the status
// changed (an unchanged status is not an error).
func (s *sqlStore) setRuntimeStatus(ctx context.Context, instanceID, name, status string) (changed bool, err error) {
	res, err := s.exec(ctx, `UPDATE integration_runtimes SET status = $1, version = $2 WHERE instance_id = $3 AND name = $4 AND status <> $1`,
		status, nextVersion(0), instanceID, name)
	if err != nil {
		return false, s.mapErr("write runtime status", err)
	}
	n, err := res.RowsAffected()
	return err == nil && n > 0, nil
}

func (s *sqlStore) RuntimesUsing(ctx context.Context, instanceID string, ref Ref) ([]string, error) {
	rows, err := s.query(ctx, `SELECT runtime_name FROM runtime_refs WHERE instance_id = $1 AND kind = $2 AND ref_name = $3 ORDER BY runtime_name`,
		instanceID, ref.Kind, ref.Name)
	if err != nil {
		return nil, s.mapErr("find runtimes using "+ref.Name, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, s.mapErr("read runtime ref", err)
		}
		out = append(out, n)
	}
	return out, s.mapErr("find runtimes using "+ref.Name, rows.Err())
}

func (s *sqlStore) PutTrace(ctx context.Context, t Trace) (bool, error) {
	created := false
	err := s.putTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE traces SET runtime_name = $1, runtime_uid = $2, type = $3 WHERE instance_id = $4 AND name = $5`),
			t.RuntimeName, t.RuntimeUID, t.Type, t.InstanceID, t.Name)
		if err != nil {
			return s.mapErr("write trace", err)
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			created = false
			return s.mapErr("write trace", err)
		}
		created = true
		_, err = tx.ExecContext(ctx, s.q(`INSERT INTO traces (instance_id, name, runtime_name, runtime_uid, type, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7)`),
			t.InstanceID, t.Name, t.RuntimeName, t.RuntimeUID, t.Type, ms(t.CreatedAt), t.CreatedBy)
		return s.mapErr("write trace", err)
	})
	return created, err
}

// traceSelect reads traces with the name of the runtime they belong to
// now: a trace whose runtime is gone (or was replaced by another of the
// same name) is not found.
const (
	traceCols   = `t.instance_id, t.name, r.name, t.runtime_uid, t.type, t.created_at, t.created_by`
	traceFrom   = `FROM traces t JOIN integration_runtimes r ON r.uid = t.runtime_uid AND r.instance_id = t.instance_id `
	traceSelect = `SELECT ` + traceCols + ` ` + traceFrom
)

func scanTrace(sc scanner) (Trace, error) {
	var t Trace
	var at int64
	err := sc.Scan(&t.InstanceID, &t.Name, &t.RuntimeName, &t.RuntimeUID, &t.Type, &at, &t.CreatedBy)
	t.CreatedAt = fromMS(at)
	return t, err
}

func (s *sqlStore) GetTrace(ctx context.Context, instanceID, name string) (Trace, error) {
	t, err := scanTrace(s.queryRow(ctx, traceSelect+`WHERE t.instance_id = $1 AND t.name = $2`, instanceID, name))
	return t, s.mapErr("read trace", err)
}

// PageKey is a trace's position in its list: by name.
func (t Trace) PageKey() []string { return []string{t.Name} }

// traceList is an instance's traces, runtimeTraceList one runtime's: the
// runtime's uid is looked up once, so the traces are read from the index
// (runtime_uid, name) in order (two queries: see appList).
var (
	traceList = listQuery{op: "list traces", cols: traceCols, from: traceFrom,
		where: "t.instance_id = $1", key: []keyCol{{expr: "t.name"}}}
	runtimeTraceList = listQuery{op: "list a runtime's traces", cols: traceCols, from: traceFrom,
		where: "t.runtime_uid = (SELECT uid FROM integration_runtimes WHERE instance_id = $1 AND name = $2) AND t.instance_id = $1",
		key:   []keyCol{{expr: "t.name"}}}
)

func (s *sqlStore) ListTraces(ctx context.Context, instanceID, runtimeName string, pg Page) ([]Trace, error) {
	if runtimeName != "" {
		return listRows(ctx, s, runtimeTraceList, pg, scanTrace, instanceID, runtimeName)
	}
	return listRows(ctx, s, traceList, pg, scanTrace, instanceID)
}

func (s *sqlStore) DeleteTrace(ctx context.Context, instanceID, name string) error {
	res, err := s.exec(ctx, `DELETE FROM traces WHERE instance_id = $1 AND name = $2`, instanceID, name)
	return s.affectedOne("delete trace", res, err)
}
