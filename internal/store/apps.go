package store

import (
	"context"
	"database/sql"
	"strconv"
	"time"
)

// SandboxCatalogID is the id of the sandbox catalog every instance has
// from its creation (the migration gave instances made before it the same).
func SandboxCatalogID(instanceID string) string { return "sandbox-" + instanceID }

// Entity is what catalogs, consumer orgs and apps have in common.
type Entity struct {
	ID         string
	InstanceID string
	Name       string
	Title      string
	Summary    string
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time
	UpdatedBy  string
}

// Catalog is a set of consumer orgs in an instance (API Connect's catalog).
type Catalog struct {
	Entity
}

// ConsumerOrg is an organisation of API consumers in a catalog.
type ConsumerOrg struct {
	Entity
	CatalogID string
}

// App is a consumer org's application; its credentials call APIs.
type App struct {
	Entity
	CatalogID     string
	ConsumerOrgID string
	State         string // "enabled" or "disabled"
	// DefaultTTL and MaxTTL are the app's credential policy for leases;
	// zero: no policy (a lease must give its TTL; no cap but the TTL).
	DefaultTTL time.Duration
	MaxTTL     time.Duration
}

// AppCredential is a client id with the hash of its secret, on an app. A
// lease is a credential with an expiry: it never authenticates from
// ExpiresAt on, and renewals never move ExpiresAt past MaxExpiresAt.
type AppCredential struct {
	ID            string
	InstanceID    string
	CatalogID     string
	ConsumerOrgID string
	AppID         string
	Name          string
	Title         string
	Summary       string
	ClientID      string
	SecretHash    string
	SecretHint    string
	ExpiresAt     time.Time // zero: never (not a lease)
	MaxExpiresAt  time.Time // zero: no cap
	CreatedAt     time.Time
	CreatedBy     string
	UpdatedAt     time.Time
}

// Leased reports whether the credential expires.
func (c AppCredential) Leased() bool { return !c.ExpiresAt.IsZero() }

// AppCredentialFilter selects an app's credentials in a list; the zero
// filter takes them all.
type AppCredentialFilter struct {
	// LiveAt, when set, leaves out leases expired at that time (the
	// sweeper may not have deleted them yet).
	LiveAt time.Time
	// LeasesOnly keeps only leases.
	LeasesOnly bool
}

// IdempotentAnswer is the remembered answer of a create, its body sealed.
type IdempotentAnswer struct {
	InstanceID  string
	Scope       string // who may replay it (the caller's identity)
	Key         string
	RequestHash string
	Status      int
	SealedBody  []byte
	ExpiresAt   time.Time
}

