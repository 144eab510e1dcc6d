-- postgres only
-- The grant tables' and the runtimes' versions, as SQLite keeps them
-- (0023, 0024, on the same tables and columns): a row written that a
-- token exchange, an authenticated request or a list of runtimes reads
-- bumps a version in its own transaction, so the read cache's
-- barrier (grantcache.go) is one plain SELECT of the two. Under READ
-- COMMITTED that SELECT sees every commit that finished before it began;
-- the barrier it replaces was a NOTIFY that had to come back on the
-- listening connection, a round trip through the whole notification
-- queue per request. Last-used times do not bump it (as in 0022). The
-- NOTIFYs of 0020 stay: the change feed of watches follows them. The
-- triggers are per row, as SQLite's are, because the reconciler's status
-- write matches no row when the status did not change, and a statement
-- trigger would forget every remembered answer at each of its passes.
CREATE TABLE grant_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO grant_version (id, version) VALUES (1, 0);
CREATE TABLE runtime_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO runtime_version (id, version) VALUES (1, 0);
CREATE OR REPLACE FUNCTION sluice_bump_grant_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE grant_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE OR REPLACE FUNCTION sluice_bump_runtime_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runtime_version SET version = version + 1;
    RETURN NULL;
END
$$;
CREATE TRIGGER identities_grant AFTER INSERT OR UPDATE OR DELETE ON identities FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE TRIGGER api_keys_grant AFTER INSERT OR DELETE OR UPDATE OF id, instance_id, owner_id, name, description, key_hash,
    key_hint, expires_at, locked, token_epoch, created_at, created_by, owner_kind, owner_name
    ON api_keys FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE TRIGGER client_credentials_grant AFTER INSERT OR DELETE OR UPDATE OF client_id, instance_id, name, description,
    owner_id, secret_hash, secret_hint, created_at, created_by
    ON client_credentials FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE TRIGGER revoked_tokens_grant AFTER INSERT OR UPDATE OR DELETE ON revoked_tokens FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE TRIGGER integration_runtimes_version AFTER INSERT OR UPDATE OR DELETE ON integration_runtimes FOR EACH ROW EXECUTE FUNCTION sluice_bump_runtime_version();
