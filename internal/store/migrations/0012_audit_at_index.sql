-- Retention prunes the oldest audit events of every instance: by time alone.
CREATE INDEX audit_events_at ON audit_events (at);