// Apps is the consumer-applications part of the store. Lookups by ref
// accept an object's id or its name (an id wins when both match).
type Apps interface {
	CreateCatalog(ctx context.Context, c Catalog) error
	GetCatalog(ctx context.Context, instanceID, ref string) (Catalog, error)
	// ListCatalogs lists one page of the instance's catalogs, by name;
	// CountCatalogs counts them all.
	ListCatalogs(ctx context.Context, instanceID string, pg Page) ([]Catalog, error)
	CountCatalogs(ctx context.Context, instanceID string) (int, error)
	UpdateCatalog(ctx context.Context, c Catalog) error
	// DeleteCatalog removes a catalog with everything in it and returns
	// the credentials that went with it.
	DeleteCatalog(ctx context.Context, instanceID, id string) ([]AppCredential, error)

	CreateConsumerOrg(ctx context.Context, o ConsumerOrg) error
	GetConsumerOrg(ctx context.Context, catalogID, ref string) (ConsumerOrg, error)
	ListConsumerOrgs(ctx context.Context, catalogID string, pg Page) ([]ConsumerOrg, error)
	CountConsumerOrgs(ctx context.Context, catalogID string) (int, error)
	UpdateConsumerOrg(ctx context.Context, o ConsumerOrg) error
	DeleteConsumerOrg(ctx context.Context, id string) ([]AppCredential, error)

	CreateApp(ctx context.Context, a App) error
	GetApp(ctx context.Context, consumerOrgID, ref string) (App, error)
	GetAppByID(ctx context.Context, id string) (App, error)
	// ListApps lists one page of the apps of a consumer org, or with
	// consumerOrgID "" of every app of the catalog, by name.
	ListApps(ctx context.Context, catalogID, consumerOrgID string, pg Page) ([]App, error)
	CountApps(ctx context.Context, catalogID, consumerOrgID string) (int, error)
	UpdateApp(ctx context.Context, a App) error
	DeleteApp(ctx context.Context, id string) ([]AppCredential, error)
	// CountChildren counts what deleting the object of kind ("catalog",
	// "consumerOrg", "app") with id would take with it.
	CountChildren(ctx context.Context, kind, id string) (int, error)

	CreateAppCredential(ctx context.Context, c AppCredential) error
	GetAppCredential(ctx context.Context, appID, ref string) (AppCredential, error)
	AppCredentialByClientID(ctx context.Context, clientID string) (AppCredential, error)
	// ListAppCredentials lists one page of an app's credentials, oldest
	// first, as f selects them.
	ListAppCredentials(ctx context.Context, appID string, f AppCredentialFilter, pg Page) ([]AppCredential, error)
	CountAppCredentials(ctx context.Context, appID string, f AppCredentialFilter) (int, error)
	// SetAppCredentialExpiry moves a lease's expiry (renewal).
	SetAppCredentialExpiry(ctx context.Context, id string, expiresAt, updatedAt time.Time) error
	DeleteAppCredential(ctx context.Context, id string) error
	// DeleteLeases removes every leased credential of an app and returns them.
	DeleteLeases(ctx context.Context, appID string) ([]AppCredential, error)
	// NextLeaseExpiry is the earliest expiry of any lease; zero when none.
	NextLeaseExpiry(ctx context.Context) (time.Time, error)
	// DeleteExpiredLeases removes up to limit leases expired at now and
	// returns them.
	DeleteExpiredLeases(ctx context.Context, now time.Time, limit int) ([]AppCredential, error)

	// PutIdempotentAnswer remembers an answer; ErrConflict when the key
	// is taken. GetIdempotentAnswer ignores expired ones.
	PutIdempotentAnswer(ctx context.Context, a IdempotentAnswer) error
	GetIdempotentAnswer(ctx context.Context, instanceID, scope, key string, now time.Time) (IdempotentAnswer, error)
	DeleteExpiredIdempotentAnswers(ctx context.Context, now time.Time) error
}

const entityCols = `id, instance_id, name, title, summary, created_at, created_by, updated_at, updated_by`

type scanner interface{ Scan(...any) error }

func scanEntity(sc scanner, e *Entity, extra ...any) error {
	var c, u int64
	args := append([]any{&e.ID, &e.InstanceID, &e.Name, &e.Title, &e.Summary, &c, &e.CreatedBy, &u, &e.UpdatedBy}, extra...)
	err := sc.Scan(args...)
	e.CreatedAt, e.UpdatedAt = fromMS(c), fromMS(u)
	return err
}

func entityArgs(e Entity) []any {
	return []any{e.ID, e.InstanceID, e.Name, e.Title, e.Summary, ms(e.CreatedAt), e.CreatedBy, ms(e.UpdatedAt), e.UpdatedBy}
}

// byRef is the WHERE clause of a look-up by id or name within a parent;
// ordering puts an id match first.
const byRef = ` AND (id = $2 OR name = $2) ORDER BY CASE WHEN id = $2 THEN 0 ELSE 1 END LIMIT 1`

// ---- catalogs ----

