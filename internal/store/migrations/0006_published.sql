-- Published APIs, their plans and the subscriptions of apps to plans, in
-- one table keyed by kind ('api', 'plan', 'subscription'): each object is
-- a JSON spec owned by package apis, with a stable id for foreign wires
-- (API Connect, Gravitee) next to its name. An API keeps the OpenAPI
-- document it was published with (JSON), checked when it was written.
CREATE TABLE published_objects (
    instance_id TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    id          TEXT NOT NULL UNIQUE,
    spec        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT '{}',
    document    BLOB,
    version     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    updated_by  TEXT NOT NULL,
    PRIMARY KEY (instance_id, kind, name)
);
