-- postgres only
-- Last-used times of API keys and client credentials are written by every
-- control plane once a second while tokens are exchanged (iam's usage
-- flush). They are hints nothing watches, yet migration 0020's triggers
-- made each flush a change signal to every replica, waking their watches
-- and the reconciler's leader for a pass, every second. The two tables now
-- signal inserts, deletes and updates of any column but last_used_at.
DROP TRIGGER api_keys_notify ON api_keys;
CREATE TRIGGER api_keys_notify AFTER INSERT OR DELETE OR UPDATE OF id, instance_id, owner_id, name, description, key_hash,
    key_hint, expires_at, locked, token_epoch, created_at, created_by, owner_kind, owner_name
    ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
DROP TRIGGER client_credentials_notify ON client_credentials;
CREATE TRIGGER client_credentials_notify AFTER INSERT OR DELETE OR UPDATE OF client_id, instance_id, name, description,
    owner_id, secret_hash, secret_hint, created_at, created_by
    ON client_credentials FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
