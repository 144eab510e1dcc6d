-- sqlite only
-- The grant tables' version: whatever a token exchange or an
-- authenticated request checks (identities, API keys, client credentials,
-- revocations) bumps it in the same transaction, so the grant cache's
-- barrier (grantcache.go) tells such a change from the commits that
-- cannot alter an answer: PRAGMA data_version changes at every commit of
-- another connection, and under token load nearly every commit is an
-- audit batch, which made the remembered answers be forgotten every few
-- milliseconds. Last-used times (written once a second) do not bump it,
-- as they do not notify on PostgreSQL (0022). PostgreSQL skips this
-- migration: its triggers NOTIFY instead (0020).
CREATE TABLE grant_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO grant_version (id, version) VALUES (1, 0);
CREATE TRIGGER identities_insert_grant AFTER INSERT ON identities BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER identities_update_grant AFTER UPDATE ON identities BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER identities_delete_grant AFTER DELETE ON identities BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER api_keys_insert_grant AFTER INSERT ON api_keys BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER api_keys_update_grant AFTER UPDATE OF id, instance_id, owner_id, name, description, key_hash,
    key_hint, expires_at, locked, token_epoch, created_at, created_by, owner_kind, owner_name
    ON api_keys BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER api_keys_delete_grant AFTER DELETE ON api_keys BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER client_credentials_insert_grant AFTER INSERT ON client_credentials BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER client_credentials_update_grant AFTER UPDATE OF client_id, instance_id, name, description,
    owner_id, secret_hash, secret_hint, created_at, created_by
    ON client_credentials BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER client_credentials_delete_grant AFTER DELETE ON client_credentials BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER revoked_tokens_insert_grant AFTER INSERT ON revoked_tokens BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER revoked_tokens_update_grant AFTER UPDATE ON revoked_tokens BEGIN UPDATE grant_version SET version = version + 1; END;
CREATE TRIGGER revoked_tokens_delete_grant AFTER DELETE ON revoked_tokens BEGIN UPDATE grant_version SET version = version + 1; END;
