-- postgres only
-- The versions of 0025 are bumped at commit, not at each row written: the
-- triggers are deferred constraint triggers. A version row is a lock every
-- writer of the grant tables (or of runtimes) takes, and 0025's row
-- triggers took it right after the first row written, then went on to
-- lock more rows: transaction A (deleting an identity: its row, then its
-- keys' by cascade) holding the grant version could wait for a key's row
-- that transaction B (locking that key) had locked before it too waited
-- for the version — a deadlock that two unrelated rows never made before,
-- which PostgreSQL breaks after deadlock_timeout by failing one of them.
-- Taken at commit, the version is the last lock a transaction takes: its
-- holder waits for nothing more and commits, so no cycle can pass through
-- it (TestVersionRowsCannotDeadlock). A transaction that wrote both runtimes
-- and grant tables queues both kinds of bump: both functions lock the
-- grant version first, so two such transactions take the two rows in the
-- same order whatever order they wrote in. The barrier's reads are
-- unchanged: the bump still commits with the change, atomically.
CREATE OR REPLACE FUNCTION sluice_bump_runtime_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM grant_version FOR NO KEY UPDATE;
    UPDATE runtime_version SET version = version + 1;
    RETURN NULL;
END
$$;
DROP TRIGGER identities_grant ON identities;
DROP TRIGGER api_keys_grant ON api_keys;
DROP TRIGGER client_credentials_grant ON client_credentials;
DROP TRIGGER revoked_tokens_grant ON revoked_tokens;
DROP TRIGGER integration_runtimes_version ON integration_runtimes;
CREATE CONSTRAINT TRIGGER identities_grant AFTER INSERT OR UPDATE OR DELETE ON identities
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE CONSTRAINT TRIGGER api_keys_grant AFTER INSERT OR DELETE OR UPDATE OF id, instance_id, owner_id, name, description, key_hash,
    key_hint, expires_at, locked, token_epoch, created_at, created_by, owner_kind, owner_name
    ON api_keys DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE CONSTRAINT TRIGGER client_credentials_grant AFTER INSERT OR DELETE OR UPDATE OF client_id, instance_id, name, description,
    owner_id, secret_hash, secret_hint, created_at, created_by
    ON client_credentials DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE CONSTRAINT TRIGGER revoked_tokens_grant AFTER INSERT OR UPDATE OR DELETE ON revoked_tokens
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sluice_bump_grant_version();
CREATE CONSTRAINT TRIGGER integration_runtimes_version AFTER INSERT OR UPDATE OR DELETE ON integration_runtimes
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sluice_bump_runtime_version();
