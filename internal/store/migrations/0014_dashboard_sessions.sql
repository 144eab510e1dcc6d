-- Dashboard sessions live in the store, so any control-plane replica
-- serves any browser and a logout at one ends the session at all of them.
-- Only the SHA-256 hash of a session id is kept: a copy of the database
-- does not log anyone in. seen_at moves at most once a minute (the idle
-- timeout's precision), so browsing does not write on every page.
-- identity_id has no foreign key on purpose: a deleted user's session is
-- found at its next request and told why it ended, then dropped (expired
-- ones are swept at every login).
CREATE TABLE dashboard_sessions (
    id_hash      TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    identity_id  TEXT NOT NULL,
    subject_name TEXT NOT NULL,
    epoch        BIGINT NOT NULL,
    csrf         TEXT NOT NULL,
    flash        TEXT NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    seen_at      BIGINT NOT NULL
);
CREATE INDEX dashboard_sessions_seen ON dashboard_sessions (seen_at);
CREATE INDEX dashboard_sessions_created ON dashboard_sessions (created_at);
