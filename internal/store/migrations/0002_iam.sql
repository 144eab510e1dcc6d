-- Identity and access: instances (tenants), people and service IDs, API
-- keys and client credentials (stored as SHA-256 hashes, never in clear),
-- token signing keys (private halves sealed), revoked tokens and audit.
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE instances (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE identities (
    id            TEXT PRIMARY KEY,
    instance_id   TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    kind          TEXT NOT NULL,
    name          TEXT NOT NULL,
    description   TEXT NOT NULL DEFAULT '',
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL DEFAULT '',
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (instance_id, kind, name)
);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    owner_id     TEXT NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    key_hash     TEXT NOT NULL UNIQUE,
    key_hint     TEXT NOT NULL,
    expires_at   BIGINT NOT NULL DEFAULT 0,
    locked       INTEGER NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (owner_id, name)
);
CREATE INDEX api_keys_instance ON api_keys (instance_id);

CREATE TABLE client_credentials (
    client_id    TEXT PRIMARY KEY,
    instance_id  TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL DEFAULT '',
    owner_id     TEXT REFERENCES identities(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    secret_hint  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    UNIQUE (instance_id, name)
);

CREATE TABLE signing_keys (
    kid            TEXT PRIMARY KEY,
    alg            TEXT NOT NULL,
    sealed_private BLOB NOT NULL,
    public_jwk     TEXT NOT NULL,
    created_at     BIGINT NOT NULL
);

CREATE TABLE revoked_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object      TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    source      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_instance_at ON audit_events (instance_id, at);
