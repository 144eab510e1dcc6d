-- Consumer applications: catalogs in an instance (every instance has a
-- "sandbox" catalog, created with it and here for instances made before
-- this migration), consumer orgs in a catalog, apps in a consumer org and
-- app credentials on an app (client id + SHA-256 of the secret; a leased
-- credential has an expiry, and its renewals stop at max_expires_at).
-- Children go with their parent (ON DELETE CASCADE); the service refuses
-- that without force. idempotency_keys remembers create answers, sealed,
-- so a client repeating a create gets the first answer, not a duplicate.
CREATE TABLE catalogs (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    summary     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    UNIQUE (instance_id, name)
);

INSERT INTO catalogs (id, instance_id, name, title, summary, created_at, created_by, updated_at, updated_by)
    SELECT 'sandbox-' || id, id, 'sandbox', 'Sandbox', 'created with the instance', created_at, 'system', created_at, 'system'
    FROM instances;

CREATE TABLE consumer_orgs (
    id          TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    catalog_id  TEXT NOT NULL REFERENCES catalogs(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    title       TEXT NOT NULL DEFAULT '',
    summary     TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    UNIQUE (catalog_id, name)
);

CREATE TABLE apps (
    id              TEXT PRIMARY KEY,
    instance_id     TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    catalog_id      TEXT NOT NULL,
    consumer_org_id TEXT NOT NULL REFERENCES consumer_orgs(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    title           TEXT NOT NULL DEFAULT '',
    summary         TEXT NOT NULL DEFAULT '',
    state           TEXT NOT NULL,
    default_ttl_ms  BIGINT NOT NULL DEFAULT 0,
    max_ttl_ms      BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    updated_by      TEXT NOT NULL,
    UNIQUE (consumer_org_id, name)
);
CREATE INDEX apps_catalog ON apps (catalog_id);

CREATE TABLE app_credentials (
    id              TEXT PRIMARY KEY,
    instance_id     TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    catalog_id      TEXT NOT NULL,
    consumer_org_id TEXT NOT NULL,
    app_id          TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    title           TEXT NOT NULL DEFAULT '',
    summary         TEXT NOT NULL DEFAULT '',
    client_id       TEXT NOT NULL UNIQUE,
    secret_hash     TEXT NOT NULL,
    secret_hint     TEXT NOT NULL,
    expires_at      BIGINT NOT NULL DEFAULT 0,
    max_expires_at  BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (app_id, name)
);
CREATE INDEX app_credentials_expiry ON app_credentials (expires_at) WHERE expires_at > 0;

CREATE TABLE idempotency_keys (
    instance_id  TEXT NOT NULL,
    scope        TEXT NOT NULL,
    key          TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status       INTEGER NOT NULL,
    sealed_body  BLOB NOT NULL,
    expires_at   BIGINT NOT NULL,
    PRIMARY KEY (instance_id, scope, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Refresh tokens of API Connect's token endpoint: only the SHA-256 of the
-- token is kept; using one deletes it (the answer carries its successor).
CREATE TABLE refresh_tokens (
    token_hash  TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    client_id   TEXT NOT NULL,
    subject_id  TEXT NOT NULL,
    key_id      TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);