func (s *sqlStore) insertSandbox(ctx context.Context, ex execer, in Instance) error {
	_, err := ex.ExecContext(ctx, s.q(`INSERT INTO catalogs (`+entityCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`),
		entityArgs(Entity{ID: SandboxCatalogID(in.ID), InstanceID: in.ID, Name: "sandbox", Title: "Sandbox",
			Summary: "created with the instance", CreatedAt: in.CreatedAt, CreatedBy: "system", UpdatedAt: in.CreatedAt, UpdatedBy: "system"})...)
	return s.mapErr("create the sandbox catalog", err)
}

func (s *sqlStore) CreateCatalog(ctx context.Context, c Catalog) error {
	_, err := s.exec(ctx, `INSERT INTO catalogs (`+entityCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`, entityArgs(c.Entity)...)
	return s.mapErr("create catalog", err)
}

func (s *sqlStore) GetCatalog(ctx context.Context, instanceID, ref string) (Catalog, error) {
	var c Catalog
	err := scanEntity(s.queryRow(ctx, `SELECT `+entityCols+` FROM catalogs WHERE instance_id = $1`+byRef, instanceID, ref), &c.Entity)
	return c, s.mapErr("read catalog", err)
}

// PageKey is a catalog's position in its list: by name.
func (c Catalog) PageKey() []string { return []string{c.Name} }

var catalogList = listQuery{op: "list catalogs", cols: entityCols, from: "FROM catalogs",
	where: "instance_id = $1", key: []keyCol{{expr: "name"}}}

func (s *sqlStore) ListCatalogs(ctx context.Context, instanceID string, pg Page) ([]Catalog, error) {
	return listRows(ctx, s, catalogList, pg, func(sc scanner) (c Catalog, err error) { return c, scanEntity(sc, &c.Entity) }, instanceID)
}

func (s *sqlStore) CountCatalogs(ctx context.Context, instanceID string) (int, error) {
	return countRows(ctx, s, catalogList, instanceID)
}

func (s *sqlStore) UpdateCatalog(ctx context.Context, c Catalog) error {
	res, err := s.exec(ctx, `UPDATE catalogs SET title = $1, summary = $2, updated_at = $3, updated_by = $4 WHERE id = $5`,
		c.Title, c.Summary, ms(c.UpdatedAt), c.UpdatedBy, c.ID)
	return s.affectedOne("update catalog", res, err)
}

// deleteWith deletes one row of table by id in a transaction, first
// reading the credentials the cascade will take (where names the
// app_credentials column that holds id).
func (s *sqlStore) deleteWith(ctx context.Context, table, column, id string) ([]AppCredential, error) {
	var gone []AppCredential
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT `+appCredentialCols+` FROM app_credentials WHERE `+column+` = $1`), id)
		if err != nil {
			return s.mapErr("list credentials", err)
		}
		gone, err = scanAppCredentials(rows)
		if err != nil {
			return s.mapErr("list credentials", err)
		}
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM `+table+` WHERE id = $1`), id)
		return s.affectedOne("delete from "+table, res, err)
	})
	return gone, err
}

func (s *sqlStore) DeleteCatalog(ctx context.Context, instanceID, id string) ([]AppCredential, error) {
	return s.deleteWith(ctx, "catalogs", "catalog_id", id)
}

// ---- consumer orgs ----

