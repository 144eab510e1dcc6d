-- Keyset pages of a catalog's apps (by name, id) and of an app's
-- credentials (by creation, id) read their index in order and stop at the
-- page's end, instead of sorting every app or credential for each page.
CREATE INDEX apps_catalog_name ON apps (catalog_id, name, id);
CREATE INDEX app_credentials_app_created ON app_credentials (app_id, created_at, id);
