-- sqlite only
-- The runtimes' version, as 0023 keeps the grant tables': every write to
-- integration_runtimes bumps it in the same transaction, so the barrier
-- of the store's read cache (grantcache.go), which remembers pages of
-- runtimes besides grant states, forgets when a runtime changed and not
-- at every audit batch. The reconciler writes a status only when it
-- changed. PostgreSQL skips this migration: 0020's triggers NOTIFY.
CREATE TABLE runtime_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO runtime_version (id, version) VALUES (1, 0);
CREATE TRIGGER integration_runtimes_insert_version AFTER INSERT ON integration_runtimes BEGIN UPDATE runtime_version SET version = version + 1; END;
CREATE TRIGGER integration_runtimes_update_version AFTER UPDATE ON integration_runtimes BEGIN UPDATE runtime_version SET version = version + 1; END;
CREATE TRIGGER integration_runtimes_delete_version AFTER DELETE ON integration_runtimes BEGIN UPDATE runtime_version SET version = version + 1; END;