func (s *sqlStore) CreateConsumerOrg(ctx context.Context, o ConsumerOrg) error {
	_, err := s.exec(ctx, `INSERT INTO consumer_orgs (`+entityCols+`, catalog_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		append(entityArgs(o.Entity), o.CatalogID)...)
	return s.mapErr("create consumer org", err)
}

func (s *sqlStore) GetConsumerOrg(ctx context.Context, catalogID, ref string) (ConsumerOrg, error) {
	var o ConsumerOrg
	err := scanEntity(s.queryRow(ctx, `SELECT `+entityCols+`, catalog_id FROM consumer_orgs WHERE catalog_id = $1`+byRef, catalogID, ref), &o.Entity, &o.CatalogID)
	return o, s.mapErr("read consumer org", err)
}

// PageKey is a consumer org's position in its list: by name.
func (o ConsumerOrg) PageKey() []string { return []string{o.Name} }

var consumerOrgList = listQuery{op: "list consumer orgs", cols: entityCols + ", catalog_id", from: "FROM consumer_orgs",
	where: "catalog_id = $1", key: []keyCol{{expr: "name"}}}

func (s *sqlStore) ListConsumerOrgs(ctx context.Context, catalogID string, pg Page) ([]ConsumerOrg, error) {
	return listRows(ctx, s, consumerOrgList, pg, func(sc scanner) (o ConsumerOrg, err error) {
		return o, scanEntity(sc, &o.Entity, &o.CatalogID)
	}, catalogID)
}

func (s *sqlStore) CountConsumerOrgs(ctx context.Context, catalogID string) (int, error) {
	return countRows(ctx, s, consumerOrgList, catalogID)
}

func (s *sqlStore) UpdateConsumerOrg(ctx context.Context, o ConsumerOrg) error {
	res, err := s.exec(ctx, `UPDATE consumer_orgs SET title = $1, summary = $2, updated_at = $3, updated_by = $4 WHERE id = $5`,
		o.Title, o.Summary, ms(o.UpdatedAt), o.UpdatedBy, o.ID)
	return s.affectedOne("update consumer org", res, err)
}

func (s *sqlStore) DeleteConsumerOrg(ctx context.Context, id string) ([]AppCredential, error) {
	return s.deleteWith(ctx, "consumer_orgs", "consumer_org_id", id)
}

// ---- apps ----

const appExtraCols = `, catalog_id, consumer_org_id, state, default_ttl_ms, max_ttl_ms`

func scanApp(sc scanner) (App, error) {
	var a App
	var def, max int64
	err := scanEntity(sc, &a.Entity, &a.CatalogID, &a.ConsumerOrgID, &a.State, &def, &max)
	a.DefaultTTL, a.MaxTTL = time.Duration(def)*time.Millisecond, time.Duration(max)*time.Millisecond
	return a, err
}

func (s *sqlStore) CreateApp(ctx context.Context, a App) error {
	_, err := s.exec(ctx, `INSERT INTO apps (`+entityCols+appExtraCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		append(entityArgs(a.Entity), a.CatalogID, a.ConsumerOrgID, a.State, a.DefaultTTL.Milliseconds(), a.MaxTTL.Milliseconds())...)
	return s.mapErr("create app", err)
}

func (s *sqlStore) GetApp(ctx context.Context, consumerOrgID, ref string) (App, error) {
	a, err := scanApp(s.queryRow(ctx, `SELECT `+entityCols+appExtraCols+` FROM apps WHERE consumer_org_id = $1`+byRef, consumerOrgID, ref))
	return a, s.mapErr("read app", err)
}

func (s *sqlStore) GetAppByID(ctx context.Context, id string) (App, error) {
	a, err := scanApp(s.queryRow(ctx, `SELECT `+entityCols+appExtraCols+` FROM apps WHERE id = $1`, id))
	return a, s.mapErr("read app", err)
}

// PageKey is an app's position in its list: by name, then id (a
// catalog's apps of two consumer orgs may share a name).
func (a App) PageKey() []string { return []string{a.Name, a.ID} }

// appList is the list of a catalog's apps, appOrgList of one consumer
// org's: two queries, not one with "$2 = ” OR …", because a prepared
// statement's generic plan cannot use an index for such a condition and
// would read the whole catalog for one org's page (TestListQueriesUseTheirIndex).
var (
	appList = listQuery{op: "list apps", cols: entityCols + appExtraCols, from: "FROM apps",
		where: "catalog_id = $1", key: []keyCol{{expr: "name"}, {expr: "id"}}}
	appOrgList = listQuery{op: "list a consumer org's apps", cols: entityCols + appExtraCols, from: "FROM apps",
		where: "consumer_org_id = $1 AND catalog_id = $2", key: []keyCol{{expr: "name"}, {expr: "id"}}}
)

// appsOf is the list of catalogID's apps, or of consumerOrgID's when set,
// with its arguments.
func appsOf(catalogID, consumerOrgID string) (listQuery, []any) {
	if consumerOrgID == "" {
		return appList, []any{catalogID}
	}
	return appOrgList, []any{consumerOrgID, catalogID}
}

func (s *sqlStore) ListApps(ctx context.Context, catalogID, consumerOrgID string, pg Page) ([]App, error) {
	l, args := appsOf(catalogID, consumerOrgID)
	return listRows(ctx, s, l, pg, scanApp, args...)
}

func (s *sqlStore) CountApps(ctx context.Context, catalogID, consumerOrgID string) (int, error) {
	l, args := appsOf(catalogID, consumerOrgID)
	return countRows(ctx, s, l, args...)
}

func (s *sqlStore) UpdateApp(ctx context.Context, a App) error {
	res, err := s.exec(ctx, `UPDATE apps SET title = $1, summary = $2, state = $3, default_ttl_ms = $4, max_ttl_ms = $5,
		updated_at = $6, updated_by = $7 WHERE id = $8`,
		a.Title, a.Summary, a.State, a.DefaultTTL.Milliseconds(), a.MaxTTL.Milliseconds(), ms(a.UpdatedAt), a.UpdatedBy, a.ID)
	return s.affectedOne("update app", res, err)
}

func (s *sqlStore) DeleteApp(ctx context.Context, id string) ([]AppCredential, error) {
	return s.deleteWith(ctx, "apps", "app_id", id)
}

func (s *sqlStore) CountChildren(ctx context.Context, kind, id string) (int, error) {
	var q string
	switch kind {
	case "catalog":
		q = `SELECT COUNT(*) FROM consumer_orgs WHERE catalog_id = $1`
	case "consumerOrg":
		q = `SELECT COUNT(*) FROM apps WHERE consumer_org_id = $1`
	case "app":
		q = `SELECT COUNT(*) FROM app_credentials WHERE app_id = $1`
	default:
		panic("store: CountChildren of unknown kind " + kind)
	}
	var n int
	err := s.queryRow(ctx, q, id).Scan(&n)
	return n, s.mapErr("count children", err)
}

// ---- app credentials ----

const appCredentialCols = `id, instance_id, catalog_id, consumer_org_id, app_id, name, title, summary, client_id,
	secret_hash, secret_hint, expires_at, max_expires_at, created_at, created_by, updated_at`

func scanAppCredential(sc scanner) (AppCredential, error) {
	var c AppCredential
	var exp, max, cr, up int64
	err := sc.Scan(&c.ID, &c.InstanceID, &c.CatalogID, &c.ConsumerOrgID, &c.AppID, &c.Name, &c.Title, &c.Summary, &c.ClientID,
		&c.SecretHash, &c.SecretHint, &exp, &max, &cr, &c.CreatedBy, &up)
	c.ExpiresAt, c.MaxExpiresAt, c.CreatedAt, c.UpdatedAt = fromMS(exp), fromMS(max), fromMS(cr), fromMS(up)
	return c, err
}

func scanAppCredentials(rows *sql.Rows) ([]AppCredential, error) {
	defer rows.Close()
	var out []AppCredential
	for rows.Next() {
		c, err := scanAppCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

func (s *sqlStore) CreateAppCredential(ctx context.Context, c AppCredential) error {
	_, err := s.exec(ctx, `INSERT INTO app_credentials (`+appCredentialCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
		c.ID, c.InstanceID, c.CatalogID, c.ConsumerOrgID, c.AppID, c.Name, c.Title, c.Summary, c.ClientID,
		c.SecretHash, c.SecretHint, ms(c.ExpiresAt), ms(c.MaxExpiresAt), ms(c.CreatedAt), c.CreatedBy, ms(c.UpdatedAt))
	return s.mapErr("create app credential", err)
}

func (s *sqlStore) GetAppCredential(ctx context.Context, appID, ref string) (AppCredential, error) {
	c, err := scanAppCredential(s.queryRow(ctx, `SELECT `+appCredentialCols+` FROM app_credentials WHERE app_id = $1`+byRef, appID, ref))
	return c, s.mapErr("read app credential", err)
}

func (s *sqlStore) AppCredentialByClientID(ctx context.Context, clientID string) (AppCredential, error) {
	c, err := scanAppCredential(s.queryRow(ctx, `SELECT `+appCredentialCols+` FROM app_credentials WHERE client_id = $1`, clientID))
	return c, s.mapErr("read app credential", err)
}

// PageKey is a credential's position in its app's list: by creation,
// then id.
func (c AppCredential) PageKey() []string {
	return []string{strconv.FormatInt(ms(c.CreatedAt), 10), c.ID}
}

// appCredentialList is an app's credentials; $2 > 0 leaves out leases
// expired by then (ms), $3 = 1 keeps only leases. ($2 is compared with
// expires_at first: PostgreSQL then takes it as a BIGINT, not an INTEGER.)
var appCredentialList = listQuery{op: "list app credentials", cols: appCredentialCols, from: "FROM app_credentials",
	where: "app_id = $1 AND (expires_at = 0 OR expires_at > $2 OR $2 <= 0) AND ($3 = 0 OR expires_at > 0)",
	key:   []keyCol{{expr: "created_at", num: true}, {expr: "id"}}}

func (s *sqlStore) ListAppCredentials(ctx context.Context, appID string, f AppCredentialFilter, pg Page) ([]AppCredential, error) {
	return listRows(ctx, s, appCredentialList, pg, scanAppCredential, f.args(appID)...)
}

func (s *sqlStore) CountAppCredentials(ctx context.Context, appID string, f AppCredentialFilter) (int, error) {
	return countRows(ctx, s, appCredentialList, f.args(appID)...)
}

func (f AppCredentialFilter) args(appID string) []any {
	return []any{appID, ms(f.LiveAt), int64(boolInt(f.LeasesOnly))}
}

func (s *sqlStore) SetAppCredentialExpiry(ctx context.Context, id string, expiresAt, updatedAt time.Time) error {
	res, err := s.exec(ctx, `UPDATE app_credentials SET expires_at = $1, updated_at = $2 WHERE id = $3 AND expires_at > 0`,
		ms(expiresAt), ms(updatedAt), id)
	return s.affectedOne("renew lease", res, err)
}

func (s *sqlStore) DeleteAppCredential(ctx context.Context, id string) error {
	res, err := s.exec(ctx, `DELETE FROM app_credentials WHERE id = $1`, id)
	return s.affectedOne("delete app credential", res, err)
}

// deleteReturning deletes the credentials a query selects, in one
// transaction, and returns them.
func (s *sqlStore) deleteReturning(ctx context.Context, sel string, args ...any) ([]AppCredential, error) {
	var gone []AppCredential
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, s.q(`SELECT `+appCredentialCols+` FROM app_credentials WHERE `+sel), args...)
		if err != nil {
			return s.mapErr("select credentials", err)
		}
		if gone, err = scanAppCredentials(rows); err != nil {
			return s.mapErr("select credentials", err)
		}
		for _, c := range gone {
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM app_credentials WHERE id = $1`), c.ID); err != nil {
				return s.mapErr("delete credential", err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return gone, nil
}

func (s *sqlStore) DeleteLeases(ctx context.Context, appID string) ([]AppCredential, error) {
	return s.deleteReturning(ctx, `app_id = $1 AND expires_at > 0`, appID)
}

func (s *sqlStore) NextLeaseExpiry(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	err := s.queryRow(ctx, `SELECT MIN(expires_at) FROM app_credentials WHERE expires_at > 0`).Scan(&v)
	if err != nil || !v.Valid {
		return time.Time{}, s.mapErr("read the next lease expiry", err)
	}
	return fromMS(v.Int64), nil
}

func (s *sqlStore) DeleteExpiredLeases(ctx context.Context, now time.Time, limit int) ([]AppCredential, error) {
	return s.deleteReturning(ctx, `expires_at > 0 AND expires_at <= $1 ORDER BY expires_at LIMIT $2`, ms(now), limit)
}

// ---- idempotency ----

func (s *sqlStore) PutIdempotentAnswer(ctx context.Context, a IdempotentAnswer) error {
	_, err := s.exec(ctx, `INSERT INTO idempotency_keys (instance_id, scope, key, request_hash, status, sealed_body, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, a.InstanceID, a.Scope, a.Key, a.RequestHash, a.Status, a.SealedBody, ms(a.ExpiresAt))
	return s.mapErr("remember an idempotent answer", err)
}

func (s *sqlStore) GetIdempotentAnswer(ctx context.Context, instanceID, scope, key string, now time.Time) (IdempotentAnswer, error) {
	a := IdempotentAnswer{InstanceID: instanceID, Scope: scope, Key: key}
	var exp int64
	err := s.queryRow(ctx, `SELECT request_hash, status, sealed_body, expires_at FROM idempotency_keys
		WHERE instance_id = $1 AND scope = $2 AND key = $3 AND expires_at > $4`, instanceID, scope, key, ms(now)).
		Scan(&a.RequestHash, &a.Status, &a.SealedBody, &exp)
	a.ExpiresAt = fromMS(exp)
	return a, s.mapErr("read an idempotent answer", err)
}

func (s *sqlStore) DeleteExpiredIdempotentAnswers(ctx context.Context, now time.Time) error {
	_, err := s.exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= $1`, ms(now))
	return s.mapErr("forget expired idempotent answers", err)
}
