-- GET /api/v1/audit filters one instance's events by actor, action,
-- object and time, newest first, in keyset pages (at, id): one index per
-- filter whose columns end in (at, id), so each page is a short backward
-- range scan in the answer's order — no sort, no scan of the window —
-- however many events the instance holds. (instance_id, at, id) replaces
-- (instance_id, at) for the time-only query and ties broken by id.
DROP INDEX audit_events_instance_at;
CREATE INDEX audit_events_instance_at_id ON audit_events (instance_id, at, id);
CREATE INDEX audit_events_actor ON audit_events (instance_id, actor, at, id);
CREATE INDEX audit_events_action ON audit_events (instance_id, action, at, id);
CREATE INDEX audit_events_object ON audit_events (instance_id, object, at, id);
