-- postgres only
-- Every write to what watches and caches follow (runtimes, configurations,
-- BAR files, identities and their credentials, revocations, consumer
-- apps, published APIs) tells every control plane listening on this
-- database, through NOTIFY on channel sluice_changes with the schema as
-- payload, so a change made at one replica reaches the watches of all
-- within milliseconds instead of at their next poll. PostgreSQL folds
-- the notifications of one transaction into one. The audit, sessions,
-- refresh tokens, leases and rate windows do not notify: they change with
-- every request and nothing watches them. SQLite (one process) skips this
-- migration: its watches poll.
CREATE OR REPLACE FUNCTION sluice_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sluice_changes', current_schema());
    RETURN NULL;
END
$$;
CREATE TRIGGER identities_notify AFTER INSERT OR UPDATE OR DELETE ON identities FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER api_keys_notify AFTER INSERT OR UPDATE OR DELETE ON api_keys FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER client_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON client_credentials FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER signing_keys_notify AFTER INSERT OR UPDATE OR DELETE ON signing_keys FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER revoked_tokens_notify AFTER INSERT OR UPDATE OR DELETE ON revoked_tokens FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER configurations_notify AFTER INSERT OR UPDATE OR DELETE ON configurations FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER bar_files_notify AFTER INSERT OR UPDATE OR DELETE ON bar_files FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER integration_runtimes_notify AFTER INSERT OR UPDATE OR DELETE ON integration_runtimes FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER catalogs_notify AFTER INSERT OR UPDATE OR DELETE ON catalogs FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER consumer_orgs_notify AFTER INSERT OR UPDATE OR DELETE ON consumer_orgs FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER apps_notify AFTER INSERT OR UPDATE OR DELETE ON apps FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER app_credentials_notify AFTER INSERT OR UPDATE OR DELETE ON app_credentials FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
CREATE TRIGGER published_objects_notify AFTER INSERT OR UPDATE OR DELETE ON published_objects FOR EACH STATEMENT EXECUTE FUNCTION sluice_notify_change();
