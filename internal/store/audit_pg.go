package store

import (
	"context"
)

// InsertAuditEvents writes a batch of the audit pipeline in one statement:
// the columns travel as arrays and unnest turns them back into rows. On
// PostgreSQL every statement is a round trip (and a wake-up of its
// backend), so the shared path — a transaction, a prepared insert per
// event, a commit — cost N+4 round trips per batch, and the token
// exchange's wait for its audit record grew with the batch. One statement
// is atomic on its own: every event of the batch is committed, or none
// is (a duplicate id fails them all), and the caller's acknowledgment
// still waits for that commit. The text is the same for every batch size,
// so it is prepared once per connection.
func (s *postgresStore) InsertAuditEvents(ctx context.Context, evs []AuditEvent) error {
	if len(evs) == 0 {
		return nil
	}
	n := len(evs)
	ids, acts, insts, actors, actions := make([]string, n), make([]int64, n), make([]string, n), make([]string, n), make([]string, n)
	objects, outcomes, sources, reqs, details := make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	for i, e := range evs {
		ids[i], acts[i], insts[i], actors[i], actions[i] = e.ID, ms(e.At), e.InstanceID, e.Actor, e.Action
		objects[i], outcomes[i], sources[i], reqs[i], details[i] = e.Object, e.Outcome, e.Source, e.RequestID, e.Detail
	}
	_, err := s.exec(ctx, `INSERT INTO audit_events
		(id, at, instance_id, actor, action, object, outcome, source, request_id, detail)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])`,
		ids, acts, insts, actors, actions, objects, outcomes, sources, reqs, details)
	return s.mapErr("write audit events", err)
}
