-- One table for the refresh tokens of both token endpoints that hand them
-- out: API Connect's POST /api/token (grant 'apic') and IBM Cloud IAM's
-- POST /identity/token (grant 'iam'). Both are single-use: used_at is set
-- when one is exchanged and the row stays until it expires, so a second
-- use is told apart from an unknown token. Both go with their instance,
-- and with their API key when they came from one (key_id NULL: from a
-- password or a client credential). Both are slrf_ secrets, stored as
-- SHA-256 hashes; the grant column keeps one endpoint's from working at
-- the other.
CREATE TABLE refresh_tokens_all (
    id          TEXT PRIMARY KEY,
    token_hash  TEXT NOT NULL UNIQUE,
    grant_kind  TEXT NOT NULL,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL DEFAULT '',
    subject_id  TEXT NOT NULL DEFAULT '',
    key_id      TEXT REFERENCES api_keys(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_all_key ON refresh_tokens_all (key_id);
CREATE INDEX refresh_tokens_all_expires ON refresh_tokens_all (expires_at);

-- IBM Cloud IAM's move over as they are. API Connect's were slrt_
-- tokens, a prefix bundle tokens also use; they are not carried over:
-- their clients get a new token with their API key or password (they
-- lived 24 hours at most).
INSERT INTO refresh_tokens_all (id, token_hash, grant_kind, instance_id, client_id, subject_id, key_id, created_at, expires_at, used_at)
    SELECT id, token_hash, 'iam', instance_id, client_id, '', key_id, created_at, expires_at, used_at FROM key_refresh_tokens;

DROP TABLE key_refresh_tokens;
DROP TABLE refresh_tokens;
