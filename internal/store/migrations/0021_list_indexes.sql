-- Indexes that let each paged list read its page in order (the lists
-- with a filter became queries of their own; TestListQueriesUseTheirIndex
-- checks every list's plan on both stores).
-- An identity's own credentials (Airbyte's applications); it also serves
-- the cascade when an identity is deleted.
CREATE INDEX client_credentials_owner ON client_credentials (owner_id, name);
-- A consumer org's apps.
CREATE INDEX apps_org_name ON apps (consumer_org_id, name, id);
-- An owner's API keys, in the instance list's order.
CREATE INDEX api_keys_owner_list ON api_keys (owner_id, owner_kind, owner_name, name, id);
-- One kind of published object of every instance (the gateways' view).
CREATE INDEX published_objects_kind ON published_objects (kind, instance_id, name);
-- A runtime's traces by name; it serves lookups by runtime too.
CREATE INDEX traces_runtime_name ON traces (runtime_uid, name);
DROP INDEX traces_runtime_uid;
