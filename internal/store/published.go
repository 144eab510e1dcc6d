package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// Kinds of published objects.
const (
	KindAPI          = "api"
	KindPlan         = "plan"
	KindSubscription = "subscription"
)

// PublishedObject is a published API, a plan or a subscription. Spec and
// Status are JSON documents owned by package apis; Document is an API's
// OpenAPI document (JSON), empty in lists.
type PublishedObject struct {
	InstanceID string
	Kind       string
	Name       string
	ID         string
	Spec       string
	Status     string
	Document   []byte
	Version    int64 // changes on every write; watchers compare it
	CreatedAt  time.Time
	CreatedBy  string
	UpdatedAt  time.Time
	UpdatedBy  string
}

// Published is the part of the store that holds published objects.
type Published interface {
	// PutPublished creates o or replaces its spec, status and document;
	// ID, CreatedAt and CreatedBy of an existing object are kept.
	PutPublished(ctx context.Context, o PublishedObject) (stored PublishedObject, created bool, err error)
	// GetPublished reads an object by name or id, with its document.
	GetPublished(ctx context.Context, instanceID, kind, ref string) (PublishedObject, error)
	// ListPublished lists one page of one instance's objects of a kind,
	// or every instance's when instanceID is "", without documents, by
	// instance and name; CountPublished counts them all.
	ListPublished(ctx context.Context, instanceID, kind string, pg Page) ([]PublishedObject, error)
	CountPublished(ctx context.Context, instanceID, kind string) (int, error)
	DeletePublished(ctx context.Context, instanceID, kind, name string) error
}

const publishedCols = `instance_id, kind, name, id, spec, status, version, created_at, created_by, updated_at, updated_by`

func scanPublished(sc scanner, doc bool) (PublishedObject, error) {
	var o PublishedObject
	var ca, ua int64
	dest := []any{&o.InstanceID, &o.Kind, &o.Name, &o.ID, &o.Spec, &o.Status, &o.Version, &ca, &o.CreatedBy, &ua, &o.UpdatedBy}
	if doc {
		dest = append(dest, &o.Document)
	}
	err := sc.Scan(dest...)
	o.CreatedAt, o.UpdatedAt = fromMS(ca), fromMS(ua)
	return o, err
}

func (s *sqlStore) PutPublished(ctx context.Context, o PublishedObject) (PublishedObject, bool, error) {
	created := false
	if o.Status == "" {
		o.Status = "{}"
	}
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		cur, err := scanPublished(tx.QueryRowContext(ctx, s.q(`SELECT `+publishedCols+` FROM published_objects WHERE instance_id = $1 AND kind = $2 AND name = $3`),
			o.InstanceID, o.Kind, o.Name), false)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			created = true
			o.Version = nextVersion(0)
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO published_objects (`+publishedCols+`, document)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`),
				o.InstanceID, o.Kind, o.Name, o.ID, o.Spec, o.Status, o.Version, ms(o.CreatedAt), o.CreatedBy, ms(o.UpdatedAt), o.UpdatedBy, o.Document)
			return s.mapErr("create "+o.Kind, err)
		case err != nil:
			return s.mapErr("read "+o.Kind, err)
		}
		o.ID, o.CreatedAt, o.CreatedBy, o.Version = cur.ID, cur.CreatedAt, cur.CreatedBy, nextVersion(cur.Version)
		_, err = tx.ExecContext(ctx, s.q(`UPDATE published_objects SET spec = $1, status = $2, document = $3, version = $4, updated_at = $5, updated_by = $6
			WHERE instance_id = $7 AND kind = $8 AND name = $9`), o.Spec, o.Status, o.Document, o.Version, ms(o.UpdatedAt), o.UpdatedBy, o.InstanceID, o.Kind, o.Name)
		return s.mapErr("replace "+o.Kind, err)
	})
	return o, created, err
}

func (s *sqlStore) GetPublished(ctx context.Context, instanceID, kind, ref string) (PublishedObject, error) {
	o, err := scanPublished(s.queryRow(ctx, `SELECT `+publishedCols+`, document FROM published_objects
		WHERE instance_id = $1 AND kind = $2 AND (name = $3 OR id = $3) ORDER BY name = $3 DESC LIMIT 1`, instanceID, kind, ref), true)
	return o, s.mapErr("read "+kind, err)
}

// PageKey is a published object's position in its list: by instance,
// then name.
func (o PublishedObject) PageKey() []string { return []string{o.InstanceID, o.Name} }

// publishedList is one kind of one instance's objects, allPublishedList
// one kind of every instance's (two queries, so that each has a plan that
// reads its own index: see appList).
var (
	publishedList = listQuery{op: "list published objects", cols: publishedCols, from: "FROM published_objects",
		where: "instance_id = $1 AND kind = $2", key: []keyCol{{expr: "instance_id"}, {expr: "name"}}}
	allPublishedList = listQuery{op: "list every instance's published objects", cols: publishedCols, from: "FROM published_objects",
		where: "kind = $1", key: []keyCol{{expr: "instance_id"}, {expr: "name"}}}
)

// publishedOf is the list of instanceID's objects of kind, or every
// instance's when instanceID is "", with its arguments.
func publishedOf(instanceID, kind string) (listQuery, []any) {
	if instanceID == "" {
		return allPublishedList, []any{kind}
	}
	return publishedList, []any{instanceID, kind}
}

func (s *sqlStore) ListPublished(ctx context.Context, instanceID, kind string, pg Page) ([]PublishedObject, error) {
	l, args := publishedOf(instanceID, kind)
	return listRows(ctx, s, l, pg, func(sc scanner) (PublishedObject, error) { return scanPublished(sc, false) }, args...)
}

func (s *sqlStore) CountPublished(ctx context.Context, instanceID, kind string) (int, error) {
	l, args := publishedOf(instanceID, kind)
	return countRows(ctx, s, l, args...)
}

func (s *sqlStore) DeletePublished(ctx context.Context, instanceID, kind, name string) error {
	res, err := s.exec(ctx, `DELETE FROM published_objects WHERE instance_id = $1 AND kind = $2 AND name = $3`, instanceID, kind, name)
	return s.affectedOne("delete "+kind, res, err)
}
