-- Refresh tokens of the IBM Cloud IAM token exchange (stored as SHA-256
-- hashes). Each is used once: used_at is set when it is exchanged, and the
-- row stays until it expires so a second use is recognised and refused.
-- They go with their API key (ON DELETE CASCADE).
CREATE TABLE key_refresh_tokens (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX key_refresh_tokens_key ON key_refresh_tokens (key_id);
CREATE INDEX key_refresh_tokens_expires ON key_refresh_tokens (expires_at);
